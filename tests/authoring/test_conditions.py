"""The condition interpreter: whitelisted operators, MISSING semantics, readable text."""

from __future__ import annotations

from typing import Any

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
        ({"ref": ["jobs", "x", "secret"]}, "['jobs', <name>, 'output'|'status'|'error', ...]"),
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
        op("not", op("in", {"ref": ["jobs", "charge", "status"]}, const(["failed", "timed_out"]))),
    )
    assert referenced_jobs(node) == {"extract", "charge"}
    assert status_referenced_jobs(node) == {"charge"}
    assert to_text(node) == "extract.output.rows > 0 and not charge.failed"
    assert to_text(op("eq", MODE, const("full"))) == 'input.mode == "full"'


# --------------------------------------------------------------------------- the Python builders


def _job_body(event: object, context: object = None) -> None:
    return None


def _jobs() -> tuple[Any, Any]:
    from flowkit import job

    return job(name="extract")(_job_body), job(name="charge")(_job_body)


def test_builders_produce_the_ast() -> None:
    from flowkit import input

    extract, charge = _jobs()
    cond = (extract.output["rows"] > 0) & ~charge.failed
    assert cond.ast == op(
        "and",
        op("gt", ROWS, const(0)),
        op("not", op("in", {"ref": ["jobs", "charge", "status"]}, const(["failed", "timed_out"]))),
    )
    assert to_text(cond.ast) == "extract.output.rows > 0 and not charge.failed"
    assert (input["mode"] == "full").ast == op("eq", MODE, const("full"))


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda i, e: i["mode"] != "full", op("ne", MODE, const("full"))),
        (lambda i, e: e.output["rows"] < 5, op("lt", ROWS, const(5))),
        (lambda i, e: e.output["rows"] <= 5, op("le", ROWS, const(5))),
        (lambda i, e: e.output["rows"] >= 5, op("ge", ROWS, const(5))),
        (lambda i, e: i["mode"].is_in(["full", "delta"]), op("in", MODE, const(["full", "delta"]))),
        (lambda i, e: i["mode"].not_in(("a",)), op("not_in", MODE, const(["a"]))),
        (lambda i, e: i["mode"].exists(), op("exists", MODE)),
        (lambda i, e: e.succeeded, op("eq", {"ref": ["jobs", "extract", "status"]}, const("succeeded"))),
        (lambda i, e: e.skipped, op("eq", {"ref": ["jobs", "extract", "status"]}, const("skipped"))),
        (
            lambda i, e: i["a"] | i["b"],
            op("or", op("truthy", {"ref": ["input", "a"]}), op("truthy", {"ref": ["input", "b"]})),
        ),
        (
            lambda i, e: e.output["items"][0] == i["first"],
            op("eq", {"ref": ["jobs", "extract", "output", "items", 0]}, {"ref": ["input", "first"]}),
        ),
    ],
)
def test_each_builder(build: Any, expected: dict[str, object]) -> None:
    from flowkit import input

    extract, _ = _jobs()
    assert build(input, extract).ast == expected


def test_and_or_flatten_same_operator() -> None:
    from flowkit import input

    a, b, c = input["a"] == 1, input["b"] == 2, input["c"] == 3
    assert [arg["op"] for arg in ((a & b) & c).ast["args"]] == ["eq", "eq", "eq"]
    assert len(((a | b) | c).ast["args"]) == 3


def test_bare_reference_as_condition_means_truthy() -> None:
    from flowkit import input, job, when

    node = when(input["dry_run"], then=job(name="x")(_job_body))
    assert node.condition.ast == op("truthy", {"ref": ["input", "dry_run"]})


