"""The per-transition rules (``engine.Plan``, ``increments``, ``ready``, ``ended``) agree with the
whole-document rules (``engine.decide``, ``engine.outcome``) on every reachable state of a run."""

from __future__ import annotations

from typing import Any

import pytest
from _harness import World, document, input_eq, job, status_is
from hypothesis import example, given, settings
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
    assert engine.increments(plan, "h", "failed") == {"remaining": -1, "jobs.b.unmet": -1}  # handled_by: None
    assert engine.increments(plan, "b", "cancelled") == {"remaining": -1}
    assert engine.increments(plan, "a", "dispatched") == {}
    paths = document(
        "wf",
        [job("a", failure_handled=True), job("h", "a", condition=status_is("a", "failed"))],
    ).model_dump(mode="json")
    paths["jobs"][0]["handled_by"] = ["h"]
    plan = engine.Plan.of(paths)
    assert engine.increments(plan, "a", "failed") == {"remaining": -1, "jobs.h.unmet": -1}
    # every failure path skipped before the failure: it is unhandled
    assert engine.increments(plan, "a", "failed", pathless=True) == {
        "remaining": -1,
        "jobs.h.unmet": -1,
        "unhandled": 1,
    }


def test_a_new_run_starts_with_counters_matching_its_needs() -> None:
    doc = document("wf", [job("a"), job("b"), job("c", "a", "b")])
    run = new_run_document(doc, {}, "r")
    assert (run["remaining"], run["unhandled"]) == (3, 0)
    assert {name: j["unmet"] for name, j in run["jobs"].items()} == {"a": 0, "b": 0, "c": 2}


def _not_succeeded(job_name: str) -> dict[str, Any]:
    return {"op": "not", "args": [status_is(job_name, "succeeded")]}


@st.composite
def runs(draw: st.DrawFn) -> tuple[Any, list[tuple[str, str]]]:
    """A random DAG and a random order of job outcomes. Some conditions are failure paths of an
    ancestor (``handled_by``, as the compiler writes it: ``failed``, or ``not succeeded``, which also
    holds for a skipped job, some also reading the input, so that every failure path of a failed job
    can be skipped), some read the input; some jobs are marked handled without naming their failure
    paths (documents from before ``handled_by``); some are ``always`` jobs."""
    n = draw(st.integers(1, 9))
    jobs = []
    ancestors: dict[str, set[str]] = {}
    handled_by: dict[str, list[str]] = {}
    for i in range(n):
        name = f"j{i}"
        needs = draw(st.sets(st.sampled_from([f"j{k}" for k in range(i)]), max_size=3)) if i else set()
        ancestors[name] = set(needs).union(*(ancestors[need] for need in needs))
        condition = None
        kind = draw(st.integers(0, 6))
        if ancestors[name] and kind <= 3:
            target = draw(st.sampled_from(sorted(ancestors[name])))
            condition = [
                status_is(target, "failed"),
                _not_succeeded(target),
                # false whatever the target did when go is false: its failure paths can all be skipped
                {"op": "and", "args": [status_is(target, "failed"), input_eq("go", True)]},
                {"op": "and", "args": [_not_succeeded(target), input_eq("go", False)]},
            ][kind]
            handled_by.setdefault(target, []).append(name)
        elif kind == 4:
            condition = input_eq("go", True)
        spec = job(name, *sorted(needs), condition=condition)
        if draw(st.integers(0, 4)) == 0:
            spec["run_on"] = "all_done"
        jobs.append(spec)
    for spec in jobs:
        if spec["name"] in handled_by:
            spec["failure_handled"], spec["handled_by"] = True, sorted(handled_by[spec["name"]])
        elif draw(st.integers(0, 3)) == 0:
            spec["failure_handled"] = True  # handled, failure paths not named
    outcomes = draw(st.lists(st.sampled_from(["succeeded", "failed"]), min_size=n, max_size=n))
    picks = draw(st.lists(st.integers(0, 1000), min_size=3 * n, max_size=3 * n))
    go = draw(st.booleans())
    return (jobs, go), list(zip([f"j{i}" for i in range(n)], outcomes, strict=True)) + [
        (str(p), "") for p in picks
    ]


