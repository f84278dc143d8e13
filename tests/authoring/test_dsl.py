"""The DSL: job declaration forms, options, composition functions and operators."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowkit import Defaults, Notify, Retry, job, parallel, sequence, when, workflow
from flowkit.dsl import Job, Parallel, Serial, When
from flowkit.errors import ConditionError


def _body(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return {"got": event.get("input")}


def mk(name: str, **options: Any) -> Job:
    result: Job = job(name=name, **options)(_body)
    return result


@job
def extract(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Read the rows.

    More text that is not part of the description.
    """
    return {"rows": len(event["input"]["ids"])}


def test_bare_decorator_names_the_job_after_the_function_and_keeps_the_body_callable() -> None:
    assert isinstance(extract, Job)
    assert extract.name == "extract"
    assert extract.description == "Read the rows."
    assert extract({"input": {"ids": [1, 2, 3]}}) == {"rows": 3}


def test_decorator_with_options() -> None:
    retry = Retry(attempts=3, interval=2, backoff=2.0, max_delay=60, jitter="full")

    @job(timeout=timedelta(minutes=5), retry=retry, input={"k": 1}, description="d", qualifier="prod")
    def load(event: dict[str, Any], context: Any = None) -> None:
        return None

    assert (load.name, load.timeout, load.retry, load.input, load.description) == (
        "load",
        300.0,
        retry,
        {"k": 1},
        "d",
    )
    assert load.qualifier == "prod"


def test_body_less_job_needs_no_function() -> None:
    charge = job("charge-card", target="arn:aws:lambda:eu-west-1:123456789012:function:charge", timeout=30)
    assert (charge.name, charge.fn, charge.timeout) == ("charge-card", None, 30.0)
    with pytest.raises(TypeError, match="has no Python body"):
        charge({})


def test_named_returns_a_renamed_copy_and_never_mutates() -> None:
    eu = extract.named("extract-eu", input={"region": "eu"})
    assert (eu.name, eu.input, eu.fn) == ("extract-eu", {"region": "eu"}, extract.fn)
    assert (extract.name, extract.input) == ("extract", {})
    with pytest.raises(TypeError, match="unknown options"):
        extract.named("x", timout=3)


def test_body_must_accept_event_and_context() -> None:
    with pytest.raises(TypeError, match=r"job 'f': the body must accept \(event, context=None\)"):

        @job
        def f() -> None:
            return None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": "5m"}, "job 'x': timeout= must be seconds"),
        ({"timeout": True}, "job 'x': timeout= must be seconds"),
        ({"retry": 3}, "job 'x': retry= must be a flowkit.Retry"),
        ({"input": [1]}, "job 'x': input= must be a dict"),
        ({"needs": "a"}, "job 'x': needs= must be a list of job names"),
        ({"target": 5}, "job 'x': target= must be a str"),
    ],
)
def test_job_option_types_are_checked_at_the_declaration(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        mk("x", **options)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Retry(attempts=2.5), "attempts"),
        (lambda: Retry(interval="1s"), "interval"),
        (lambda: Retry(backoff=None), "backoff"),
        (lambda: Notify(on="run.failed"), "list of event names"),
        (lambda: Notify(slack_channel=5), "slack_channel"),
        (lambda: Defaults(timeout="1h"), "timeout"),
        (lambda: Defaults(retry={"attempts": 2}), "flowkit.Retry"),
    ],
)
def test_option_objects_check_types(build: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        build()


def test_rshift_builds_one_flat_sequence_without_mutating_operands() -> None:
    a, b, c = mk("a"), mk("b"), mk("c")
    ab = a >> b
    abc = ab >> c
    assert isinstance(abc, Serial)
    assert abc.items == (a, b, c)
    assert ab.items == (a, b)


def test_rshift_with_a_wrong_operand_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unsupported operand"):
        mk("a") >> "b"  # type: ignore[operator]


@pytest.mark.parametrize("func", [sequence, parallel])
def test_lists_are_not_silently_accepted(func: Any) -> None:
    with pytest.raises(TypeError, match=r"got a list .*sequence\(\*items\)"):
        func([mk("a"), mk("b")])


def test_a_plain_function_gets_a_hint_to_decorate_it() -> None:
    with pytest.raises(TypeError, match="decorate the function with @job"):
        parallel(_body)  # type: ignore[arg-type]


def test_nesting_to_any_depth() -> None:
    a, b, c, d = mk("a"), mk("b"), mk("c"), mk("d")
    node = parallel(sequence(a, when(a.succeeded, then=parallel(b, c))), d)
    assert isinstance(node, Parallel)
    inner = node.items[0]
    assert isinstance(inner, Serial) and isinstance(inner.items[1], When)


def test_when_requires_then_as_keyword_and_a_condition() -> None:
    a = mk("a")
    with pytest.raises(TypeError):
        when(a.succeeded, a)  # type: ignore[misc]
    with pytest.raises(TypeError, match="Python bool"):
        when(True, then=a)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a condition"):
        when("a.ok", then=a)  # type: ignore[arg-type]


def test_python_and_or_not_on_conditions_explain_the_operators() -> None:
    a, b = mk("a"), mk("b")
    with pytest.raises(ConditionError, match="& b"):
        when(a.succeeded and b.succeeded, then=b)
    with pytest.raises(ConditionError, match="is_in"):
        if a.output["x"] in [1, 2]:
            pass


def test_workflow_decorator_forms() -> None:
    @workflow
    def plain() -> Any:
        return mk("a")

    @workflow(
        name="named-flow",
        description="desc",
        notify=Notify(slack_channel="#x"),
        defaults=Defaults(qualifier="q"),
    )
    def other() -> Any:
        """Docstring is not used when description= is given."""
        return mk("a") >> mk("b")

    assert (plain.name, plain.description) == ("plain", "")
    assert (other.name, other.description, other.defaults.qualifier) == ("named-flow", "desc", "q")
    assert [j.name for j in other.jobs()] == ["a", "b"]


def test_workflow_function_must_return_a_composition() -> None:
    @workflow
    def broken() -> Any:
        return [mk("a")]

    with pytest.raises(TypeError, match="must return a job or a composition"):
        broken.build()


def test_bodies_map_compiled_names_to_python_bodies_and_skip_body_less_jobs() -> None:
    a = mk("a")
    remote = job("remote", target="fn-remote")

    @workflow
    def flow() -> Any:
        return a >> parallel(a.named("a-2"), remote)

    bodies = flow.bodies()
    assert sorted(bodies) == ["a", "a-2"]
    assert bodies["a-2"]({"input": {"x": 1}}, None) == {"got": {"x": 1}}


def test_jobs_and_compositions_are_immutable() -> None:
    a = mk("a", input={"k": 1})
    node = a >> mk("b")
    with pytest.raises(AttributeError, match="Job is immutable"):
        a.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="Serial is immutable"):
        node.items = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.input["k"] = 2  # type: ignore[index]
    assert dict(a.input) == {"k": 1}


def test_job_with_a_positional_name_used_as_a_decorator_explains_name_keyword() -> None:
    with pytest.raises(TypeError, match=r"to name a decorated function write @job\(name='extract-eu'\)"):

        @job("extract-eu")
        def extract_eu(event: dict[str, Any], context: Any = None) -> None:
            return None
