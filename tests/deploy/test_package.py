"""`flowkit package`: what each artifact holds, for the chosen platform, and the handlers' cold start from it.

The builds from PyPI are marked ``network`` and run only with ``FLOWKIT_TEST_PYPI=1`` (CI sets it); the
``--no-deps`` build runs offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from flowkit.cli import main
from flowkit.deploy.package import build

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

network = pytest.mark.skipif(
    os.environ.get("FLOWKIT_TEST_PYPI") != "1", reason="builds from PyPI: set FLOWKIT_TEST_PYPI=1"
)


def names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def top_level(path: Path) -> set[str]:
    return {name.split("/", 1)[0] for name in names(path)}


def test_without_dependencies_the_artifacts_hold_flowkit_and_your_modules(tmp_path: Path) -> None:
    handlers, jobs = build(
        tmp_path / "a", job_modules=["workflows.nested"], no_deps=True, python=LOCAL_PYTHON
    )
    again, _ = build(tmp_path / "b", job_modules=["workflows.nested"], no_deps=True, python=LOCAL_PYTHON)

    assert top_level(handlers.path) == {"flowkit"}
    assert top_level(jobs.path) == {"flowkit", "workflows"}
    assert "workflows/nested.py" in names(jobs.path) and "flowkit/runtime/router.py" in names(jobs.path)
    assert handlers.unpacked_bytes > handlers.zipped_bytes > 0
    # the same inputs give the same bytes (no time stamps)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (handlers.path, again.path)]
    assert digest[0] == digest[1]


def test_the_cli_refuses_an_unknown_architecture(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["package", "--arch", "sparc"])
    assert exit_.value.code == 2 and "invalid choice: 'sparc'" in capsys.readouterr().err


def cold_start_from(folder: Path) -> list[str]:
    """The handlers' cold-start scenario (tests/runtime/test_cold_start.py) in a clean interpreter that
    sees only ``folder``: no site-packages (-S), no environment (-I), so nothing comes from this venv."""
    fixture = EVENTS / "job_failed_relaxed.json"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(folder)!r}]
        import json
        import flowkit.runtime.handlers
        assert flowkit.runtime.handlers.__file__.startswith({str(folder)!r}), flowkit.runtime.handlers.__file__
        from flowkit.local.embedded import embedded_database
        from flowkit.runtime.handlers import Runtime
        from flowkit.runtime.store import Store

        class Dispatcher:
            def dispatch(self, spec, payload):
                raise AssertionError("nothing is ready")

        class Notifier:
            messages = []
            def send(self, message):
                self.messages.append(message)
                return True

        store = Store(embedded_database("flowkit"))
        store.runs.insert_one({{
            "_id": "nightly-etl-2026-11-27", "workflow": "nightly-etl", "version": "v", "input": {{}},
            "status": "running", "phase": "load", "phase_index": 0,
            "config": {{
                "name": "nightly-etl", "phases": [{{"name": "load", "jobs": ["load"]}}],
                "jobs": [{{"name": "load", "phase": "load", "target": {{"function": "fn"}}, "needs": []}}],
                "notifications": {{"slack_channel": "#etl", "on": ["job.failed", "run.failed"]}},
            }},
            "jobs": {{"load": {{"state": "running", "attempt": 1, "output": None}}}},
        }})
        event = json.loads(open({str(fixture)!r}, encoding="utf-8").read())
        runtime = Runtime(store, Dispatcher(), Notifier())
        assert runtime.statemachine_job(event, None)["action"] == "recorded"
        assert runtime.orchestrator_job(event, None)["action"] == "scheduled"
        assert runtime.notifications_job(event, None)["sent"] is True
        assert store.get_run("nightly-etl-2026-11-27")["status"] == "failed"
        print(json.dumps(sorted(sys.modules)))
        """
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


@network
@pytest.mark.network
def test_the_handlers_artifact_from_pypi_has_only_what_they_import_and_starts_cold(tmp_path: Path) -> None:
    # given the artifacts built from manylinux wheels for this machine's Python
    handlers, jobs = build(tmp_path / "dist", job_modules=["workflows.nested"], python=LOCAL_PYTHON)
    # then the handlers' zip holds pymongo, slack-sdk and flowkit, and none of what they never import
    packages = top_level(handlers.path)
    assert {"flowkit", "pymongo", "bson", "dns", "slack_sdk"} <= packages
    assert not packages & {"pydantic", "pydantic_core", "networkx", "graphviz", "rich", "boto3", "botocore"}
    assert {"flowkit", "workflows", "pymongo"} <= top_level(jobs.path)
    assert "slack_sdk" not in top_level(jobs.path)
    # and the handlers, imported from it in an interpreter without site-packages, pass the cold-start test
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(handlers.path).extractall(folder)
    modules = cold_start_from(folder)
    assert "pymongo" in modules and "flowkit.runtime.events" in modules
    heavy = ["pydantic", "pydantic_core", "networkx", "graphviz", "flowkit.document", "flowkit.dsl", "boto3"]
    assert sorted(m for m in modules if m.split(".")[0] in heavy or m.startswith(tuple(heavy))) == []


@network
@pytest.mark.network
def test_an_arm64_artifact_carries_arm64_binaries(tmp_path: Path) -> None:
    [handlers] = build(tmp_path, arch="arm64", python="3.13", slack=False)
    with zipfile.ZipFile(handlers.path) as archive:
        binaries = [n for n in archive.namelist() if n.startswith("bson/") and n.endswith(".so")]
        assert binaries and all("cpython-313-aarch64" in n for n in binaries), binaries
        header = archive.read(binaries[0])[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    # no bytecode for another interpreter than this one
    assert not any(n.endswith(".pyc") for n in names(handlers.path))


def test_the_cli_prints_each_artifact_and_the_job_modules(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["package", str(ROOT / "workflows" / "nested.py"), "--no-deps", "-o", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(f"{tmp_path / 'flowkit-handlers.zip'}  ") and "MB zipped" in out[0]
    assert out[1].startswith(f"{tmp_path / 'flowkit-jobs.zip'}  ")
    assert out[2] == "job modules (FLOWKIT_WORKFLOW_MODULES): workflows.nested"
