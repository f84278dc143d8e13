"""The per-transition rules (``engine.Plan``, ``increments``, ``ready``, ``ended``) agree with the
whole-document rules (``engine.decide``, ``engine.outcome``) on every reachable state of a run."""

from __future__ import annotations

from typing import Any

import pytest
from _harness import World, document, input_eq, job, status_is
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.runtime import engine
from flowkit.runtime.start import new_run_document, start_run


def test_a_plan_knows_dependents_roots_condition_reads_and_phases() -> None:
    doc = document(
        "wf",
        [
            job("a", phase="p1"),
            job("b", "a", phase="p2"),
            job("c", "a", phase="p2", condition=status_is("a", "failed")),
            job("d", "b", "c", phase="p3"),
        ],
    )
    plan = engine.Plan.of(doc.model_dump(mode="json"))
    assert plan.dependents == {"a": ("b", "c"), "b": ("d",), "c": ("d",), "d": ()}
    assert plan.roots == ("a",)
    assert plan.reads == {"c": ("a",)}
    assert plan.phase_of == {"a": (0, "p1"), "b": (1, "p2"), "c": (1, "p2"), "d": (2, "p3")}
    assert plan.phases == 3


def test_increments_move_only_the_counters_the_new_state_touches() -> None:
    doc = document("wf", [job("a"), job("h", failure_handled=True), job("b", "a", "h")])
    plan = engine.Plan.of(doc.model_dump(mode="json"))
    assert engine.increments(plan, "a", "succeeded") == {"remaining": -1, "jobs.b.unmet": -1}
    assert engine.increments(plan, "a", "skipped") == {"remaining": -1, "jobs.b.unmet": -1}
    assert engine.increments(plan, "a", "failed") == {"remaining": -1, "unhandled": 1}
    assert engine.increments(plan, "h", "failed") == {"remaining": -1, "jobs.b.unmet": -1}
    assert engine.increments(plan, "b", "cancelled") == {"remaining": -1}
    assert engine.increments(plan, "a", "dispatched") == {}


def test_a_new_run_starts_with_counters_matching_its_needs() -> None:
    doc = document("wf", [job("a"), job("b"), job("c", "a", "b")])
    run = new_run_document(doc, {}, "r")
    assert (run["remaining"], run["unhandled"]) == (3, 0)
    assert {name: j["unmet"] for name, j in run["jobs"].items()} == {"a": 0, "b": 0, "c": 2}


@st.composite
def runs(draw: st.DrawFn) -> tuple[Any, list[tuple[str, str]]]:
    """A random DAG (some conditions, some handled failures) and a random order of job outcomes."""
    n = draw(st.integers(1, 9))
    jobs = []
    for i in range(n):
        needs = draw(st.sets(st.sampled_from([f"j{k}" for k in range(i)]), max_size=3)) if i else set()
        condition = None
        if needs and draw(st.booleans()):
            condition = status_is(sorted(needs)[0], "failed")
        elif draw(st.integers(0, 4)) == 0:
            condition = input_eq("go", True)
        jobs.append(job(f"j{i}", *sorted(needs), condition=condition, failure_handled=draw(st.booleans())))
    outcomes = draw(st.lists(st.sampled_from(["succeeded", "failed"]), min_size=n, max_size=n))
    picks = draw(st.lists(st.integers(0, 1000), min_size=2 * n, max_size=2 * n))
    go = draw(st.booleans())
    return (jobs, go), list(zip([f"j{i}" for i in range(n)], outcomes, strict=True)) + [
        (str(p), "") for p in picks
    ]


@settings(max_examples=300, deadline=None)
@given(runs())
def test_counters_agree_with_the_whole_document_rules_at_every_step(case: Any) -> None:
    (jobs, go), plan_steps = case
    doc = document("wf", jobs)
    run = new_run_document(doc, {"go": go}, "r")
    plan = engine.Plan.of(run["config"])
    wanted = {name: outcome for name, outcome in plan_steps if outcome}
    picks = [int(p) for p, outcome in plan_steps if not outcome]
    while True:
        # the whole-document decision and the counters' must agree on what is ready, and on the end
        whole = engine.decide(run)
        by_counters = engine.ready(run, list(plan.specs))
        assert sorted(whole.claim + whole.skip) == sorted(by_counters), (run["jobs"], whole)
        assert engine.ended(run) == engine.outcome(run)
        if not by_counters:
            break
        name = by_counters[picks.pop() % len(by_counters)] if picks else by_counters[0]
        state = "skipped" if name in whole.skip else wanted[name]
        # the transition: the job's new state and the increments folded into the same update
        run["jobs"][name]["state"] = state
        for path, delta in engine.increments(plan, name, state).items():
            if path.startswith("jobs."):
                _, dependent, field = path.split(".")
                run["jobs"][dependent][field] += delta
            else:
                run[path] += delta


def test_a_retried_orchestrator_claims_what_an_earlier_skip_made_ready(database: Any) -> None:
    # Given a -> s (condition false: skipped) -> d, and a dispatcher that fails d's first dispatch
    doc = document("wf", [job("a"), job("s", "a", condition=input_eq("go", True)), job("d", "s")])
    world = World(database)
    start_run(world.store, doc, {"go": False}, run_id="r")
    world.deliver(world.deliveries.pop(0))  # started: a is dispatched
    world.execute(0)  # a runs and reports success
    outcome = next(d for d in world.deliveries if d.handler == "orchestrator")
    world.dispatcher.fail_for = {"d"}
    # When the orchestrator skips s, claims d and fails to dispatch it (the claim is released)
    with pytest.raises(ConnectionError):
        world.deliver(outcome)
    assert world.store.get_run("r")["jobs"]["s"]["state"] == "skipped"
    assert world.store.get_run("r")["jobs"]["d"]["state"] == "pending"
    # Then the retried invocation finds s already skipped and still claims d behind it
    result = world.deliver(outcome)
    assert result["dispatched"] == ["d"]
    assert [name for _, name, _ in world.dispatcher.dispatched] == ["a", "d"]
