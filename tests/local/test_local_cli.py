"""`flowkit run`: exit codes, --input / --mock / --mock-file handling, --json, --diagram."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _localrun import WORKFLOWS

from flowkit.cli import main

ETL = str(WORKFLOWS / "nightly_etl.py")
ORDERS = str(WORKFLOWS / "order_pipeline.py")
NESTED = str(WORKFLOWS / "nested.py")
ROOT = WORKFLOWS.parent


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_succeeding_run_exits_0_and_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, ETL, "--input", '{"date": "2026-11-27"}')

    assert (code, err) == (0, "")
    assert "nightly-etl" in out
    assert "run succeeded" in out
    assert (
        "embedded in-process store, database 'flowkit', collection 'state-machines', _id 'nightly-etl-" in out
    )
    for name in ("extract", "normalize-currency", "dedupe", "enrich-customers", "load", "report"):
        assert name in out


def test_json_prints_the_final_run_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, ETL, "--input", '{"date": "2026-11-27", "rows": 0}', "--json")

    document = json.loads(out)
    assert code == 0
    assert document["status"] == "succeeded"
    assert document["_id"].startswith("nightly-etl-")
    assert document["jobs"]["load"]["state"] == "skipped"
    assert document["input"] == {"date": "2026-11-27", "rows": 0}


def test_input_from_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text('{"order_id": "o-5", "card": "declined"}')

    code, out, _ = _run(capsys, ORDERS, "--input", f"@{path}", "--json")

    assert code == 0
    assert json.loads(out)["jobs"]["charge"]["error"]["type"] == "CardDeclined"


def test_a_failed_run_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mocks = tmp_path / "mocks.json"
    mocks.write_text('{"jobs": {"extract": [{"failure": {"type": "SourceDown", "message": "offline"}}]}}')

    code, out, _ = _run(capsys, ETL, "--mock-file", str(mocks), "--clock", "virtual")

    assert code == 1
    assert "run failed" in out
    assert "SourceDown: offline" in out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '{"date": 2026-11-27}',
            "error: --input: invalid JSON at line 1 column 14 (char 13): Expecting ',' delimiter",
        ),
        ("[1, 2]", "error: --input: the run input must be a JSON object, got list"),
        (
            "@/nonexistent/input.json",
            "error: --input @/nonexistent/input.json: cannot read /nonexistent/input.json",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_argument(
    capsys: pytest.CaptureFixture[str], value: str, expected: str
) -> None:
    code, out, err = _run(capsys, ETL, "--input", value)

    assert (code, out) == (2, "")
    assert err.startswith(expected)


def test_bad_json_in_an_input_file_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text('{\n  "date": "2026-11-27",\n}')

    code, _, err = _run(capsys, ETL, "--input", f"@{path}")

    assert code == 2
    assert f"error: --input @{path}: invalid JSON at line 3 column 1" in err


def test_an_unknown_target_exits_2_with_the_load_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "workflows/no_such_flow.py")

    assert (code, out) == (2, "")
    assert (
        err
        == "error: cannot load 'workflows/no_such_flow.py': no such file or folder 'workflows/no_such_flow.py'\n"
    )


def test_an_unknown_attribute_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, f"{ETL}:nightly")

    assert code == 2
    assert "has no attribute 'nightly'" in err


def test_a_body_less_job_needs_a_mock(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, NESTED)

    assert code == 2
    assert "job 'score' has no Python body" in err
    assert "--mock score=@output.json" in err


def test_mock_option_from_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    output = tmp_path / "score.json"
    output.write_text('{"scored": 12}')

    code, out, _ = _run(
        capsys, NESTED, "--mock", f"score=@{output}", "--input", '{"publish": false}', "--json"
    )

    assert code == 0
    assert json.loads(out)["jobs"]["score"]["output"] == {"scored": 12}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--mock", "lod=1"],
            "error: --mock lod: job 'lod' is not in workflow 'nightly-etl' (did you mean 'load'?)",
        ),
        (["--mock", "load={oops"], "error: --mock load: invalid JSON at line 1 column 2 (char 1)"),
        (["--mock-file", "/nonexistent/m.json"], "error: mock file /nonexistent/m.json: cannot read it"),
        (["--diagram", "run.bmp"], "error: --diagram run.bmp: cannot tell the diagram format"),
    ],
)
def test_bad_mocks_and_diagram_paths_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = _run(capsys, ETL, *argv)

    assert (code, out) == (2, "")
    assert err.startswith(expected)


def test_diagram_writes_the_run_with_job_states(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "run.dot"

    code, out, _ = _run(capsys, ETL, "--input", '{"date": "2026-11-27", "rows": 0}', "--diagram", str(path))

    assert code == 0
    assert f"diagram: {path}" in out
    dot = path.read_text()
    assert "load" in dot
    assert "skipped" in dot


def _subprocess(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowkit", "run", *argv], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_readme_first_command_runs_as_a_subprocess() -> None:
    result = _subprocess("workflows/nightly_etl.py", "--input", '{"date": "2026-11-27"}')

    assert result.returncode == 0, result.stderr
    assert "run succeeded" in result.stdout
    assert "\x1b[" not in result.stdout  # no live display or colours when stdout is not a terminal


def test_subprocess_exit_codes_and_json(tmp_path: Path) -> None:
    failed = _subprocess(
        "workflows/order_pipeline.py",
        "--mock",
        'validate-order={"x": 1}',
        "--mock-file",
        _fail(tmp_path),
        "--clock",
        "virtual",
        "--json",
    )
    usage = _subprocess("workflows/order_pipeline.py", "--input", "{")

    document: dict[str, Any] = json.loads(failed.stdout)
    assert failed.returncode == 1
    assert document["status"] == "failed"
    assert document["jobs"]["reserve-stock"]["error"] == {"type": "OutOfStock", "message": "sku-1"}
    assert document["jobs"]["charge"]["state"] == "cancelled"
    assert usage.returncode == 2
    assert "error: --input: invalid JSON at line 1 column 2 (char 1)" in usage.stderr


def _fail(tmp_path: Path) -> str:
    path = tmp_path / "mocks.json"
    path.write_text('{"jobs": {"reserve-stock": {"failure": {"type": "OutOfStock", "message": "sku-1"}}}}')
    return str(path)


def test_an_unreachable_mongo_uri_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    uri = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"

    code, out, err = _run(capsys, ETL, "--mongo-uri", uri)

    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot use the store at MongoDB {uri}, database 'flowkit'")
    assert "ServerSelectionTimeoutError" in err


def test_a_bad_mongo_uri_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, ETL, "--mongo-uri", "http://db.example")

    assert code == 2
    assert err.startswith("error: --mongo-uri http://db.example: Invalid URI scheme")


def test_a_password_in_the_uri_is_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        capsys, ETL, "--mongo-uri", "mongodb://app:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=200"
    )

    assert code == 1
    assert "s3cret" not in err
    assert "mongodb://app:***@127.0.0.1:1/" in err


def test_a_timed_out_run_exits_without_waiting_for_the_stuck_job(tmp_path: Path) -> None:
    flow = tmp_path / "stuck.py"
    flow.write_text(
        "import time\n"
        "from flowkit import job, workflow\n\n"
        "@job\n"
        "def stuck(event, context=None):\n"
        "    time.sleep(120)\n\n"
        "@workflow(name='stuck')\n"
        "def stuck_flow():\n"
        "    return stuck\n"
    )

    # a stuck body must not keep the process alive: without daemon workers this takes 120 s
    result = _subprocess(str(flow), "--timeout", "0.5")

    assert result.returncode == 1
    assert "did not finish within 0.5s; jobs not finished: stuck (running)" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_non_positive_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", ETL, "--timeout", value])

    assert caught.value.code == 2
    assert "argument --timeout: expected a" in capsys.readouterr().err


def test_diagram_svg_of_a_failed_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "run.svg"

    code, _, _ = _run(
        capsys, ORDERS, "--mock-file", _fail(tmp_path), "--clock", "virtual", "--diagram", str(path)
    )

    assert code == 1  # the diagram is written for failed runs too
    svg = path.read_text()
    assert "<svg" in svg
    assert "reserve&#45;stock" in svg  # graphviz escapes '-'
    assert ": failed</text>" in svg  # the caption carries the run's outcome


def test_json_with_a_forced_display_keeps_stdout_pure_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, ETL, "--input", '{"date": "2026-11-27"}', "--json", "--display", "always")

    assert code == 0
    assert json.loads(out)["status"] == "succeeded"
