"""One table of exit codes for the whole command line (flowkit.cli._exit), every subcommand held to it.

0 done; 1 what was asked for failed (run failed, drift, invalid workflow, MongoDB unreachable);
2 usage or bad input (unknown TARGET, bad JSON, bad mock, missing configuration).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowkit.cli import main
from flowkit.cli._exit import EXIT_CODES, FAILED, OK, USAGE, exit_code
from flowkit.errors import (
    BadArgument,
    ConditionError,
    ConfigError,
    FlowkitError,
    InvalidMock,
    InvalidWorkflow,
    LoadError,
    RenderError,
    RunError,
    StoreUnavailable,
)

ROOT = Path(__file__).resolve().parents[2]
NESTED = str(ROOT / "workflows" / "nested.py")
ETL = str(ROOT / "workflows" / "nightly_etl.py")
UNREACHABLE = "mongodb://app:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=200"

INVALID = """
from flowkit import job, sequence, workflow

@job(timeout=-1)
def a(event, context=None):
    return None

@workflow
def broken():
    return sequence(a)
"""


@pytest.fixture
def invalid(tmp_path: Path) -> str:
    path = tmp_path / f"broken_{tmp_path.name}.py"  # one module name per test: the loader keeps them
    path.write_text(textwrap.dedent(INVALID))
    return str(path)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("FLOWKIT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_the_table_maps_each_error_by_its_class() -> None:
    assert exit_code(LoadError("x")) == USAGE
    assert exit_code(BadArgument("x")) == USAGE
    assert exit_code(InvalidMock("x")) == USAGE
    assert exit_code(ConfigError("x")) == USAGE
    assert exit_code(InvalidWorkflow("x")) == FAILED
    assert exit_code(ConditionError("x")) == FAILED  # through its parent InvalidWorkflow
    assert exit_code(RunError("x")) == FAILED
    assert exit_code(StoreUnavailable("x")) == FAILED
    assert exit_code(RenderError("x")) == FAILED
    assert exit_code(ValueError("x")) == FAILED
    assert set(EXIT_CODES.values()) <= {OK, FAILED, USAGE}


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["compile", NESTED], OK, ""),
        (["compile", "{invalid}"], FAILED, "error: job 'a' has timeout -1s"),
        (["compile", "nope.py"], USAGE, "error: cannot load 'nope.py'"),
        (["compile", NESTED, "--bogus"], USAGE, "unrecognized arguments: --bogus"),
        (["validate", NESTED], OK, ""),
        (["validate", "{invalid}"], FAILED, ""),
        (["validate", "nope.py"], USAGE, "error: cannot load 'nope.py'"),
        (["schema"], OK, ""),
        (["schema", "-o", "/nonexistent/dir/schema.json"], USAGE, "error: -o /nonexistent/dir/schema.json"),
        (["diagram", NESTED], OK, ""),
        (["diagram", "{invalid}"], FAILED, "error: job 'a' has timeout -1s"),
        (["diagram", "nope.py"], USAGE, "error: cannot load 'nope.py'"),
        (["diagram", NESTED, "--format", "png"], USAGE, "error: --format png is a binary format"),
        (
            ["publish", NESTED, "--mongo-uri", UNREACHABLE],
            FAILED,
            "error: cannot reach MongoDB at 127.0.0.1:1",
        ),
        (["publish", "{invalid}", "--mongo-uri", UNREACHABLE], FAILED, "error: job 'a' has timeout -1s"),
        (["publish", "nope.py", "--mongo-uri", UNREACHABLE], USAGE, "error: cannot load 'nope.py'"),
        (["publish", NESTED], USAGE, "error: no MongoDB to publish to"),
        (
            ["publish", NESTED, "--mongo-uri", "http://db.example"],
            USAGE,
            "error: MongoDB URI http://db.example",
        ),
        (["start", NESTED, "--mongo-uri", UNREACHABLE], FAILED, "error: cannot reach MongoDB at 127.0.0.1:1"),
        (["start", "{invalid}", "--mongo-uri", UNREACHABLE], FAILED, "error: job 'a' has timeout -1s"),
        (["start", "nope.py", "--mongo-uri", UNREACHABLE], USAGE, "error: cannot load 'nope.py'"),
        (["start", NESTED, "--input", "{oops"], USAGE, "error: --input: invalid JSON"),
        (["start", NESTED], USAGE, "error: no MongoDB to start the run in"),
        (["run", ETL, "--mock", "report={}"], OK, ""),
        (
            ["run", ETL, "--mock-file", "{failing_mock}"],
            FAILED,
            "",
        ),
        (["run", "{invalid}"], FAILED, "error: job 'a' has timeout -1s"),
        (["run", "nope.py"], USAGE, "error: cannot load 'nope.py'"),
        (["run", ETL, "--input", "[1]"], USAGE, "error: --input: the run input must be a JSON object"),
        (["run", ETL, "--mock", "no-such-job={}"], USAGE, "error: "),
        (["run", ETL, "--mock", "report={oops"], USAGE, "error: --mock report: invalid JSON"),
        (["run", ETL, "--mongo-uri", UNREACHABLE], FAILED, "error: cannot use the store at MongoDB"),
        (["cancel", "r-1"], USAGE, "error: no MongoDB to cancel the run in"),
        (["cancel", "r-1", "--mongo-uri", UNREACHABLE], FAILED, "error: cannot reach MongoDB at 127.0.0.1:1"),
        (["redrive", "r-1"], USAGE, "error: no MongoDB to redrive the run in"),
        (
            ["redrive", "r-1", "--mongo-uri", UNREACHABLE],
            FAILED,
            "error: cannot reach MongoDB at 127.0.0.1:1",
        ),
        (["runs"], USAGE, "error: no MongoDB to read runs from"),
        (["runs", "--mongo-uri", UNREACHABLE], FAILED, "error: cannot reach MongoDB at 127.0.0.1:1"),
        (["status", "r-1"], USAGE, "error: no MongoDB to read runs from"),
        (["status", "r-1", "--mongo-uri", UNREACHABLE], FAILED, "error: cannot reach MongoDB at 127.0.0.1:1"),
        (["doctor"], USAGE, "error: no MongoDB to check"),
        (["template", NESTED], OK, ""),
        (["template", "nope.py"], USAGE, "error: cannot load 'nope.py'"),
        (["package", "--python", "2.7"], USAGE, "invalid choice: '2.7'"),
        (["nope"], USAGE, "invalid choice: 'nope'"),
    ],
)
def test_every_subcommand_follows_the_table(
    capsys: pytest.CaptureFixture[str],
    invalid: str,
    tmp_path: Path,
    argv: list[str],
    code: int,
    message: str,
) -> None:
    failing = tmp_path / "failing.json"
    failing.write_text('{"jobs": {"load": {"failure": {"type": "Disk", "message": "full"}}}}')
    argv = [arg.replace("{invalid}", invalid).replace("{failing_mock}", str(failing)) for arg in argv]

    actual, err = run_cli(capsys, *argv)

    assert actual == code, err
    assert message in err
    assert "Traceback" not in err
    if actual != OK:
        assert "s3cret" not in err


def test_a_connection_error_is_one_line_naming_the_host_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run_cli(capsys, "start", NESTED, "--mongo-uri", UNREACHABLE)

    assert code == FAILED
    assert err.count("\n") == 1
    assert err.startswith("error: cannot reach MongoDB at 127.0.0.1:1: ServerSelectionTimeoutError: ")
    assert "s3cret" not in err and "Topology Description" not in err


def test_a_closed_pipe_ends_quietly() -> None:
    # given a reader that goes away before flowkit writes its output
    with subprocess.Popen(
        [sys.executable, "-m", "flowkit", "run", ETL, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        # when it ends, then it says nothing and exits by the table
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == FAILED
    assert err == ""


def test_flowkit_help_imports_no_subcommand_dependency() -> None:
    code = (
        "import sys\n"
        "from flowkit.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('pydantic', 'networkx', 'rich', 'pymongo', 'boto3', 'graphviz', 'flowkit.document')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "exit codes: 0 done" in subprocess.run(
        [sys.executable, "-m", "flowkit", "--help"], capture_output=True, text=True, check=True
    ).stdout.replace("\n", " ")


def test_validate_of_a_small_file_imports_only_what_validation_uses() -> None:
    code = (
        "import sys\n"
        "from flowkit.cli import main\n"
        f"assert main(['validate', {NESTED!r}]) == 0\n"
        "heavy = ('rich', 'pymongo', 'bson', 'boto3', 'graphviz', 'slack_sdk', 'networkx', 'flowkit.diagram',\n"
        "         'flowkit.runtime', 'flowkit.local')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_every_error_class_has_a_code() -> None:
    classes = [FlowkitError]
    seen = []
    while classes:
        cls = classes.pop()
        seen.append(cls)
        classes.extend(cls.__subclasses__())
    assert all(exit_code(cls("x")) in (FAILED, USAGE) for cls in seen if cls is not InvalidWorkflow)
