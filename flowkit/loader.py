"""Resolve a CLI TARGET to workflows.

TARGET is one of:

- ``package.module:attr`` (``attr`` may be dotted) or ``package.module`` (every workflow defined in it);
- ``path/to/file.py`` or ``path/to/file.py:attr``;
- a folder: every workflow defined in its ``*.py`` files (recursively, skipping files and folders whose
  name starts with ``_`` or ``.``), sorted by name.

A file inside a package (folders with ``__init__.py``) is imported under its dotted package name with
the package root on ``sys.path``, exactly as pytest or ``python -m`` would import it, so the ``handler``
strings in the compiled document do not depend on how the workflow was loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from flowkit.dsl.workflow import Workflow
from flowkit.errors import LoadError

__all__ = ["describe_user_error", "load_workflows"]

_FLOWKIT_DIR = str(Path(__file__).resolve().parent)


def load_workflows(target: str) -> list[Workflow]:
    """The workflows TARGET designates, sorted by name; ``LoadError`` says what is wrong."""
    head, sep, tail = target.rpartition(":")
    if sep and head and tail and all(part.isidentifier() for part in tail.split(".")):
        path_part, attr = head, tail
    else:
        path_part, attr = target, ""
    if not path_part or ":" in path_part:
        raise LoadError(f"invalid target {target!r}: expected module:attr, file.py[:attr] or a folder")
    if _is_path(path_part):
        path = Path(path_part)
        if path.is_dir():
            if attr:
                raise LoadError(f"invalid target {target!r}: a folder takes no ':attr'")
            return _from_folder(path)
        if not path.is_file():
            raise LoadError(f"cannot load {target!r}: no such file or folder {path_part!r}")
        module = _import_file(path)
    else:
        module = _import_module(path_part)
    if attr:
        return [_attr(module, attr, target)]
    found = _defined_in(module)
    if not found:
        raise LoadError(f"no workflow found in {path_part!r}: decorate a function with @workflow")
    return _sorted_unique(found, {id(w): path_part for w in found})


def _is_path(text: str) -> bool:
    return text.endswith(".py") or os.sep in text or "/" in text or Path(text).is_dir()


def _attr(module: ModuleType, attr: str, target: str) -> Workflow:
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise LoadError(
                f"cannot load {target!r}: {module.__name__!r} has no attribute {attr!r}"
            ) from None
    if not isinstance(value, Workflow):
        hint = " (decorate it with @workflow)" if callable(value) else ""
        raise LoadError(f"{target!r} is a {type(value).__name__}, not a workflow{hint}")
    return value


def _defined_in(module: ModuleType) -> list[Workflow]:
    """Workflows whose function is defined in ``module`` (not merely imported into it)."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, Workflow) and value.module == module.__name__
    ]


def _from_folder(folder: Path) -> list[Workflow]:
    found: list[Workflow] = []
    origin: dict[int, str] = {}
    for file in sorted(folder.rglob("*.py")):
        relative = file.relative_to(folder).parts
        if any(part.startswith(("_", ".")) for part in relative):
            continue
        for wf in _defined_in(_import_file(file)):
            found.append(wf)
            origin[id(wf)] = str(file)
    if not found:
        raise LoadError(f"no workflow found in folder {str(folder)!r}")
    return _sorted_unique(found, origin)


def _sorted_unique(found: list[Workflow], origin: dict[int, str]) -> list[Workflow]:
    by_name: dict[str, Workflow] = {}
    for wf in found:
        other = by_name.get(wf.name)
        if other is not None and other is not wf:
            raise LoadError(
                f"two workflows are named {wf.name!r}: in {origin.get(id(other))!r} and {origin.get(id(wf))!r}"
            )
        by_name[wf.name] = wf
    return [by_name[name] for name in sorted(by_name)]


def _module_name(path: Path) -> tuple[str, Path]:
    """Dotted module name of a file and the folder to put on sys.path (the top package's parent)."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts), folder


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    name, root = _module_name(path)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if _same_file(loaded, path):
            return loaded
        raise LoadError(
            f"cannot import {_shown(path)!r} as module {name!r}: a different module of that name is "
            f"already loaded ({getattr(loaded, '__file__', None) or 'built-in'}); rename the file"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if "." in name:
        module = _import_module(name, shown=_shown(path))
        if not _same_file(module, path):
            raise LoadError(
                f"cannot import {_shown(path)!r}: module {name!r} resolves to {module.__file__!r}"
            )
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have a loader
        raise LoadError(f"cannot import {_shown(path)!r}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise _import_error(_shown(path), exc) from exc
    return module


def _import_module(name: str, *, shown: str | None = None) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise _import_error(shown or name, exc) from exc


def _same_file(module: ModuleType, path: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve() == path


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)


def _import_error(shown: str, exc: BaseException) -> LoadError:
    """``cannot import 'x.py': ModuleNotFoundError: ...`` followed by the user's own traceback lines."""
    return LoadError(describe_user_error(f"cannot import {shown!r}", exc))


def describe_user_error(what: str, exc: BaseException) -> str:
    """``<what>: <Type>: <message>`` and the traceback lines of the user's code (not flowkit's)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen")
        and not frame.filename.startswith(_FLOWKIT_DIR)
        and "importlib" not in frame.filename
    ]
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    lines = [f"{what}: {summary}"]
    if frames:
        lines.append("Traceback (most recent call last, your code only):")
        lines.extend(line.rstrip("\n") for line in traceback.format_list(frames))
    return "\n".join(lines)
