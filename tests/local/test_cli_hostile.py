"""Bad command-line input on purpose: a one-line error naming the option and the problem, exit 2 (or 1
for a workflow that cannot be built, like ``flowkit validate``), never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowkit.cli import main

NESTED = str(Path(__file__).resolve().parents[2] / "workflows" / "nested.py")
MOCK = ["--mock", 'score={"v": 1}']


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" not in err
    return code, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{}")
    (tmp_path / "big.json").write_text(f'{{"a": {2**64}}}')
    (tmp_path / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (tmp_path / "huge.json").write_text('{"blob": "%s"}' % ("x" * (16 * 1024 * 1024 + 10)))
    (tmp_path / "raises.py").write_text(
        "from flowkit import job, workflow\n\n"
        "@job\ndef a(event, context=None):\n    return 1\n\n"
        "@workflow\ndef boom():\n    raise RuntimeError('oops')\n"
    )
    names = ("bad.json", "big.json", "deep.json", "huge.json", "raises.py")
    return {name.split(".")[0]: str(tmp_path / name) for name in names}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input", "@{bad}"], "is not UTF-8 text (byte 0xff at offset 0)"),
        (["--mock-file", "{bad}"], "is not UTF-8 text (byte 0xff at offset 0)"),
        (["--input", "@{big}"], "input.a: the integer 18446744073709551616 does not fit in 64 bits"),
        (["--input", "@{deep}"], "the JSON is nested too deeply to read"),
        (["--input", '{{"a": NaN}}'], "--input: NaN is not JSON"),
        (["--input", "@{huge}"], "over MongoDB's 16777216-byte document limit"),
    ],
    ids=["input-not-utf8", "mock-file-not-utf8", "int64", "deep", "nan", "over-16-mb"],
)
def test_bad_json_input_is_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], argv: list[str], message: str
) -> None:
    args = [arg.format(**files) for arg in argv]
    code, err = _cli(capsys, "run", NESTED, *MOCK, *args)
    assert code == 2
    assert message in err


def test_a_nan_mock_is_exit_2_naming_the_mock(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "run", NESTED, "--mock", 'score={"v": NaN}')
    assert code == 2
    assert "--mock score: NaN is not JSON" in err


def test_a_workflow_function_that_raises_is_reported_like_validate_does(
    capsys: pytest.CaptureFixture[str], files: dict[str, Any]
) -> None:
    code, err = _cli(capsys, "run", files["raises"])
    assert code == 1
    assert "workflow 'boom' could not be built: RuntimeError: oops" in err
    assert "raise RuntimeError('oops')" in err  # the user's own line, not flowkit's frames


def test_a_diagram_path_that_is_a_directory_is_refused_before_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "run.svg"
    folder.mkdir()
    code, err = _cli(capsys, "run", NESTED, *MOCK, "--diagram", str(folder))
    assert code == 2
    assert f"--diagram {folder}: is a directory" in err
