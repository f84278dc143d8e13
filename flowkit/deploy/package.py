"""`flowkit package`: the Lambda artifacts, each with only what it needs.

- ``flowkit-handlers.zip``: the orchestration handlers (statemachine, orchestrator, notifications,
  starter, destinations, timer). flowkit's own code, pymongo (with dnspython) and slack-sdk; never
  pydantic, networkx or graphviz, which the handlers never import. boto3 is left to the Lambda runtime,
  which ships it, unless ``with_boto3``.
- ``flowkit-jobs.zip``: the job router and your ``@job`` bodies. flowkit's code, your workflow modules
  (their top-level package, as found from the compiled documents' ``handler`` fields), pymongo, and the
  requirements you name.

Third-party code comes from manylinux wheels for the chosen architecture and Python version
(``pip install --platform manylinux2014_<arch> --only-binary=:all: --python-version X --target ...``),
so the build works the same from a Mac or from CI. Bytecode is compiled only when the local interpreter
is the target version (a ``.pyc`` is specific to its Python version).
"""

from __future__ import annotations

import compileall
import logging
import py_compile
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flowkit.errors import BadArgument, DeployError

__all__ = ["ARCHITECTURES", "PYTHON_VERSIONS", "Artifact", "build", "handlers_requirements"]

logger = logging.getLogger(__name__)

ARCHITECTURES: Final = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHON_VERSIONS: Final = ("3.11", "3.12", "3.13")
HANDLERS_ZIP: Final = "flowkit-handlers.zip"
JOBS_ZIP: Final = "flowkit-jobs.zip"

# What the handlers import (besides flowkit itself and the standard library).
_DEFAULTS: Final = {"pymongo": "pymongo>=4.6", "slack-sdk": "slack-sdk>=3.27", "boto3": "boto3>=1.34"}
_FLOWKIT: Final = Path(__file__).resolve().parent.parent
_SKIP_DIRS: Final = {"__pycache__"}
# Fixed time stamp in the archives: the same inputs give the same bytes.
_EPOCH: Final = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Artifact:
    path: Path
    zipped_bytes: int
    unpacked_bytes: int
    files: int

    def describe(self) -> str:
        return (
            f"{self.path}  {self.zipped_bytes / 1e6:.1f} MB zipped, {self.unpacked_bytes / 1e6:.1f} MB unpacked, "
            f"{self.files} files"
        )


def handlers_requirements(*, slack: bool = True, with_boto3: bool = False) -> list[str]:
    """The requirement specifiers of the handlers' artifact, as flowkit's own metadata states them."""
    wanted = ["pymongo", *(["slack-sdk"] if slack else []), *(["boto3"] if with_boto3 else [])]
    declared: dict[str, str] = {}
    try:
        from importlib.metadata import requires

        for line in requires("flowkit") or []:
            spec = line.split(";", 1)[0].strip()
            name = spec.split(">", 1)[0].split("=", 1)[0].split("<", 1)[0].split("[", 1)[0].strip().lower()
            declared.setdefault(name, spec)
    except Exception:  # pragma: no cover - flowkit run from a source tree without metadata
        pass
    return [declared.get(name, _DEFAULTS[name]) for name in wanted]


def _pip_install(
    requirements: Sequence[str], target: Path, *, arch: str, python: str, pip_args: Sequence[str]
) -> None:
    if not requirements:
        return
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--platform",
        ARCHITECTURES[arch],
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--only-binary=:all:",
        *pip_args,
        *requirements,
    ]
    logger.info("%s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(
            f"pip could not install {', '.join(requirements)} for {arch} / Python {python}:\n"
            + (result.stderr.strip() or result.stdout.strip())
        )
    # console scripts are built for this machine, and useless in Lambda
    shutil.rmtree(target / "bin", ignore_errors=True)


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(
        source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True
    )


