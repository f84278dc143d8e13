"""The neutral diagram model: routing through decisions, empty arms, forks, joins, reduction, run states."""

from __future__ import annotations

import pytest
from diagram_docs import ROWS, all_to_all, checkout, document, etl, fan_out, job, op, ref

from flowkit.diagram import to_dot
from flowkit.diagram.extract import END, START, extract
from flowkit.diagram.model import DiagramGraph, EdgeKind, NodeKind
from flowkit.document import Branch, JobRun, JobState, Run, Target
from flowkit.errors import ConditionError, RenderError


def edges(graph: DiagramGraph) -> set[tuple[str, str, str, str]]:
    return {(e.source, e.target, e.kind.value, e.label) for e in graph.edges}


def test_when_arms_leave_a_decision_on_labelled_edges() -> None:
    graph = extract(etl())

    assert edges(graph) == {
        (START, "extract", "normal", ""),
        ("extract", "@when/w1", "normal", ""),
        ("@when/w1", "transform", "then", "extract.output.rows > 0"),
        ("transform", "load", "normal", ""),
        ("@when/w1", "notify_empty", "otherwise", "otherwise"),
        ("load", "report", "normal", ""),
        ("notify_empty", "report", "normal", ""),
        ("report", END, "normal", ""),
    }
    assert graph.node("@when/w1").kind is NodeKind.DECISION


def test_jobs_carry_target_retries_and_timeout() -> None:
    graph = extract(etl())

    assert graph.node("extract").details == ("\u2192 etl-extract:prod", "timeout 5m")
    assert graph.node("transform").details == ("\u2192 fn-transform", "3 attempts")
    # an ARN is shortened to the function name, its qualifier kept
    assert graph.node("load").details == ("\u2192 etl-load:live",)


def test_phases_become_clusters_in_order() -> None:
    graph = extract(etl())

    assert [(c.label, c.nodes) for c in graph.clusters] == [
        ("extract", ("extract",)),
        ("process", ("@when/w1", "transform", "load", "notify_empty")),
        ("report", ("report",)),
    ]


def test_an_empty_arm_is_an_otherwise_edge_past_the_when_and_nested_whens_chain() -> None:
    graph = extract(checkout())

    assert edges(graph) == {
        (START, "charge", "normal", ""),
        ("charge", "@when/paid", "normal", ""),
        ("@when/paid", "refund", "then", "charge.failed"),
        ("@when/paid", "@when/express", "otherwise", "otherwise"),
        ("@when/express", "ship_express", "then", "input.express"),
        ("@when/express", "done", "otherwise", "otherwise"),
        ("refund", "done", "normal", ""),
        ("ship_express", "done", "normal", ""),
        ("done", END, "normal", ""),
    }
    assert "failure handled" in graph.node("charge").details


def test_an_empty_arm_at_the_end_goes_to_the_end() -> None:
    doc = document(
        "tail-when",
        [job("a", "p"), job("b", "q", ["a"], condition=ROWS)],
        [Branch(id="w", condition=ROWS, then=["b"])],
    )

    assert ("@when/w", END, "otherwise", "otherwise") in edges(extract(doc))


def test_a_condition_without_a_branch_gets_its_own_decision() -> None:
    doc = document("bare", [job("extract", "p"), job("b", "p", ["extract"], condition=ROWS)])

    graph = extract(doc)

    assert ("@if/b", "b", "then", "extract.output.rows > 0") in edges(graph)
    assert ("extract", "@if/b", "normal", "") in edges(graph)


def test_an_arm_entering_several_jobs_is_labelled_once_at_a_fork() -> None:
    doc = document(
        "fork",
        [
            job("extract", "p"),
            job("x", "q", ["extract"], condition=ROWS),
            job("y", "q", ["extract"], condition=ROWS),
        ],
        [Branch(id="w", condition=ROWS, then=["x", "y"])],
    )

    graph = extract(doc)

    labelled = [e for e in graph.edges if e.label]
    assert [(e.source, e.target, e.label) for e in labelled if e.kind is EdgeKind.THEN] == [
        ("@when/w", "@fork/when/w/then", "extract.output.rows > 0")
    ]
    assert ("@fork/when/w/then", "x", "then", "") in edges(graph)
    assert ("@fork/when/w/then", "y", "then", "") in edges(graph)


