"""The compiler: phases, needs, when-arms, branches, defaults, determinism."""

from __future__ import annotations

from typing import Any

import pytest
from dsl_builders import flow, mk

from flowkit import Defaults, Notify, Retry, compile, input, job, parallel, sequence, when
from flowkit.document import WorkflowDocument, content_version


def needs(doc: WorkflowDocument) -> dict[str, list[str]]:
    return {j.name: j.needs for j in doc.jobs}


def test_phases_are_top_level_stages_named_after_single_jobs_or_numbered() -> None:
    a, b, c, d = mk("a"), mk("b"), mk("c"), mk("d")
    doc = compile(flow(a >> parallel(b, c) >> d))
    assert [(p.name, p.jobs) for p in doc.phases] == [("a", ["a"]), ("stage-2", ["b", "c"]), ("d", ["d"])]
    assert [j.phase for j in doc.jobs] == ["a", "stage-2", "stage-2", "d"]


def test_a_root_that_is_not_a_sequence_is_one_phase() -> None:
    a, b = mk("a"), mk("b")
    doc = compile(flow(parallel(a, b)))
    assert [(p.name, p.jobs) for p in doc.phases] == [("stage-1", ["a", "b"])]
    assert needs(doc) == {"a": [], "b": []}


def test_parallel_of_sequences_keeps_its_parallelism_and_joins_on_all_tails() -> None:
    p, a1, a2, b1, z = mk("p"), mk("a1"), mk("a2"), mk("b1"), mk("z")
    doc = compile(flow(p >> parallel(a1 >> a2, b1) >> z))
    assert needs(doc) == {"p": [], "a1": ["p"], "a2": ["a1"], "b1": ["p"], "z": ["a2", "b1"]}
    assert [j.name for j in doc.jobs] == ["p", "a1", "a2", "b1", "z"]


def test_when_guards_every_job_of_each_arm_and_the_join_needs_both_arms() -> None:
    a, t1, t2, o1, z = mk("a"), mk("t1"), mk("t2"), mk("o1"), mk("z")
    cond = a.output["rows"] > 0
    doc = compile(flow(a >> when(cond, then=t1 >> t2, otherwise=o1) >> z))
    guard, negated = cond.ast, {"op": "not", "args": [cond.ast]}
    assert {j.name: j.condition for j in doc.jobs} == {
        "a": None,
        "t1": guard,
        "t2": guard,
        "o1": negated,
        "z": None,
    }
    assert needs(doc) == {"a": [], "t1": ["a"], "t2": ["t1"], "o1": ["a"], "z": ["o1", "t2"]}
    assert [(b.id, b.condition, b.then, b.otherwise) for b in doc.branches] == [
        ("when-1", guard, ["t1", "t2"], ["o1"])
    ]


def test_when_without_otherwise_joins_on_the_upstream_tails_too() -> None:
    a, b, t, z = mk("a"), mk("b"), mk("t"), mk("z")
    doc = compile(flow(parallel(a, b) >> when(input["go"] == True, then=t) >> z))  # noqa: E712
    assert needs(doc)["t"] == ["a", "b"]
    assert needs(doc)["z"] == ["a", "b", "t"]


def test_nested_when_conditions_are_the_and_of_enclosing_guards() -> None:
    a, inner, outer_else = mk("a"), mk("inner"), mk("outer-else")
    first, second = input["x"] == 1, input["y"] == 2
    doc = compile(flow(a >> when(first, then=when(second, then=inner), otherwise=outer_else)))
    assert doc.job("inner").condition == {"op": "and", "args": [first.ast, second.ast]}
    assert doc.job("outer-else").condition == {"op": "not", "args": [first.ast]}
    assert [b.id for b in doc.branches] == ["when-1", "when-2"]
    assert doc.branches[0].then == ["inner"]


def test_failure_handled_marks_jobs_whose_status_a_condition_reads() -> None:
    charge, refund, ship = mk("charge"), mk("refund"), mk("ship")
    doc = compile(flow(charge >> when(charge.failed, then=refund, otherwise=ship)))
    assert {j.name: j.failure_handled for j in doc.jobs} == {"charge": True, "refund": False, "ship": False}