def _module_roots(modules: Iterable[str]) -> list[Path]:
    """The top-level package folder (or module file) of each module, imported to find it."""
    import importlib

    roots: set[Path] = set()
    for name in modules:
        top = name.split(".", 1)[0]
        try:
            module = importlib.import_module(top)
        except ImportError as exc:
            raise DeployError(f"cannot package module {name!r}: {exc}") from exc
        file = getattr(module, "__file__", None)
        if file is None:
            raise DeployError(f"cannot package module {name!r}: {top!r} has no file (a namespace package?)")
        path = Path(file).resolve()
        roots.add(path.parent if path.name == "__init__.py" else path)
    return sorted(roots)


def _zip(folder: Path, destination: Path) -> Artifact:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    unpacked = 0
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for file in files:
            info = zipfile.ZipInfo(file.relative_to(folder).as_posix(), date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = file.read_bytes()
            unpacked += len(data)
            archive.writestr(info, data)
    return Artifact(destination, destination.stat().st_size, unpacked, len(files))


def _finish(folder: Path, python: str) -> None:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        # Hash-based, unchecked: the code never changes in Lambda, the bytes do not depend on file times,
        # and paths are recorded relative to the package root (the same bytes from any build folder).
        compileall.compile_dir(
            str(folder),
            ddir="",
            quiet=1,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    else:
        logger.warning(
            "not compiling bytecode: this interpreter is %s.%s, the target %s (Lambda compiles on first import)",
            sys.version_info.major,
            sys.version_info.minor,
            python,
        )


def build(
    output: Path,
    *,
    job_modules: Sequence[str] = (),
    arch: str = "x86_64",
    python: str = "3.12",
    slack: bool = True,
    with_boto3: bool = False,
    job_requirements: Sequence[str] = (),
    pip_args: Sequence[str] = (),
    no_deps: bool = False,
    work: Path | None = None,
) -> list[Artifact]:
    """Build the handlers' artifact, and the jobs' one when ``job_modules`` is not empty.

    ``no_deps`` leaves third-party packages out (they then come from a Lambda layer).
    """
    if arch not in ARCHITECTURES:
        raise BadArgument(f"--arch must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    if python not in PYTHON_VERSIONS:
        raise BadArgument(f"--python must be one of {', '.join(PYTHON_VERSIONS)}, got {python!r}")
    import tempfile

    artifacts = []
    with tempfile.TemporaryDirectory(prefix="flowkit-package-", dir=work) as tmp:
        handlers = Path(tmp) / "handlers"
        _copy_tree(_FLOWKIT, handlers / "flowkit")
        if not no_deps:
            requirements = handlers_requirements(slack=slack, with_boto3=with_boto3)
            _pip_install(requirements, handlers, arch=arch, python=python, pip_args=pip_args)
        _check_handlers_folder(handlers)
        _finish(handlers, python)
        artifacts.append(_zip(handlers, output / HANDLERS_ZIP))
        if job_modules:
            jobs = Path(tmp) / "jobs"
            _copy_tree(_FLOWKIT, jobs / "flowkit")
            for root in _module_roots(job_modules):
                if root.is_dir():
                    _copy_tree(root, jobs / root.name)
                else:
                    shutil.copy2(root, jobs / root.name)
            if not no_deps:
                requirements = [*handlers_requirements(slack=False), *job_requirements]
                _pip_install(requirements, jobs, arch=arch, python=python, pip_args=pip_args)
            _finish(jobs, python)
            artifacts.append(_zip(jobs, output / JOBS_ZIP))
    return artifacts


_NEVER_IN_HANDLERS: Final = ("pydantic", "pydantic_core", "networkx", "graphviz", "rich")


def _check_handlers_folder(folder: Path) -> None:
    """Refuse to ship what the handlers never import (it would only slow cold starts down)."""
    found = sorted(name for name in _NEVER_IN_HANDLERS if (folder / name).exists())
    if found:
        raise DeployError(f"the handlers' artifact would contain {', '.join(found)}: check --pip-arg values")
