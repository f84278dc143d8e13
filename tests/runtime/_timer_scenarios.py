"""Scenarios with retries, timeouts and run timeouts for the delivery-order harness, and their invariants.

A timer scenario runs on a ``VirtualClock``; the schedule may move the clock and fire timers (the timer
handler's sweep, stepped through the database like any handler) at any point, several times, late. Job
outcomes are scripted per attempt (``"hang"``: the attempt never reports). What comes out depends on
the schedule (an attempt reported before or after its deadline), so the invariants are the issue's:

- each attempt of a job dispatched exactly once, attempts ``1..k`` with no gap;
- attempt n+1 dispatched only after attempt n failed or timed out (its entry in ``attempts``);
- never more attempts than the policy allows;
- the run ended exactly once, with one workflow-level end event, its status one the scenario allows;
- once every timer has fired, no run is left non-terminal (``finish`` moves the clock past every due
  time and fires until nothing is due).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from _harness import World, check_timers_map, document, job

from flowkit.document import WorkflowDocument
from flowkit.runtime.store import from_epoch_ms

RETRY3 = {"max_attempts": 3, "interval_seconds": 4.0, "backoff_rate": 2.0}


@dataclass(frozen=True)
class TimerScenario:
    name: str
    document: WorkflowDocument
    outcomes: dict[str, Any]
    statuses: frozenset[str]  # the run statuses the schedule may lead to
    tick: float = 3.0  # seconds the clock moves per "tick" action
    input: dict[str, Any] = field(default_factory=dict)


def timer_scenarios() -> list[TimerScenario]:
    return [
        TimerScenario(
            "retry-then-succeed",
            document("retry", [job("a", retry=RETRY3), job("b", "a")]),
            {"a": ["fail", "fail", "success"]},
            frozenset({"succeeded"}),
        ),
        TimerScenario(
            "retries-run-out",
            document("exhaust", [job("a", retry=RETRY3), job("b", "a")]),
            {"a": "fail"},
            frozenset({"failed"}),
        ),
        TimerScenario(
            # a reports in time or too late, depending on when the clock moves: late outcomes are stale
            "timeout-race",
            document("t-race", [job("a", timeout=5, retry=RETRY3), job("b", "a")]),
            {},
            frozenset({"succeeded", "failed"}),
        ),
        TimerScenario(
            "hang-then-succeed",
            document("hang", [job("a", timeout=5, retry=RETRY3), job("b", "a", timeout=5)]),
            {"a": ["hang", "success"]},
            frozenset({"succeeded", "failed"}),
        ),
        TimerScenario(
            "heartbeat-silent",
            document("beat", [job("a", heartbeat=4, retry=RETRY3)]),
            {"a": "hang"},
            frozenset({"failed"}),
        ),
        TimerScenario(
            "run-timeout",
            document("bounded", [job("a", retry=RETRY3), job("b", "a")], timeout=20),
            {"a": "fail"},
            frozenset({"timed_out", "failed"}),
        ),
        TimerScenario(
            # a hangs, so only the run's deadline ends the run: with cancel and redrive, a sweep that read
            # the run before them must not end the redriven run with the old deadline
            "run-timeout-hang",
            document("bounded-hang", [job("a"), job("b", "a")], timeout=6),
            {"a": "hang"},
            frozenset({"timed_out"}),
        ),
    ]


def finish(world: World, run_id: str, *, rounds: int = 50) -> None:
    """Let every timer fire: deliver everything, move the clock to the next due time, sweep, repeat."""
    for _ in range(rounds):
        world.drain()
        due = world.store.earliest_due()
        if due is None:
            return
        world.clock.advance_to(max(due, world.store.now()))
        world.fire_timers()
    raise AssertionError(f"run {run_id} still had timers due after {rounds} rounds")


def check_timer_invariants(world: World, scenario: TimerScenario, run_id: str) -> None:
    run = world.store.get_run(run_id)
    assert run is not None
    check_timers_map(run)
    specs = {spec.name: spec for spec in scenario.document.jobs}
    dispatches = [(name, attempt) for rid, name, attempt in world.dispatcher.dispatched if rid == run_id]
    assert sorted(dispatches) == sorted(set(dispatches)), f"an attempt dispatched twice: {dispatches}"
    for name, spec in specs.items():
        attempts = sorted(a for n, a in dispatches if n == name)
        assert attempts == list(range(1, len(attempts) + 1)), f"{name}: attempts {attempts}"
        assert len(attempts) <= spec.retry.max_attempts, f"{name}: {attempts} over the policy"
        entry = run["jobs"][name]
        assert entry["attempt"] == len(attempts), (name, entry["attempt"], attempts)
        history = entry.get("attempts") or {}
        for n in attempts[:-1]:  # every attempt before the last failed or timed out
            assert history.get(str(n), {}).get("state") in ("failed", "timed_out"), (name, n, history)
    # the run ended exactly once, and nothing is left due or unfinished
    assert run["status"] in scenario.statuses, (
        run["status"],
        {n: j["state"] for n, j in run["jobs"].items()},
    )
    ends = [s for s in world.store.statuses.find({"run_id": run_id, "job": None}) if s["status"] != "started"]
    assert [e["status"] for e in ends] == [{"succeeded": "success"}.get(run["status"], run["status"])], ends
    assert "next_due_ms" not in run, from_epoch_ms(run["next_due_ms"])
    open_jobs = {n: j["state"] for n, j in run["jobs"].items() if j["state"] in ("pending", "waiting")}
    assert open_jobs == {}, open_jobs
    if run["status"] == "succeeded":
        assert all(j["state"] in ("succeeded", "skipped") for j in run["jobs"].values()), run["jobs"]
