"""Sizes of the Lambda artifacts and the handlers' cold import from the built artifact.

    python benchmarks/bench_package.py [--dist DIR] [--repeat 11]

Without ``--dist`` it builds both artifacts first (``flowkit package workflows``, from PyPI, for this
machine's architecture and Python version). Then, in fresh interpreters (medians of ``--repeat``):

- ``import pymongo, boto3, slack_sdk`` from this environment (the baseline: what any Lambda talking to
  MongoDB, AWS and Slack pays);
- ``import flowkit.runtime.handlers`` from the unpacked handlers artifact alone (``python -I -S`` with
  only that folder on ``sys.path``: nothing comes from this environment), which loads pymongo and
  flowkit's runtime modules;
- ``import pymongo`` from the same folder, for reference.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(code: str, *flags: str) -> float:
    script = f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, *flags, "-c", script], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, help="folder holding flowkit-handlers.zip (default: build it)")
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dist = args.dist
        if dist is None:
            sys.path.insert(0, str(ROOT))
            from flowkit.cli._package import job_modules
            from flowkit.deploy.package import build

            python = f"{sys.version_info.major}.{sys.version_info.minor}"
            dist = Path(tmp) / "dist"
            build(dist, job_modules=job_modules(str(ROOT / "workflows")), python=python)
        for artifact in sorted(dist.glob("*.zip")):
            with zipfile.ZipFile(artifact) as archive:
                unpacked = sum(info.file_size for info in archive.infolist())
                count = len(archive.infolist())
            size = artifact.stat().st_size
            print(
                f"{artifact.name:24} {size / 1e6:6.1f} MB zipped {unpacked / 1e6:6.1f} MB unpacked {count:5} files"
            )
        folder = Path(tmp) / "handlers"
        zipfile.ZipFile(dist / "flowkit-handlers.zip").extractall(folder)
        prefix = f"import sys\nsys.path[:0] = [{str(folder)!r}]"
        rows = {
            "import pymongo, boto3, slack_sdk (this environment)": ("import pymongo, boto3, slack_sdk", ()),
            "import flowkit.runtime.handlers (artifact only)": (
                f"{prefix}\nimport flowkit.runtime.handlers",
                ("-I", "-S"),
            ),
            "import pymongo (artifact only)": (f"{prefix}\nimport pymongo", ("-I", "-S")),
        }
        print(f"\ncold import, median of {args.repeat} fresh interpreters (ms):")
        for label, (code, flags) in rows.items():
            times = [timed(code, *flags) for _ in range(args.repeat)]
            print(f"  {label:55} {statistics.median(times):7.1f}")


if __name__ == "__main__":
    main()
