"""The condition interpreter: whitelisted operators, MISSING semantics, readable text."""

from __future__ import annotations

import pytest

from flowkit.conditions import MISSING, check, evaluate, referenced_jobs, status_referenced_jobs, to_text
from flowkit.errors import ConditionError

ROWS = {"ref": ["jobs", "extract", "output", "rows"]}
MODE = {"ref": ["input", "mode"]}
CTX = {
    "input": {"mode": "full", "tags": ["a", "b"]},
    "jobs": {"extract": {"status": "succeeded", "output": {"rows": 12}}, "charge": {"status": "failed"}},
}


def op(name: str, *args: object) -> dict[str, object]:
    return {"op": name, "args": list(args)}


def const(value: object) -> dict[str, object]:
    return {"const": value}


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (op("gt", ROWS, const(0)), True),
        (op("le", ROWS, const(11)), False),
        (op("eq", MODE, const("full")), True),
        (op("ne", MODE, const("full")), False),
        (op("in", MODE, const(["full", "delta"])), True),
        (op("not_in", MODE, const(["delta"])), True),
        (op("exists", {"ref": ["input", "nope"]}), False),
        (op("eq", {"ref": ["jobs", "charge", "status"]}, const("failed")), True),
        (op("and", op("gt", ROWS, const(0)), op("eq", MODE, const("delta"))), False),
        (op("or", op("gt", ROWS, const(0)), op("eq", MODE, const("delta"))), True),
        (op("not", op("exists", MODE)), False),
        (op("truthy", {"ref": ["input", "tags"]}), True),
    ],
)
def test_evaluate(node: dict[str, object], expected: bool) -> None:
    check(node)
    assert evaluate(node, CTX) is expected


def test_missing_reference_compares_false_and_never_raises() -> None:
    missing = {"ref": ["jobs", "charge", "output", "id"]}
    assert evaluate(missing, CTX) is MISSING
    assert evaluate(op("gt", missing, const(0)), CTX) is False
    assert evaluate(op("ne", missing, const(0)), CTX) is True
    assert evaluate(op("lt", MODE, const(3)), CTX) is False  # str < int is not an error


def test_json_booleans_are_not_numbers() -> None:
    assert evaluate(op("eq", const(True), const(1)), CTX) is False


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"op": "__import__", "args": []}, "unknown operator '__import__'"),
        ({"op": "eq", "args": [MODE]}, "takes 2 arguments, got 1"),
        ({"ref": ["env", "HOME"]}, "must start with 'input' or 'jobs'"),
        ({"ref": ["jobs", "x", "secret"]}, "['jobs', <name>, 'output'|'status', ...]"),
        ({"const": float("nan")}, "is not JSON"),
        ({"ref": ["input"], "const": 1}, "a node is"),
    ],
)
def test_check_rejects_malformed_ast(node: dict[str, object], message: str) -> None:
    with pytest.raises(ConditionError, match=None) as info:
        check(node)
    assert message in str(info.value)


def test_references_and_text() -> None:
    node = op(
        "and",
        op("gt", ROWS, const(0)),
        op("not", op("eq", {"ref": ["jobs", "charge", "status"]}, const("failed"))),
    )
    assert referenced_jobs(node) == {"extract", "charge"}
    assert status_referenced_jobs(node) == {"charge"}
    assert to_text(node) == "extract.output.rows > 0 and not charge.failed"
    assert to_text(op("eq", MODE, const("full"))) == 'input.mode == "full"'
