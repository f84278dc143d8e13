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


def test_a_job_name_too_long_for_graphviz_is_refused_before_drawing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "long.py"
    source.write_text(
        "from flowkit import job, workflow\n\n"
        f"a = job('{'a' * 16_400}', target='fn-a', timeout=5)\n\n"
        "@workflow\ndef long():\n    return a\n"
    )
    code, err = _cli(capsys, "diagram", str(source), "-o", str(tmp_path / "out.svg"))
    assert code == 1
    assert "is 16400 characters long; the limit is 128" in err
    assert not (tmp_path / "out.svg").exists()


def test_a_condition_nested_150_deep_is_refused_at_the_users_line_by_validate_and_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "deep_condition.py"
    source.write_text(
        "from flowkit import input, job, when, workflow\n\n"
        "a = job('a', target='fn-a', timeout=5)\n"
        "b = job('b', target='fn-b', timeout=5)\n"
        "cond = input['x'] == 1\n"
        "for _ in range(75):\n    cond = ~(cond | (input['y'] == 2))\n\n"
        "@workflow\ndef deep():\n    return a >> when(cond, then=b)\n"
    )
    # The condition is refused while the module builds it, so the loader reports it with the user's line.
    for command in ("validate", "run"):
        code, err = _cli(capsys, command, str(source))
        assert code == 2, command
        assert "nested deeper than 32 levels" in err, command
        assert "cond = ~(cond | (input['y'] == 2))" in err, command
