"""`flowkit compile | validate | schema`, run as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FLOW = """
from flowkit import job, workflow

@job(timeout=5)
def extract(event, context=None):
    return {{"rows": 1}}

@job(timeout={timeout})
def transform(event, context=None):
    return None

@job(timeout=5, needs=["{need}"])
def load(event, context=None):
    return None

@workflow(name="{name}")
def flow():
    return extract >> transform >> load
"""


def flowkit(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "flowkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_compile_one_workflow_to_stdout_is_the_document() -> None:
    result = flowkit("compile", "workflows/nightly_etl.py")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "nightly-etl" and data["version"].startswith("sha256:")
    assert flowkit("compile", "workflows.nightly_etl:nightly_etl").stdout == result.stdout


def test_compile_folder_writes_one_file_per_workflow_and_check_passes(tmp_path: Path) -> None:
    out = tmp_path / "compiled"
    result = flowkit("compile", "workflows", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "fan-out.json",
        "nested.json",
        "nightly-etl.json",
        "order-pipeline.json",
    ]
    check = flowkit("compile", "workflows", "--check", str(out))
    assert check.returncode == 0, check.stderr
    assert "up to date" in check.stderr
    (out / "retired.json").write_text("{}")
    stale = flowkit("compile", "workflows", "--check", str(out))
    assert stale.returncode == 1
    assert f"drift: {out / 'retired.json'} has no workflow any more (delete it)" in stale.stderr


def test_compile_folder_without_output_asks_for_a_folder() -> None:
    result = flowkit("compile", "workflows")
    assert result.returncode == 2  # usage: the output needs a folder
    assert "has 4 workflows (fan-out, nested, nightly-etl, order-pipeline): pass -o DIR" in result.stderr


def test_check_reports_drift_with_a_reason_and_a_short_diff(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.py", FLOW.format(timeout=5, need="extract", name="etl"))
    committed = tmp_path / "etl.json"
    assert flowkit("compile", str(flow), "-o", str(committed)).returncode == 0
    write(flow, FLOW.format(timeout=7, need="extract", name="etl"))
    result = flowkit("compile", str(flow), "--check", str(committed))
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"drift: {committed} differs from workflow 'etl' (sha256:")
    assert '-      "timeout_seconds": 5.0' in result.stderr
    assert '+      "timeout_seconds": 7.0' in result.stderr


def test_check_against_a_missing_file(tmp_path: Path) -> None:
    result = flowkit("compile", "workflows/nested.py", "--check", str(tmp_path / "nested.json"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_compile_of_an_invalid_workflow_prints_every_problem(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.py", FLOW.format(timeout=-1, need="trnsform", name="nightly-etl"))
    result = flowkit("compile", str(flow))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: job 'load' needs 'trnsform', which is not defined in workflow 'nightly-etl' (did you mean 'transform'?)",
        "error: job 'transform' has timeout -1s: a timeout must be positive",
    ]


def test_validate_prints_errors_and_warnings_one_line_each(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.py", FLOW.format(timeout=None, need="trnsform", name="nightly-etl"))
    result = flowkit("validate", str(flow))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "error: job 'load' needs 'trnsform', which is not defined in workflow 'nightly-etl' (did you mean 'transform'?)",
        "warning: job 'transform' has no timeout: set @job(timeout=...) or Defaults(timeout=...)",
        "nightly-etl: 1 error, 3 jobs, 1 warning",
    ]


def test_validate_the_examples_and_a_compiled_document(tmp_path: Path) -> None:
    result = flowkit("validate", "workflows")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nightly-etl: ok, 6 jobs, 0 warnings" in result.stdout
    doc = tmp_path / "doc.json"
    doc.write_text(flowkit("compile", "workflows/nested.py").stdout)
    assert flowkit("validate", str(doc)).returncode == 0


def test_import_error_in_the_users_module_is_shown_as_such(tmp_path: Path) -> None:
    flow = write(tmp_path / "x.py", "import os\nimport foo_missing_module\n")
    result = flowkit("compile", "x.py", cwd=tmp_path)
    assert result.returncode == 2  # the TARGET cannot be loaded
    lines = result.stderr.splitlines()
    assert (
        lines[0] == "error: cannot import 'x.py': ModuleNotFoundError: No module named 'foo_missing_module'"
    )
    assert any(str(flow) in line and "line 2" in line for line in lines[1:])
    assert "flowkit/cli" not in result.stderr and "importlib" not in result.stderr


def test_an_error_while_building_the_workflow_shows_the_users_line(tmp_path: Path) -> None:
    write(
        tmp_path / "x.py",
        """
        from flowkit import job, parallel, workflow

        @job
        def a(event, context=None):
            return None

        @workflow
        def flow():
            return parallel([a])
        """,
    )
    result = flowkit("validate", "x.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: workflow 'flow' could not be built: TypeError: parallel() argument 1 got a list"
    )
    assert "return parallel([a])" in result.stderr


@pytest.mark.parametrize("args", [("compile", "nope.py"), ("validate", "nope.py")])
def test_missing_target(args: tuple[str, ...]) -> None:
    result = flowkit(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cannot load 'nope.py': no such file or folder 'nope.py'"


def test_schema_is_the_json_schema_of_the_document(tmp_path: Path) -> None:
    result = flowkit("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "WorkflowDocument"
    assert {"name", "version", "phases", "jobs"} <= set(schema["required"])
    assert "JobSpec" in schema["$defs"]
    out = tmp_path / "schema.json"
    assert flowkit("schema", "-o", str(out)).returncode == 0
    assert out.read_text() == result.stdout