def test_output_references_do_not_mark_failure_handled() -> None:
    a, b = mk("a"), mk("b")
    doc = compile(flow(a >> when(a.output["n"] > 1, then=b)))
    assert not doc.job("a").failure_handled


def test_explicit_needs_express_arbitrary_dags_and_are_sorted() -> None:
    a, b, c = mk("a"), mk("b"), mk("c", needs=["b", "a"])
    doc = compile(flow(parallel(a, b, c)))
    assert needs(doc) == {"a": [], "b": [], "c": ["a", "b"]}


def test_target_resolution_and_defaults() -> None:
    with_prefix = mk("load", timeout=None)
    explicit = job("charge", target="arn:aws:lambda:eu-west-1:1:function:charge", qualifier="7")
    defaults = Defaults(
        function_prefix="etl-", qualifier="prod", timeout=60, retry=Retry(attempts=2, jitter="full")
    )
    doc = compile(flow(with_prefix >> explicit, defaults=defaults))
    load, charge = doc.job("load"), doc.job("charge")
    assert (load.target.function, load.target.qualifier) == ("etl-load", "prod")
    assert (charge.target.function, charge.target.qualifier) == (
        "arn:aws:lambda:eu-west-1:1:function:charge",
        "7",
    )
    assert (load.timeout_seconds, load.retry.max_attempts, load.retry.jitter) == (60.0, 2, "full")
    assert load.handler == "dsl_builders:noop_body"
    assert charge.handler is None


def test_without_prefix_the_target_is_the_job_name_and_retry_defaults_to_one_attempt() -> None:
    doc = compile(flow(mk("a")))
    assert doc.job("a").target.function == "a"
    assert doc.job("a").retry.max_attempts == 1


def test_retry_fields_map_to_the_document() -> None:
    a = mk("a", retry=Retry(attempts=4, interval=3, backoff=1.5, max_delay=30))
    retry = compile(flow(a)).job("a").retry
    assert (retry.max_attempts, retry.interval_seconds, retry.backoff_rate, retry.max_delay_seconds) == (
        4,
        3.0,
        1.5,
        30.0,
    )


def test_workflow_metadata_and_notifications() -> None:
    notify = Notify(slack_channel="#etl", on=["run.failed", "job.failed"], mention="<!here>", webhook=True)
    doc = compile(flow(mk("a", input={"k": [1, 2]}), name="etl", description="d", notify=notify))
    assert (doc.name, doc.description, doc.job("a").input) == ("etl", "d", {"k": [1, 2]})
    assert doc.notifications.model_dump() == {
        "slack_channel": "#etl",
        "on": ["run.failed", "job.failed"],
        "mention": "<!here>",
        "webhook": True,
    }


def test_compiling_twice_gives_identical_bytes_and_a_content_version() -> None:
    a, b, c = mk("a"), mk("b"), mk("c")
    wf = flow(a >> when(a.failed, then=b, otherwise=c))
    first, second = compile(wf), compile(wf)
    assert first.to_json() == second.to_json()
    dumped = first.model_dump(mode="json")
    assert first.version == content_version(dumped)
    assert first.version.startswith("sha256:")


def test_any_change_changes_the_version() -> None:
    a, b = mk("a"), mk("b")
    base = compile(flow(a >> b)).version
    assert compile(flow(a >> b.named("b", timeout=11))).version != base
    assert compile(flow(parallel(a, b))).version != base


@pytest.mark.parametrize("root", [sequence(), parallel()])
def test_compile_of_an_empty_workflow_fails(root: Any) -> None:
    from flowkit.errors import InvalidWorkflow

    with pytest.raises(InvalidWorkflow):
        compile(flow(root))


def test_compile_rejects_a_non_workflow() -> None:
    with pytest.raises(TypeError, match="expects a @workflow"):
        compile(mk("a"))  # type: ignore[arg-type]
