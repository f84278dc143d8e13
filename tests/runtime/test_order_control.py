"""Cancel and redrive racing the handlers, the job side and each other, under any delivery schedule.

The stepped schedules of ``test_order_independence.py`` (duplicates, late deliveries, invocations paused
between database operations), with an operator's ``cancel`` and ``redrive`` taken at any point, each
interleaved operation by operation with everything else. Invariants once everything was delivered:

- each ``(job, attempt)`` dispatched at most once, and a job's attempts are 1, 2, ... without gaps;
- the run ends exactly once per redrive: one workflow-level end event for each redrive count up to the
  run's, and the run is not running;
- no job is left pending, waiting, dispatched or running;
- a cancel that won ended the run ``cancelled`` (unless a redrive followed), and nothing was dispatched
  by the run after it, until a redrive;
- a redrive happened only of an ended, unsuccessful run, and only once per ending;
- an outcome refused as stale is only ever one of an attempt a redrive replaced.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from _harness import World, check_counters, check_timers_map
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_order_independence import SCENARIOS, HypothesisChoices, RandomChoices, run_schedule

from flowkit.runtime import engine
from flowkit.vocab import (
    JOB_TERMINAL_STATES,
    RUN_END_EVENTS,
    RUN_ENDED_STATUSES,
    EventStatus,
    JobState,
    RunStatus,
)

EXAMPLES = int(os.environ.get("FLOWKIT_ORDER_EXAMPLES", "20"))
END_STATUSES = set(RUN_END_EVENTS.values())


def _timed_out_attempts(run: dict[str, Any]) -> set[tuple[str, int]]:
    """(job, attempt) of every attempt the timers ended: their late outcomes are stale too."""
    return {
        (name, int(number))
        for name, job in run["jobs"].items()
        for number, entry in (job.get("attempts") or {}).items()
        if entry.get("state") == JobState.TIMED_OUT
    } | {(name, job["attempt"]) for name, job in run["jobs"].items() if job["state"] == JobState.TIMED_OUT}


def check_control_invariants(world: World, run_id: str) -> None:
    run = world.store.get_run(run_id)
    assert run is not None
    check_timers_map(run)
    timed_out = _timed_out_attempts(run)
    dispatches = [(name, attempt) for rid, name, attempt in world.dispatcher.dispatched if rid == run_id]
    assert len(dispatches) == len(set(dispatches)), f"dispatched twice: {dispatches}"
    for name in {name for name, _ in dispatches}:
        attempts = sorted(attempt for job, attempt in dispatches if job == name)
        assert attempts == list(range(1, len(attempts) + 1)), (name, attempts)
    # the run ended exactly once per redrive
    redrives = int(run.get("redrive_count") or 0)
    assert run["status"] in RUN_ENDED_STATUSES, run["status"]
    ends = Counter(
        s["attempt"]
        for s in world.store.statuses.find({"run_id": run_id, "job": None})
        if s["status"] in END_STATUSES
    )
    assert ends == Counter(range(redrives + 1)), (ends, redrives)
    stuck = {
        name: job["state"]
        for name, job in run["jobs"].items()
        if job["state"] not in JOB_TERMINAL_STATES
        # Known limit: once the run has ended (cancelled, failed, timed out) its timers no longer fire,
        # so an attempt that never reports (a hung job) stays `running`; nothing else may be left.
        and not (
            run["status"] != RunStatus.SUCCEEDED
            and job["state"] in (JobState.DISPATCHED, JobState.RUNNING)
            and world.outcome(name, job["attempt"]) == "hang"
        )
    }
    assert stuck == {}, stuck
    # what the operator did
    results = dict(world.controls)
    if results.get("redrive", "").startswith("redrive"):
        assert redrives == 1
        # a redrive is taken only of an ended, unsuccessful run: its first end was not a success
        [first_end] = [
            s["status"]
            for s in world.store.statuses.find({"run_id": run_id, "job": None, "attempt": 0})
            if s["status"] in END_STATUSES
        ]
        assert first_end != EventStatus.SUCCESS
    else:
        assert redrives == 0
        late = [(d[1], d[2]) for d in world.stale_reports if (d[1], d[2]) not in timed_out]
        assert late == [], "an outcome can only be stale once a redrive or a timeout replaced its attempt"
        if results.get("cancel") == "cancelled":
            assert run["status"] == RunStatus.CANCELLED
    for name, attempt in {(d[1], d[2]) for d in world.stale_reports}:
        assert run["jobs"][name]["attempt"] > attempt or redrives, (name, attempt)
    # handlers refuse an outcome only when it is stale (its attempt was replaced by a redrive, or timed out)
    # With timers, an outcome can also lose a race to its attempt's timeout (or a repeat of it arrive
    # after a cancel moved the job on): it is refused as stale and changes nothing.
    allowed = {"state_mismatch", "stale"} if redrives else ({"stale"} if world.timers else set())
    assert set(world.runtime.rejections) <= allowed, world.runtime.rejections
    # the counters, moved transition by transition and set again by a redrive, are what the states say
    # (a job cancelled while waiting for a retry would leave its always dependents' waits as they were:
    # no scenario has both)
    if engine.Plan.of(run["config"]).counted:
        check_counters(run)


# run-timeout-hang: the run's deadline racing a cancel and a redrive (the soak takes every scenario)
CONTROL_SCENARIOS = [
    "join",
    "payment-happy",
    "handled-failure",
    "failure-not-handled",
    "unhandled-failure",
    "nested",
    "run-timeout-hang",
]


@pytest.mark.parametrize("controls", [("cancel",), ("cancel", "redrive"), ("redrive",)])
@pytest.mark.parametrize("name", CONTROL_SCENARIOS)
@settings(
    max_examples=max(2, EXAMPLES // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_cancel_and_redrive_at_any_point_of_any_schedule(
    name: str, controls: tuple[str, ...], data: Any
) -> None:
    world = run_schedule(SCENARIOS[name], HypothesisChoices(data), controls=controls)
    check_control_invariants(world, "r-1")


def test_the_schedules_reach_the_interesting_races() -> None:
    """The random schedules do make a cancel win, a cancel lose to the run's end, and a redrive follow."""
    outcomes: Counter[tuple[str, str]] = Counter()
    for seed in range(60):
        world = run_schedule(
            SCENARIOS["unhandled-failure"], RandomChoices(seed), controls=("cancel", "redrive")
        )
        check_control_invariants(world, "r-1")
        for action, result in world.controls:
            outcomes[action, result.split(":")[0]] += 1
    assert outcomes["cancel", "cancelled"] > 0
    assert outcomes["cancel", "refused"] > 0  # the run had already failed
    assert outcomes["redrive", "redrive 1"] > 0
    assert outcomes["redrive", "refused"] > 0  # the run was still running


def test_the_invariants_catch_a_redrive_without_compare_and_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness can fail: a redrive that ignores the redrive count redrives twice, and the run ends
    twice for the same count, or attempts run twice."""
    from flowkit.runtime import control

    real = control.redrive_run

    def twice(store: Any, run_id: str) -> Any:
        result = real(store, run_id)
        store.runs.update_one({"_id": run_id}, {"$set": {"redrive_count": 0}})
        return result

    monkeypatch.setattr(control, "redrive_run", twice)
    failures = 0
    for seed in range(100):
        try:
            world = run_schedule(SCENARIOS["unhandled-failure"], RandomChoices(seed), controls=("redrive",))
            check_control_invariants(world, "r-1")
        except AssertionError:
            failures += 1
            break
    assert failures == 1, "no schedule exposed the broken redrive"