def test_jobs_waiting_for_the_same_jobs_share_one_join() -> None:
    graph = extract(all_to_all(50))

    joins = [n for n in graph.nodes if n.kind is NodeKind.JOIN]
    assert [j.id for j in joins] == ["@join/1"]
    assert len(graph.edges) == 50 + 50 + 50 + 50  # start->a, a->join, join->b, b->end
    assert sum(1 for e in graph.edges if e.target == "@join/1") == 50


def test_needs_implied_by_other_needs_are_not_drawn() -> None:
    doc = document("reduce", [job("a", "p"), job("b", "p", ["a"]), job("c", "p", ["a", "b"])])

    assert edges(extract(doc)) == {
        (START, "a", "normal", ""),
        ("a", "b", "normal", ""),
        ("b", "c", "normal", ""),
        ("c", END, "normal", ""),
    }


def test_a_cyclic_document_is_drawn_as_declared() -> None:
    doc = document("cycle", [job("a", "p", ["b"]), job("b", "p", ["a"])])

    graph = extract(doc)
    assert ("a", "b", "normal", "") in edges(graph) and ("b", "a", "normal", "") in edges(graph)


def test_extraction_is_deterministic() -> None:
    assert extract(fan_out(60)) == extract(fan_out(60))


def test_a_malformed_condition_is_reported_with_its_branch() -> None:
    doc = document(
        "bad",
        [job("a", "p"), job("b", "p", ["a"])],
        [Branch(id="w", condition={"op": "nope", "args": []}, then=["b"])],
    )

    with pytest.raises(ConditionError, match=r"condition of branch 'w'.*unknown operator 'nope'"):
        extract(doc)


# ----------------------------------------------------------------------------- run states


def test_a_state_mapping_colours_jobs_and_missing_jobs_are_pending() -> None:
    graph = extract(etl(), {"extract": "succeeded", "transform": JobState.FAILED})

    assert graph.node("extract").state is JobState.SUCCEEDED
    assert graph.node("transform").state is JobState.FAILED
    assert graph.node("report").state is JobState.PENDING
    assert graph.node("transform").details[-1] == "failed"
    assert graph.legend == (
        JobState.PENDING,
        JobState.RUNNING,
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.SKIPPED,
    )
    assert graph.run_label is None


def test_a_stored_run_colours_jobs_and_names_the_run() -> None:
    doc = etl()
    run = Run(
        _id="r-7",
        workflow=doc.name,
        version=doc.version,
        config=doc,
        status="failed",
        jobs={
            "extract": JobRun(state="succeeded", attempt=1),
            "transform": JobRun(state="timed_out", attempt=3, error={"type": "Timeout", "message": "30s"}),
        },
        created_at="2026-11-27T00:00:00Z",
    )

    graph = extract(doc, run)

    assert graph.run_label == "run r-7: failed"
    assert graph.node("transform").details[-1] == "timed_out (attempt 3 of 3)"
    assert "Timeout: 30s" in graph.node("transform").tooltip
    assert JobState.TIMED_OUT in graph.legend  # an extra state in use joins the legend


def test_an_exported_run_whose_error_is_in_the_results_collection_says_so() -> None:
    doc = etl()
    run = Run(
        _id="r-8",
        workflow=doc.name,
        version=doc.version,
        config=doc,
        status="failed",
        jobs={"extract": JobRun(state="failed", attempt=1, error_ref="1/error/0123456789abcdef01234567")},
        created_at="2026-11-27T00:00:00Z",
    )

    graph = extract(doc, run)

    assert graph.node("extract").tooltip == (
        "error too long for the run document: results collection, 1/error/0123456789abcdef01234567"
    )