def _apply(run: dict[str, Any], changes: dict[str, Any], *, inc: bool) -> None:
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = run
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = target[last] + value if inc else value


def _stored(run: dict[str, Any]) -> dict[str, Any]:
    found = {"remaining": run["remaining"], "unhandled": run["unhandled"], "always_left": run["always_left"]}
    found.update({f"jobs.{n}.unmet": j["unmet"] for n, j in run["jobs"].items()})
    found.update({f"paths.{n}.{k}": v for n, entry in run["paths"].items() for k, v in entry.items()})
    found.update({f"waits.{n}": v for n, v in run["waits"].items()})
    return found


@settings(max_examples=500, deadline=None)
@given(runs())
@example(
    case=(
        (
            [
                {
                    "name": "j0",
                    "phase": "j0",
                    "target": {"function": "fn-j0", "qualifier": None},
                    "needs": [],
                    "condition": None,
                    "failure_handled": True,
                    "input": {},
                    "run_on": "all_done",
                    "handled_by": ["j3", "j6"],
                },
                {
                    "name": "j1",
                    "phase": "j1",
                    "target": {"function": "fn-j1", "qualifier": None},
                    "needs": [],
                    "condition": None,
                    "failure_handled": True,
                    "input": {},
                    "run_on": "all_done",
                },
                {
                    "name": "j2",
                    "phase": "j2",
                    "target": {"function": "fn-j2", "qualifier": None},
                    "needs": ["j0", "j1"],
                    "condition": {"op": "eq", "args": [{"ref": ["input", "go"]}, {"const": True}]},
                    "failure_handled": True,
                    "input": {},
                    "run_on": "all_done",
                    "handled_by": ["j7"],
                },
                {
                    "name": "j3",
                    "phase": "j3",
                    "target": {"function": "fn-j3", "qualifier": None},
                    "needs": ["j2"],
                    "condition": {
                        "op": "eq",
                        "args": [{"ref": ["jobs", "j0", "status"]}, {"const": "failed"}],
                    },
                    "failure_handled": True,
                    "input": {},
                },
                {
                    "name": "j4",
                    "phase": "j4",
                    "target": {"function": "fn-j4", "qualifier": None},
                    "needs": [],
                    "condition": None,
                    "failure_handled": True,
                    "input": {},
                    "run_on": "all_done",
                },
                {
                    "name": "j5",
                    "phase": "j5",
                    "target": {"function": "fn-j5", "qualifier": None},
                    "needs": [],
                    "condition": None,
                    "failure_handled": False,
                    "input": {},
                    "run_on": "all_done",
                },
                {
                    "name": "j6",
                    "phase": "j6",
                    "target": {"function": "fn-j6", "qualifier": None},
                    "needs": ["j0", "j1"],
                    "condition": {
                        "op": "eq",
                        "args": [{"ref": ["jobs", "j0", "status"]}, {"const": "failed"}],
                    },
                    "failure_handled": True,
                    "input": {},
                    "run_on": "all_done",
                },
                {
                    "name": "j7",
                    "phase": "j7",
                    "target": {"function": "fn-j7", "qualifier": None},
                    "needs": ["j3"],
                    "condition": {
                        "op": "eq",
                        "args": [{"ref": ["jobs", "j2", "status"]}, {"const": "failed"}],
                    },
                    "failure_handled": True,
                    "input": {},
                    "run_on": "all_done",
                },
                {
                    "name": "j8",
                    "phase": "j8",
                    "target": {"function": "fn-j8", "qualifier": None},
                    "needs": [],
                    "condition": None,
                    "failure_handled": True,
                    "input": {},
                    "run_on": "all_done",
                },
            ],
            True,
        ),
        [
            ("j0", "succeeded"),
            ("j1", "succeeded"),
            ("j2", "failed"),
            ("j3", "succeeded"),
            ("j4", "succeeded"),
            ("j5", "failed"),
            ("j6", "succeeded"),
            ("j7", "succeeded"),
            ("j8", "succeeded"),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("2", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
            ("0", ""),
        ],
    ),
)
def test_counters_agree_with_the_whole_document_rules_at_every_step(case: Any) -> None:
    """Jobs are decided one at a time on the counters (``engine.ready``) and moved as the handlers move
    them: a claim (``claim_sets``, ``claim_increments``) leaves the job in flight until a later step
    records its outcome (``increments``); a skipped failure path that leaves a failed job none counts
    it; a run failing with ``always`` jobs left is marked draining first. At every step the
    whole-document rules (``engine.decide``, ``engine.outcome``) agree, and the counters are what the
    job states say (``engine.counters``)."""
    (jobs, go), plan_steps = case
    doc = document("wf", jobs)
    run: dict[str, Any] = dict(new_run_document(doc, {"go": go}, "r"))
    plan = engine.Plan.of(run["config"])
    assert plan.counted
    wanted = {name: outcome for name, outcome in plan_steps if outcome}
    picks = [int(p) for p, outcome in plan_steps if not outcome]
    for _ in range(10 * len(jobs) + 10):
        assert _stored(run) == engine.counters(run, plan)
        assert engine.ended(run) == engine.outcome(run)
        whole = engine.decide(run)
        assert whole.drain == (engine.draining(run) and not run.get("draining")), (run["jobs"], whole)
        if whole.drain:
            run["draining"] = True  # what Store.start_draining does
            continue
        by_counters = engine.ready(run, list(plan.specs), plan)
        decided = set(whole.claim + whole.skip)
        # The counters see a job gated by a failure only once one of its failure paths is claimed;
        # the whole-document rule already when a failure path is about to be claimed in this decision.
        assert set(by_counters) <= decided, (run["jobs"], whole)
        for name in decided - set(by_counters):
            assert any(set(plan.paths[need]) & set(whole.claim) for need in plan.gates.get(name, ())), (
                name,
                run["jobs"],
                whole,
            )
        in_flight = [name for name, j in run["jobs"].items() if j["state"] == "dispatched"]
        options = [(name, "decide") for name in by_counters] + [(name, "finish") for name in in_flight]
        if not options:
            assert not decided, (run["jobs"], whole)
            break
        name, step = options[picks.pop() % len(options)] if picks else options[0]
        if step == "finish":
            state = wanted[name]
            # the compare-and-set on ``left`` of the failure (every failure path skipped before it)
            pathless = state == "failed" and name in plan.paths and run["paths"][name]["left"] == 0
            run["jobs"][name]["state"] = state
            _apply(run, engine.increments(plan, name, state, pathless=pathless), inc=True)
        elif name in whole.skip:
            doomed = sum(
                1
                for handled in plan.handles.get(name, ())
                if run["jobs"][handled]["state"] == "failed" and run["paths"][handled]["left"] == 1
            )
            run["jobs"][name]["state"] = "skipped"
            _apply(run, engine.increments(plan, name, "skipped", doomed=doomed), inc=True)
        else:
            assert not run.get("draining") or name in plan.always  # the claim's compare-and-set
            run["jobs"][name]["state"] = "dispatched"
            _apply(run, engine.claim_sets(plan, name), inc=False)
            _apply(run, engine.claim_increments(plan, name), inc=True)
    else:
        raise AssertionError("the run did not settle")
    assert engine.outcome(run) is not None or run["remaining"] > 0


def test_a_failure_path_decided_before_the_failure_it_handles_is_not_counted() -> None:
    """A document whose failure path is not a descendant of the job it handles could decide the path
    before the failure is recorded, which the counters do not model: such runs are decided on the
    whole document."""
    doc = document("wf", [job("a"), job("h", condition=status_is("a", "failed")), job("b", "a")]).model_dump(
        mode="json"
    )
    doc["jobs"][0].update(failure_handled=True, handled_by=["h"])
    assert not engine.Plan.of(doc).counted
    doc["jobs"][1]["needs"] = ["a"]
    assert engine.Plan.of(doc).counted


def test_a_failure_whose_failure_paths_were_all_skipped_before_it_is_unhandled(database: Any) -> None:
    """On a draining run an ``always`` failure path can be skipped before the job it handles ended
    (what lies between them is an ordinary job that never runs). That job's failure, recorded later,
    has no failure path left: the compare-and-set on ``paths.<job>.left`` counts it in ``unhandled``,
    as ``engine.counters`` does (rule 3)."""
    from _harness import check_counters, path_before_failure_document

    world = World(database, outcomes={"bad": "fail", "j": "fail"})
    start_run(world.store, path_before_failure_document(), {}, run_id="r")
    world.drain(jobs=False)  # started: bad and j are claimed
    assert sorted(name for _, name, _ in world.pending_jobs()) == ["bad", "j"]
    world.execute(next(i for i, (_, name, _) in enumerate(world.pending_jobs()) if name == "bad"))
    world.drain(jobs=False)  # the run drains; h is ready with j still in flight: its condition is false
    run = world.store.get_run("r")
    assert run is not None
    assert (run["jobs"]["h"]["state"], run["jobs"]["j"]["state"], run["paths"]["j"]["left"]) == (
        "skipped",
        "dispatched",
        0,
    )
    check_counters(run)
    world.drain()  # j fails with no failure path left
    run = world.store.get_run("r")
    assert run is not None
    assert run["jobs"]["j"]["state"] == "failed"
    assert run["unhandled"] == 2
    assert run["status"] == "failed"
    check_counters(run)


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


@pytest.mark.parametrize(
    ("name", "older"),
    [
        ("handled-failure", {"counters": "", "paths": ""}),
        ("always-after-failure", {"counters": 2}),  # failure paths counted, always jobs not yet
    ],
)
def test_a_run_started_before_the_counters_covered_its_workflow_is_decided_on_the_whole_document(
    database: Any, name: str, older: dict[str, Any]
) -> None:
    """A run of a workflow with failure paths without ``counters`` >= 2 (and so without ``paths``), or
    with ``always`` jobs without ``counters: 3`` (no ``always_left``, ``waits``), is decided as before,
    on the whole ``jobs`` map, and still comes out right."""
    from _harness import scenarios

    scenario = next(s for s in scenarios() if s.name == name)
    world = World(database, outcomes=scenario.outcomes)
    start_run(world.store, scenario.document, {}, run_id="old")
    if "paths" in older:
        world.store.runs.update_one({"_id": "old"}, {"$unset": older})
    else:
        world.store.runs.update_one(
            {"_id": "old"}, {"$set": older, "$unset": {"always_left": "", "waits": ""}}
        )
    counted = []
    real = world.runtime._schedule_counted

    def spy(*args: Any) -> Any:
        counted.append(args)
        return real(*args)

    world.runtime._schedule_counted = spy  # type: ignore[method-assign]
    world.drain()
    run = world.store.get_run("old")
    assert run is not None
    assert {name: job["state"] for name, job in run["jobs"].items()} == scenario.states
    assert run["status"] == scenario.status
    assert counted == []


def test_a_released_claim_gives_back_what_it_counted_in_an_always_jobs_waits(database: Any) -> None:
    """A dispatch that fails releases the claim (rule 8): the release takes the job back off the
    ``waits`` of its always dependents, so the counters stay what the job states say."""
    from _harness import check_counters

    doc = document("wf", [job("a"), job("b"), {**job("cleanup", "a", "b"), "run_on": "all_done"}])
    world = World(database, outcomes={"a": "fail"})
    start_run(world.store, doc, {}, run_id="r")
    world.dispatcher.fail_for = {"b"}
    started = world.deliveries.pop(0)
    with pytest.raises(ConnectionError):
        world.deliver(started)  # a and b claimed, b's dispatch fails
    run = world.store.get_run("r")
    assert run is not None
    assert (run["jobs"]["a"]["state"], run["jobs"]["b"]["state"]) == ("dispatched", "pending")
    assert run["waits"] == {"cleanup": 1}  # a is in flight; b was released
    check_counters(run)
    world.deliver(started)  # delivered again (the handler raised): b claimed and sent
    assert run["waits"] == {"cleanup": 1} and world.store.get_run("r")["waits"] == {"cleanup": 2}
    world.drain()  # a fails: the run drains, cleanup waits for b, then runs
    run = world.store.get_run("r")
    assert run is not None
    assert {name: j["state"] for name, j in run["jobs"].items()} == {
        "a": "failed",
        "b": "succeeded",
        "cleanup": "succeeded",
    }
    assert run["status"] == "failed"
    check_counters(run)


def test_outcomes_arriving_on_an_ended_run_read_every_jobs_state_once(database: Any) -> None:
    """Rule 5 on counters: the first handler that finds the run ended reads every job's state to cancel
    the unrunnable ones and marks the run; the handlers of the outcomes still arriving read only their
    own jobs (without the mark each of them read the whole jobs map again)."""
    roots = [job(f"b{i}", phase="p") for i in range(6)]
    doc = document("wf", [job("a", phase="p"), *roots, job("z", "a", *(r["name"] for r in roots), phase="p")])
    world = World(database, outcomes={"a": "fail"})
    start_run(world.store, doc, {}, run_id="r")
    world.drain(jobs=False)
    assert sorted(name for _, name, _ in world.pending_jobs()) == ["a", *(f"b{i}" for i in range(6))]
    reads: list[int] = []
    real = world.store.get_run

    def spy(run_id: str, *, projection: Any = None) -> Any:
        states = [key for key in projection or () if key.startswith("jobs.") and key.endswith(".state")]
        reads.append(len(states))
        return real(run_id, projection=projection)

    world.store.get_run = spy  # type: ignore[method-assign]
    world.execute(0)  # a fails: nothing handles it, the run ends failed
    world.drain(jobs=False)
    assert world.store.get_run("r")["status"] == "failed"
    assert world.store.get_run("r")["jobs"]["z"]["state"] == "cancelled"
    whole_reads = sum(1 for n in reads if n == 8)
    assert whole_reads == 1, reads
    world.drain()  # the six roots finish on the ended run
    run = world.store.get_run("r")
    assert all(run["jobs"][f"b{i}"]["state"] == "succeeded" for i in range(6))
    assert run["remaining"] == 0
    assert sum(1 for n in reads if n == 8) == 1, reads


def test_a_claim_released_after_the_end_was_marked_is_cancelled_by_the_next_handler(database: Any) -> None:
    """The mark covers the run's redrive and release count it was made with: a job put back to pending
    on the ended run afterwards (a failed dispatch of a claim made before the end) is cancelled again."""
    from flowkit.runtime.store import unrunnable_done

    doc = document("wf", [job("a", phase="p"), job("b", phase="p")])
    world = World(database, outcomes={"a": "fail"})
    start_run(world.store, doc, {}, run_id="r")
    world.drain(jobs=False)
    world.execute(0)  # a fails, the run ends with b dispatched
    world.drain(jobs=False)
    run = world.store.get_run("r")
    assert run["status"] == "failed" and run["jobs"]["b"]["state"] == "dispatched"
    assert unrunnable_done(run)
    # When b's claim is given back on the ended run
    assert world.store.release("r", "b", run["jobs"]["b"]["attempt"])
    run = world.store.get_run("r")
    assert run["jobs"]["b"]["state"] == "pending" and not unrunnable_done(run)
    # Then the next handler that finds the run ended reads the states again and cancels b
    entry = world.runtime._fixed("r")
    assert world.runtime._cancel_unrunnable_counted("r", entry["plan"], run) == ["b"]
    assert unrunnable_done(world.store.get_run("r"))
    assert world.runtime._cancel_unrunnable_counted("r", entry["plan"], world.store.get_run("r")) == []