def test_references_compare_by_ast_with_same_as_not_eq() -> None:
    from flowkit import input

    assert input["mode"].same_as(input["mode"])
    assert not input["mode"].same_as(input["other"])
    assert not isinstance(input["mode"] == input["mode"], bool)
    with pytest.raises(TypeError):
        hash(input["mode"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda i: bool(i["a"] == 1), "cannot be used as a Python bool"),
        (lambda i: i["a"] == 1 and i["b"] == 2, "`a & b`"),
        (lambda i: not i["a"], "`~a`"),
        (lambda i: i["a"] == object(), "only JSON values"),
        (lambda i: i["a"] > float("nan"), "only JSON values"),
        (lambda i: i[1.5], "reference keys are str or int"),
    ],
)
def test_builder_misuse_raises_condition_error(build: Any, message: str) -> None:
    from flowkit import input

    with pytest.raises(ConditionError) as info:
        build(input)
    assert message in str(info.value)


def test_status_reference_takes_no_keys() -> None:
    extract, _ = _jobs()
    with pytest.raises(ConditionError, match="has no keys"):
        extract.status["x"]


def test_built_conditions_evaluate_like_their_ast() -> None:
    from flowkit import input

    extract, charge = _jobs()
    cond = (extract.output["rows"] > 10) & (input["mode"].is_in(["full"])) & charge.failed
    assert evaluate(cond.ast, CTX) is True
    assert evaluate((~cond).ast, CTX) is False


# --------------------------------------------------------------------------- properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "rows"]), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def _conditions(draw: st.DrawFn, depth: int = 3) -> Any:
    from flowkit import input

    extract, _ = _jobs()
    ref = draw(
        st.sampled_from(
            [input["a"], input["b"]["rows"], extract.output["rows"], extract.output["a"][0], extract.status]
        )
    )
    if depth == 0 or draw(st.booleans()):
        leaf = draw(st.sampled_from(["eq", "ne", "lt", "ge", "in", "not_in", "exists", "truthy"]))
        value = draw(_JSON)
        if leaf == "in":
            return ref.is_in(value if isinstance(value, list) else [value])
        if leaf == "not_in":
            return ref.not_in(value if isinstance(value, list) else [value])
        if leaf == "exists":
            return ref.exists()
        if leaf == "truthy":
            return ref.truthy()
        return {"eq": ref == value, "ne": ref != value, "lt": ref < value, "ge": ref >= value}[leaf]
    left, right = draw(_conditions(depth=depth - 1)), draw(_conditions(depth=depth - 1))
    return draw(st.sampled_from([left & right, left | right, ~left]))


@settings(max_examples=150, deadline=None)
@given(
    cond=_conditions(),
    run_input=_JSON,
    output=_JSON,
    status=st.sampled_from(["succeeded", "failed", "skipped"]),
)
def test_built_conditions_are_valid_and_evaluate_to_a_bool_on_any_context(
    cond: Any, run_input: Any, output: Any, status: str
) -> None:
    check(cond.ast)
    assert to_text(cond.ast)
    context = {"input": run_input, "jobs": {"extract": {"status": status, "output": output}}}
    assert isinstance(evaluate(cond.ast, context), bool)
    assert evaluate((~cond).ast, context) is (not evaluate(cond.ast, context))


def test_to_text_of_a_status_compared_with_a_list_does_not_crash() -> None:
    node = op("eq", {"ref": ["jobs", "charge", "status"]}, const(["failed"]))
    assert to_text(node) == 'charge.status == ["failed"]'


def _nested(depth: int) -> dict[str, object]:
    node: dict[str, object] = {"op": "eq", "args": [{"ref": ["input", "a"]}, {"const": 1}]}
    for level in range(depth - 1):
        node = {"op": "not" if level % 2 else "and", "args": [node] if level % 2 else [node, {"const": True}]}
    return node


def test_a_condition_nested_deeper_than_the_limit_is_refused_naming_the_limit() -> None:
    from flowkit.conditions import check
    from flowkit.errors import ConditionError

    check(_nested(32), where="condition of job 'x'")
    with pytest.raises(ConditionError) as caught:
        check(_nested(150), where="condition of job 'x'")
    assert str(caught.value) == (
        "condition of job 'x': nested deeper than 32 levels; flatten it (a & b & c is one level) or split it"
    )
