"""Mocks: the mock file, --mock options and the Python mapping, with errors that say where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowkit.document import JobSpec, Phase, Target, WorkflowDocument
from flowkit.errors import InvalidMock
from flowkit.local.mocks import (
    Outcome,
    combine,
    failure,
    load_mock_file,
    mocks_from,
    parse_mock_option,
    success,
)


def _document(*names: str) -> WorkflowDocument:
    return WorkflowDocument(
        name="shop",
        version="sha256:0",
        phases=[Phase(name="main", jobs=list(names))],
        jobs=[JobSpec(name=n, phase="main", target=Target(function=n)) for n in names],
    )


def _write(tmp_path: Path, data: object, name: str = "mocks.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_mock_file_gives_one_outcome_per_attempt_and_repeats_the_last(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "jobs": {
                "charge": [
                    {"failure": {"type": "CardDeclined", "message": "no funds"}},
                    {"success": {"id": 7}},
                ],
                "notify": {"success": None},
            }
        },
    )

    mocks = load_mock_file(path)

    assert mocks.outcome("charge", 1) == failure("CardDeclined", "no funds")
    assert mocks.outcome("charge", 2) == success({"id": 7})
    assert mocks.outcome("charge", 5) == success({"id": 7})
    assert mocks.outcome("notify", 1) == success(None)
    assert mocks.jobs == ["charge", "notify"]


def test_mock_file_errors_name_the_file_job_position_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"jobs": {"charge": [{"success": 1}, {"failure": {"tpe": "CardDeclined"}}], "refund": []}},
    )

    with pytest.raises(InvalidMock) as caught:
        load_mock_file(path)

    message = str(caught.value)
    assert (
        f"mock file {path}: job 'charge', outcome #2 (attempt 2): field 'failure.type': Field required"
        in message
    )
    assert "field 'failure.tpe': Extra inputs are not permitted" in message
    assert "job 'refund': the list of outcomes is empty" in message


def test_an_outcome_with_both_or_neither_key_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {"jobs": {"a": {"success": 1, "failure": {"type": "X"}}, "b": [{}]}})

    with pytest.raises(InvalidMock) as caught:
        load_mock_file(path)

    assert "job 'a', outcome #1 (attempt 1): an outcome has exactly one key" in str(caught.value)
    assert "job 'b', outcome #1 (attempt 1): an outcome has exactly one key" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"jobs": {"a": [}', "invalid JSON at line 1 column 17"),
        ("[1]", 'expected an object like {"jobs"'),
        ('{"jobs": {}, "extra": 1}', "unknown top-level keys ['extra']"),
        ('{"charge": [{"success": 1}]}', 'expected an object like {"jobs"'),
    ],
)
def test_malformed_mock_files_are_rejected(tmp_path: Path, content: str, expected: str) -> None:
    path = _write(tmp_path, content)

    with pytest.raises(InvalidMock, match=r"mock file .*mocks\.json") as caught:
        load_mock_file(path)

    assert expected in str(caught.value)


def test_a_missing_mock_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidMock, match=r"nope.json: cannot read it: No such file"):
        load_mock_file(tmp_path / "nope.json")


def test_mock_option_inline_and_from_file(tmp_path: Path) -> None:
    output = _write(tmp_path, {"rows": 3}, "out.json")

    inline = parse_mock_option('extract={"rows": 0}')
    from_file = parse_mock_option(f"extract=@{output}")

    assert inline.outcome("extract", 1) == success({"rows": 0})
    assert from_file.outcome("extract", 1) == success({"rows": 3})


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("extract", "expected JOB=@output.json or JOB=<JSON>"),
        ("=1", "expected JOB=@output.json or JOB=<JSON>"),
        ("extract={rows: 1}", "--mock extract: invalid JSON at line 1 column 2 (char 1)"),
        ("extract=@/nonexistent/out.json", "--mock extract=@/nonexistent/out.json: cannot read"),
    ],
)
def test_bad_mock_options_are_rejected(option: str, expected: str) -> None:
    with pytest.raises(InvalidMock) as caught:
        parse_mock_option(option)

    assert expected in str(caught.value)


def test_a_mock_for_an_unknown_job_suggests_the_closest_name() -> None:
    mocks = parse_mock_option("chrage={}")

    with pytest.raises(
        InvalidMock,
        match=r"--mock chrage: job 'chrage' is not in workflow 'shop' \(did you mean 'charge'\?\)",
    ):
        mocks.check_jobs(_document("charge", "refund"))


def test_a_mock_with_no_close_name_lists_the_jobs() -> None:
    with pytest.raises(InvalidMock, match=r"job 'zzz' is not in workflow 'shop' \(jobs: charge, refund\)"):
        mocks_from({"zzz": 1}).check_jobs(_document("refund", "charge"))


def test_python_mapping_values() -> None:
    def body(event: object, context: object) -> int:
        return 1

    mocks = mocks_from(
        {
            "a": {"rows": 1},
            "b": failure("Boom", "bad"),
            "c": [failure("Flaky"), success(2)],
            "d": body,
            "e": [1, 2],
        }
    )

    assert mocks.outcome("a", 1) == success({"rows": 1})
    assert mocks.outcome("b", 1).failed
    assert mocks.outcome("c", 2) == success(2)
    assert mocks.bodies["d"] is body
    assert mocks.outcome("e", 1) == success([1, 2])


def test_non_json_python_mock_output_is_rejected() -> None:
    with pytest.raises(InvalidMock, match="job 'a': output is not JSON"):
        mocks_from({"a": object()})


def test_later_mocks_override_earlier_ones_job_by_job() -> None:
    merged = combine([mocks_from({"a": 1, "b": 2}), parse_mock_option("b=3")])

    assert merged.outcome("a", 1) == success(1)
    assert merged.outcome("b", 1) == success(3)
    assert isinstance(merged.outcome("b", 1), Outcome)