def test_unknown_states_are_all_reported() -> None:
    with pytest.raises(RenderError) as info:
        extract(etl(), {"extract": "done", "load": "ok", "report": "succeeded"})

    message = str(info.value)
    assert "job 'extract': 'done'" in message and "job 'load': 'ok'" in message
    assert "allowed: pending, dispatched, running" in message


def test_states_for_undefined_jobs_are_rejected() -> None:
    with pytest.raises(RenderError, match=r"states for 'nope', 'zzz', which workflow 'nightly-etl' does not"):
        extract(etl(), {"zzz": "running", "nope": "failed"})


def test_a_run_of_another_workflow_is_rejected() -> None:
    doc = etl()
    other = checkout()
    run = Run(_id="r-1", workflow=other.name, version=other.version, config=other, jobs={},
              created_at="2026-11-27T00:00:00Z")  # fmt: skip

    with pytest.raises(RenderError, match="run 'r-1' is a run of workflow 'checkout', not of 'nightly-etl'"):
        extract(doc, run)


def test_a_run_of_the_wrong_type_is_rejected() -> None:
    with pytest.raises(RenderError, match="got list"):
        extract(etl(), ["extract"])  # type: ignore[arg-type]


def test_text_shaping_of_long_names_and_targets() -> None:
    from flowkit.diagram import _text

    assert _text.wrap_name("process_customer_partition_00_of_the_nightly_batch") == [
        "process_customer_",
        "partition_00_of_the_",
        "nightly_batch",
    ]
    assert _text.wrap_name("x" * 30) == ["x" * 24, "x" * 6]
    assert [_text.seconds_text(s) for s in (0.5, 30, 90, 300, 3600, 5400)] == [
        "0.5s", "30s", "1m30s", "5m", "1h", "1h30m",
    ]  # fmt: skip
    assert _text.target_text(Target(function="")) == "no target"
    assert _text.target_text(Target(function="arn:aws:lambda:eu-west-1:1:function:f", qualifier="7")) == "f:7"


def test_conditions_with_operators_read_as_text() -> None:
    cond = op("and", ROWS, op("in", ref("input", "mode"), {"const": ["full", "delta"]}))
    doc = document("texty", [job("extract", "p"), job("b", "p", ["extract"], condition=cond)])

    labels = {e.label for e in extract(doc).edges if e.kind is EdgeKind.THEN}

    assert labels == {'extract.output.rows > 0 and input.mode in ["full", "delta"]'}


def test_an_empty_arm_skips_to_what_directly_follows_the_when() -> None:
    # cleanup also needs load, but through report: the otherwise edge goes to report only
    doc = document(
        "after",
        [
            job("extract", "a"),
            job("load", "b", ["extract"], condition=ROWS),
            job("report", "c", ["extract", "load"]),
            job("cleanup", "d", ["load", "report"]),
        ],
        [Branch(id="w", condition=ROWS, then=["load"])],
    )

    otherwise = {(e.source, e.target) for e in extract(doc).edges if e.kind is EdgeKind.OTHERWISE}

    assert otherwise == {("@when/w", "report")}


def test_attempts_used_are_drawn_per_job() -> None:
    doc = etl()  # transform retries (3 attempts); load does not
    run = Run(
        _id="r-8",
        workflow=doc.name,
        version=doc.version,
        config=doc,
        status="running",
        redrive_count=1,
        jobs={
            "extract": JobRun(state="succeeded", attempt=1),
            "transform": JobRun(state="waiting", attempt=1, error={"type": "Timeout", "message": "30s"}),
            "load": JobRun(state="running", attempt=2, attempt_base=1),
        },
        created_at="2026-11-27T00:00:00Z",
    )

    graph = extract(doc, run)

    assert graph.node("extract").details[-1] == "succeeded"
    assert graph.node("transform").details[-1] == "waiting (attempt 1 of 3)"
    assert graph.node("load").details[-1] == "running (attempt 2: 1 of 1 since the redrive)"
    assert JobState.WAITING in graph.legend
    assert "#fef9c3" in to_dot(doc, run)  # the waiting colour
