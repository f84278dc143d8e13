"""Pure decisions on run documents: no database involved."""

from __future__ import annotations

from typing import Any

from _harness import document, input_eq, job, output_gt, status_is

from flowkit.runtime import engine
from flowkit.runtime.start import new_run_document


def run_of(
    jobs: list[dict[str, Any]], states: dict[str, str], *, input: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    run = new_run_document(document("wf", jobs, **kw), input or {}, "r")
    for name, state in states.items():
        run["jobs"][name]["state"] = state
    return run


def test_only_jobs_without_needs_are_ready_at_the_start() -> None:
    run = run_of([job("a"), job("b"), job("c", "a", "b")], {})
    assert engine.decide(run) == engine.Decision(claim=["a", "b"], skip=[])


def test_a_join_waits_for_every_need() -> None:
    jobs = [job("a"), job("b"), job("c", "a", "b")]
    assert engine.decide(run_of(jobs, {"a": "succeeded", "b": "running"})).claim == []
    assert engine.decide(run_of(jobs, {"a": "succeeded", "b": "succeeded"})).claim == ["c"]


def test_a_false_condition_skips_and_a_skipped_need_satisfies_the_join() -> None:
    jobs = [job("a"), job("b", "a", condition=input_eq("mode", "full")), job("c", "a", "b")]
    assert engine.decide(run_of(jobs, {"a": "succeeded"}, input={"mode": "quick"})) == engine.Decision(
        skip=["b"]
    )
    assert engine.decide(run_of(jobs, {"a": "succeeded"}, input={"mode": "full"})) == engine.Decision(
        claim=["b"]
    )
    assert engine.decide(run_of(jobs, {"a": "succeeded", "b": "skipped"})).claim == ["c"]


def test_conditions_read_outputs_of_succeeded_jobs_only() -> None:
    jobs = [job("a"), job("b", "a", condition=output_gt("a", "rows", 0))]
    run = run_of(jobs, {"a": "succeeded"})
    run["jobs"]["a"]["output"] = {"rows": 3}
    assert engine.decide(run).claim == ["b"]
    run["jobs"]["a"]["output"] = {"rows": 0}
    assert engine.decide(run).skip == ["b"]


def test_a_handled_failure_satisfies_its_dependents_and_runs_the_handler() -> None:
    jobs = [
        job("charge", failure_handled=True),
        job("refund", "charge", condition=status_is("charge", "failed")),
        job("ship", "charge", condition={"op": "not", "args": [status_is("charge", "failed")]}),
    ]
    run = run_of(jobs, {"charge": "failed"})
    assert engine.decide(run) == engine.Decision(claim=["refund"], skip=["ship"])
    assert engine.outcome(run) is None


def test_an_unhandled_failure_blocks_dependents_and_fails_the_run() -> None:
    jobs = [job("a"), job("b"), job("c", "a", "b")]
    run = run_of(jobs, {"a": "failed", "b": "running"})
    assert engine.decide(run).claim == []
    assert engine.outcome(run) == "failed"


def test_nothing_new_starts_once_a_snapshot_shows_the_run_must_fail() -> None:
    jobs = [job("a"), job("b"), job("c", "b"), job("d", "b", condition=input_eq("x", 1))]
    assert engine.decide(run_of(jobs, {"a": "running", "b": "succeeded"})) == engine.Decision(
        claim=["c"], skip=["d"]
    )
    assert engine.decide(run_of(jobs, {"a": "failed", "b": "succeeded"})) == engine.Decision()


def test_the_run_succeeds_when_every_job_is_terminal() -> None:
    jobs = [job("a"), job("b", "a")]
    assert engine.outcome(run_of(jobs, {"a": "succeeded"})) is None
    assert engine.outcome(run_of(jobs, {"a": "succeeded", "b": "skipped"})) == "succeeded"
    assert engine.outcome(run_of([], {})) == "succeeded"


def test_nothing_is_decided_on_an_ended_run() -> None:
    run = run_of([job("a")], {})
    run["status"] = "failed"
    assert engine.decide(run) == engine.Decision()


def test_current_phase_is_the_first_with_an_unfinished_job() -> None:
    jobs = [job("a", phase="p1"), job("b", phase="p1"), job("c", "a", "b", phase="p2")]
    assert engine.current_phase(run_of(jobs, {"a": "succeeded"})) == (0, "p1")
    assert engine.current_phase(run_of(jobs, {"a": "succeeded", "b": "skipped"})) == (1, "p2")
    assert engine.current_phase(run_of(jobs, {"a": "succeeded", "b": "skipped", "c": "succeeded"})) == (
        2,
        None,
    )


def test_condition_context_shape() -> None:
    run = run_of([job("a"), job("b")], {"a": "succeeded", "b": "failed"}, input={"x": 1})
    run["jobs"]["a"]["output"] = {"rows": 1}
    assert engine.condition_context(run) == {
        "input": {"x": 1},
        "jobs": {"a": {"status": "succeeded", "output": {"rows": 1}}, "b": {"status": "failed"}},
    }
