"""Retries, timeouts, heartbeats and the run's own timeout, through the real handlers and store.

A ``VirtualClock`` drives the store (every transition's time, every due time); the test moves it
and calls the timer handler's sweep, as the schedule or the precise wake-up would.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from _harness import World, document, job

from flowkit.errors import RejectedReport
from flowkit.local.clock import VirtualClock
from flowkit.local.embedded import embedded_database
from flowkit.runtime import engine
from flowkit.runtime.events import to_envelope
from flowkit.runtime.start import start_run

RETRY3 = {"max_attempts": 3, "interval_seconds": 10.0, "backoff_rate": 2.0}


def _world(outcomes: dict[str, Any], **kwargs: Any) -> tuple[World, VirtualClock]:
    clock = VirtualClock()
    return World(embedded_database(), outcomes=outcomes, clock=clock, timers=True, **kwargs), clock


def _job(world: World, run_id: str, name: str) -> dict[str, Any]:
    run = world.store.get_run(run_id)
    assert run is not None
    value: dict[str, Any] = run["jobs"][name]
    return value


def _statuses(world: World, run_id: str, job_name: str | None = None) -> list[tuple[int, str]]:
    return [
        (s["attempt"], s["status"])
        for s in world.store.statuses.find({"run_id": run_id, "job": job_name}).sort("time", 1)
    ]


# ---------------------------------------------------------------------- the retry policy (pure)


def test_the_delay_is_interval_times_backoff_to_the_attempt_capped_by_max_delay() -> None:
    spec = {
        "retry": {"max_attempts": 9, "interval_seconds": 2.0, "backoff_rate": 3.0, "max_delay_seconds": 50}
    }

    assert [engine.retry_delay(spec, n) for n in (1, 2, 3, 4, 5)] == [2.0, 6.0, 18.0, 50.0, 50.0]


def test_full_jitter_draws_between_zero_and_the_delay() -> None:
    import random

    spec = {"retry": {"max_attempts": 9, "interval_seconds": 8.0, "backoff_rate": 2.0, "jitter": "full"}}
    rng = random.Random(7)

    delays = [engine.retry_delay(spec, 3, rng) for _ in range(500)]

    assert all(0 <= d <= 32.0 for d in delays)
    assert min(delays) < 4 and max(delays) > 28  # spread over the whole range, not a constant


def test_attempts_count_every_try_and_error_types_filter_retries() -> None:
    spec = {"retry": {"max_attempts": 3, "on": ["Timeout", "Throttled"], "not_on": ["Throttled"]}}

    assert engine.retryable(spec, 1, "Timeout")
    assert engine.retryable(spec, 2, "Timeout")
    assert not engine.retryable(spec, 3, "Timeout")  # the third try was the last
    assert not engine.retryable(spec, 1, "Throttled")  # not_on wins
    assert not engine.retryable(spec, 1, "ValueError")  # not in on
    assert engine.retryable({"retry": {"max_attempts": 2}}, 1, "Anything")
    assert not engine.retryable({"retry": {"max_attempts": 5}}, 1, "DispatchError")


# ---------------------------------------------------------------------- retries


def test_a_failed_attempt_with_attempts_left_waits_then_runs_again_and_the_run_succeeds() -> None:
    world, clock = _world({"a": ["fail", "fail", "success"]})
    start_run(world.store, document("retry", [job("a", retry=RETRY3), job("b", "a")]), {}, run_id="r")
    world.drain()

    a = _job(world, "r", "a")
    assert (a["state"], a["attempt"], a["timer"]) == ("waiting", 1, "retry")
    assert a["due"] == a["attempts"]["1"]["finished_at"] + timedelta(seconds=10)
    assert world.fire_timers() == []  # not due yet: the sweep does not even read the run

    clock.advance(10)
    assert world.fire_timers()[0]["retried"] == ["a"]
    world.drain()
    assert _job(world, "r", "a")["state"] == "waiting"  # attempt 2 failed too: waits 20 s now
    clock.advance(19)
    world.fire_timers()
    assert _job(world, "r", "a")["attempt"] == 2
    clock.advance(1)
    world.fire_timers()
    world.drain()

    run = world.store.get_run("r")
    assert run is not None
    assert run["status"] == "succeeded"
    assert [(j, n) for _, j, n in world.dispatcher.dispatched] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    history = run["jobs"]["a"]["attempts"]
    assert [(h["attempt"], h["state"], h["error"]["type"]) for h in history.values()] == [
        (1, "failed", "ValueError"),
        (2, "failed", "ValueError"),
    ]
    assert (2, "retrying") in _statuses(world, "r", "a")
    assert "next_due_ms" not in run  # an ended run has nothing due


def test_only_when_attempts_run_out_does_the_failure_count() -> None:
    world, clock = _world({"a": "fail"})
    start_run(world.store, document("exhaust", [job("a", retry=RETRY3), job("b", "a")]), {}, run_id="r")
    for _ in range(3):
        world.drain()
        clock.advance(3600)
        world.fire_timers()
    world.drain()

    run = world.store.get_run("r")
    assert run is not None
    assert (run["status"], run["jobs"]["a"]["state"], run["jobs"]["a"]["attempt"]) == ("failed", "failed", 3)
    assert len(run["jobs"]["a"]["attempts"]) == 3
    assert run["jobs"]["b"]["state"] == "cancelled"  # it can never run now
    assert [s for s in _statuses(world, "r") if s[1] != "started"] == [(0, "failed")]


def test_an_error_type_the_policy_does_not_retry_fails_at_once() -> None:
    world, _ = _world({"a": "fail"})  # the harness fails with ValueError
    policy = {**RETRY3, "not_on": ["ValueError"]}
    start_run(world.store, document("not-on", [job("a", retry=policy)]), {}, run_id="r")
    world.drain()

    assert (_job(world, "r", "a")["state"], world.store.get_run("r")["status"]) == ("failed", "failed")  # type: ignore[index]


# ---------------------------------------------------------------------- timeouts


def test_a_job_past_its_timeout_times_out_and_its_late_outcome_is_stale() -> None:
    world, clock = _world({"a": "hang"})
    start_run(world.store, document("timeout", [job("a", timeout=60)]), {}, run_id="r")
    world.drain()
    a = _job(world, "r", "a")
    assert (a["state"], a["timer"], a["due"]) == (
        "running",
        "attempt",
        a["dispatched_at"] + timedelta(seconds=60),
    )

    clock.advance(59)
    assert world.fire_timers() == []
    clock.advance(1)
    assert world.fire_timers()[0]["expired"] == ["a"]
    world.drain()
    run = world.store.get_run("r")
    assert run is not None
    assert (run["status"], run["jobs"]["a"]["state"]) == ("failed", "timed_out")
    assert run["jobs"]["a"]["error"]["type"] == "Timeout"

    # the job's own success arrives afterwards: the Reporter refuses it, nothing changes
    with pytest.raises(RejectedReport, match="timed_out"):
        world.reporter.succeeded("r", "a", 1, {"late": True})
    assert world.store.get_run("r") == run


def test_an_outcome_event_of_a_timed_out_attempt_is_a_counted_stale_rejection() -> None:
    world, clock = _world({"a": "hang"})
    start_run(world.store, document("stale", [job("a", timeout=5, retry=RETRY3)]), {}, run_id="r")
    world.drain()
    clock.advance(5)
    world.fire_timers()
    world.drain()
    assert _job(world, "r", "a")["state"] == "waiting"
    from flowkit.runtime.store import make_status

    # the job reported success just before it timed out, and the event is delivered afterwards
    world.store.insert_status(make_status("r", "stale", "a", 1, "success", output={"late": True}))
    before = world.store.get_run("r")
    world.drain()

    assert world.store.get_run("r") == before
    assert world.runtime.rejections == {"stale": 2}  # statemachine and orchestrator each refused it


def test_a_timed_out_attempt_is_retried_like_a_failed_one() -> None:
    world, clock = _world({"a": ["hang", "success"]})
    start_run(world.store, document("t-retry", [job("a", timeout=30, retry=RETRY3)]), {}, run_id="r")
    world.drain()
    clock.advance(30)
    world.fire_timers()
    world.drain()
    clock.advance(10)
    world.fire_timers()
    world.drain()

    run = world.store.get_run("r")
    assert run is not None
    assert (run["status"], run["jobs"]["a"]["attempt"]) == ("succeeded", 2)
    assert run["jobs"]["a"]["attempts"]["1"]["state"] == "timed_out"


def test_the_crash_between_claim_and_invoke_is_covered_by_the_deadline() -> None:
    """A claimed job that was never invoked (the orchestrator died) times out and is retried."""
    world, clock = _world({})
    start_run(world.store, document("crash", [job("a", timeout=20, retry=RETRY3)]), {}, run_id="r")
    world.drain(jobs=False)
    world.take_job(0)  # the invoke is lost: the job side never sees it
    assert _job(world, "r", "a")["state"] == "dispatched"

    clock.advance(20)
    world.fire_timers()
    world.drain()
    clock.advance(10)
    world.fire_timers()
    world.drain()

    run = world.store.get_run("r")
    assert run is not None
    assert (run["status"], run["jobs"]["a"]["attempt"]) == ("succeeded", 2)


def test_a_timer_fired_twice_or_late_changes_nothing_more() -> None:
    world, clock = _world({"a": "hang"})
    start_run(world.store, document("twice", [job("a", timeout=5, retry=RETRY3)]), {}, run_id="r")
    world.drain()
    clock.advance(5)
    run = world.store.get_run("r")
    assert run is not None
    from flowkit.runtime import timers

    first = timers.fire_run(world.runtime, run, world.store.now())
    second = timers.fire_run(world.runtime, run, world.store.now())  # the same stale snapshot again
    world.drain()
    clock.advance(3600)
    world.fire_timers()
    world.fire_timers()

    assert first["expired"] == second["expired"] == ["a"]
    assert [s for s in _statuses(world, "r", "a") if s[1] == "timed_out"] == [(1, "timed_out")]
    assert [(j, n) for _, j, n in world.dispatcher.dispatched] == [("a", 1), ("a", 2)]


# ---------------------------------------------------------------------- heartbeats


def test_heartbeats_keep_an_attempt_alive_and_silence_times_it_out() -> None:
    world, clock = _world({"a": "hang"})
    start_run(world.store, document("beat", [job("a", heartbeat=10, timeout=3600)]), {}, run_id="r")
    world.drain()
    for _ in range(5):
        clock.advance(8)
        assert world.reporter.heartbeat("r", "a", 1)
        world.fire_timers()
        assert _job(world, "r", "a")["state"] == "running"
    clock.advance(10)
    world.fire_timers()
    world.drain()

    a = _job(world, "r", "a")
    assert (a["state"], a["error"]["type"]) == ("timed_out", "HeartbeatTimeout")
    assert not world.reporter.heartbeat("r", "a", 1)  # too late: refused, nothing written


# ---------------------------------------------------------------------- the run's own timeout


def test_a_run_past_its_timeout_ends_timed_out_once_and_later_outcomes_change_nothing_else() -> None:
    world, clock = _world({"a": "hang"})
    start_run(world.store, document("slow", [job("a"), job("b", "a")], timeout=3600), {}, run_id="r")
    world.drain()

    clock.advance(3599)
    world.fire_timers()
    assert world.store.get_run("r")["status"] == "running"  # type: ignore[index]
    clock.advance(1)
    world.fire_timers()
    world.fire_timers()
    world.reporter.succeeded("r", "a", 1, {"late": True})  # a was still running: recorded, nothing more
    world.drain()

    run = world.store.get_run("r")
    assert run is not None
    assert (run["status"], run["jobs"]["a"]["state"], run["jobs"]["b"]["state"]) == (
        "timed_out",
        "succeeded",
        "cancelled",
    )
    assert [s for s in _statuses(world, "r") if s[1] != "started"] == [(0, "timed_out")]
    assert [j for _, j, _ in world.dispatcher.dispatched] == ["a"]
    assert "next_due_ms" not in run


def test_the_sweep_reads_only_runs_with_something_due() -> None:
    world, _ = _world({"a": "hang"})
    spec = document("many", [job("a", timeout=60)])
    for i in range(30):
        start_run(world.store, spec, {}, run_id=f"r-{i}")
    world.drain()
    world.store.runs.update_many({"_id": {"$in": ["r-3", "r-7"]}}, {"$set": {"next_due_ms": 0}})

    fired = world.fire_timers()

    assert sorted(r["run_id"] for r in fired) == ["r-3", "r-7"]


@pytest.mark.parametrize("message", ["a broke", "a broke: " + "x" * 3000])  # inline, in the results
def test_a_retrying_event_lost_in_a_crash_is_inserted_again_by_the_next_delivery(message: str) -> None:
    # Given a failed attempt recorded as waiting for its retry, whose handler died before it inserted
    # the `retrying` event (simulated by deleting that event)
    world, _clock = _world({"a": ["fail", "success"]}, messages={"a": message})
    start_run(world.store, document("retry", [job("a", retry=RETRY3), job("b", "a")]), {}, run_id="r")
    world.drain()
    waiting = _job(world, "r", "a")
    assert (waiting["state"], waiting["attempt"]) == ("waiting", 1)
    lost = world.store.statuses.find_one({"run_id": "r", "job": "a", "status": "retrying"})
    assert lost is not None
    world.store.statuses.delete_one({"_id": lost["_id"]})

    # When the `failed` event of that attempt is delivered again, to either handler
    failed = next(s for s in world.statuses if s["job"] == "a" and s["status"] == "failed")
    envelope = to_envelope(failed, database=world.store.database.name, collection=world.store.statuses.name)
    world.runtime.statemachine_job(envelope, None)

    # Then the retrying event is back, the same as the lost one, and nothing else changed
    again = world.store.statuses.find_one({"run_id": "r", "job": "a", "status": "retrying"})
    assert again is not None
    assert (again["key"], again["output"], again["error"]) == (lost["key"], lost["output"], lost["error"])
    assert again["error"]["message"] == message
    assert _job(world, "r", "a") == waiting
    world.runtime.orchestrator_job(envelope, None)  # a second repeat inserts nothing new
    assert world.store.statuses.count_documents({"run_id": "r", "job": "a", "status": "retrying"}) == 1


# ---------------------------------------------------------------------- after a redrive


@pytest.mark.parametrize("path", ["counters", "whole-document"])
def test_the_backoff_of_a_redriven_job_counts_from_its_redrive(path: str) -> None:
    # Given a job that failed its 3 attempts (waiting 10 s, then 20 s), ending the run failed
    from flowkit.runtime.control import redrive_run

    world, clock = _world({"a": "fail"})
    jobs = [job("a", retry=RETRY3), job("b", "a")]
    if path == "whole-document":
        jobs.append({**job("cleanup", "a"), "run_on": "all_done"})  # an always() job
    start_run(world.store, document("retry", jobs), {}, run_id="r")
    if path == "whole-document":
        # as a run started before the counters covered always jobs: decided on the whole jobs map
        world.store.runs.update_one(
            {"_id": "r"}, {"$set": {"counters": 2}, "$unset": {"always_left": "", "waits": ""}}
        )
    counted: list[object] = []
    real = world.runtime._schedule_counted

    def spy(*args: object) -> object:
        counted.append(args)
        return real(*args)

    world.runtime._schedule_counted = spy  # type: ignore[method-assign]
    for _ in range(3):
        world.drain()
        clock.advance(3600)
        world.fire_timers()
    world.drain()
    assert world.store.get_run("r")["status"] == "failed"  # type: ignore[index]

    # When it is redriven and its first attempt since the redrive (attempt 4) fails
    redrive_run(world.store, "r")
    world.drain()

    # Then it waits 10 s, as after attempt 1 (not 10 * 2**3 = 80 s), and the retrying event says so
    a = _job(world, "r", "a")
    assert (a["state"], a["attempt"], a["attempt_base"]) == ("waiting", 4, 3)
    assert a["due"] == a["attempts"]["4"]["finished_at"] + timedelta(seconds=10)
    event = world.store.statuses.find_one({"run_id": "r", "job": "a", "attempt": 4, "status": "retrying"})
    assert event is not None and event["output"]["not_before"] == a["due"].isoformat()
    assert world.store.get_run("r")["next_due_ms"] <= int(a["due"].timestamp() * 1000)  # type: ignore[index]
    clock.advance(10)
    world.fire_timers()
    world.drain()
    a = _job(world, "r", "a")
    assert (a["state"], a["attempt"]) == ("waiting", 5)
    assert a["due"] == a["attempts"]["5"]["finished_at"] + timedelta(seconds=20)  # then 20 s
    clock.advance(20)
    world.fire_timers()
    world.drain()
    run = world.store.get_run("r")
    assert run is not None
    # the fresh budget is 3 attempts: 4, 5, 6
    assert (run["status"], run["jobs"]["a"]["state"], run["jobs"]["a"]["attempt"]) == ("failed", "failed", 6)
    assert bool(counted) == (path == "counters")  # each case took the path it is named after


def test_a_run_timeout_read_before_a_redrive_does_not_end_the_redriven_run() -> None:
    # Given a run past its timeout, read by a sweep (the snapshot it fires on)
    from flowkit.runtime import timers
    from flowkit.runtime.control import cancel_run, redrive_run

    world, clock = _world({"a": "hang"})
    start_run(world.store, document("slow", [job("a"), job("b", "a")], timeout=60), {}, run_id="r")
    world.drain()
    clock.advance(61)
    stale = world.store.get_run("r")
    assert stale is not None and stale["status"] == "running"

    # When the run is cancelled and redriven before that sweep fires
    cancel_run(world.store, "r", reason="operator")
    redrive_run(world.store, "r")
    world.drain(jobs=False)
    fired = timers.fire_run(world.runtime, stale, world.store.now())

    # Then the old deadline ends nothing: the redriven run runs on with its own deadline
    run = world.store.get_run("r")
    assert run is not None
    assert fired["ended"] is None
    assert (run["status"], run["redrive_count"]) == ("running", 1)
    assert run["redrive_deadline"] == run["redriven_at"] + timedelta(seconds=60)
    assert [e["status"] for e in world.store.statuses.find({"run_id": "r", "job": None})] == [
        "started",
        "cancelled",
        "started",
    ]
    # and its own deadline still fires: the redriven run times out once, at redrive + 60 s
    clock.advance(60)
    world.fire_timers()
    run = world.store.get_run("r")
    assert run is not None and run["status"] == "timed_out"
    ends = [(e["attempt"], e["status"]) for e in world.store.statuses.find({"run_id": "r", "job": None})]
    assert sorted(ends) == [(0, "cancelled"), (0, "started"), (1, "started"), (1, "timed_out")]


def test_a_sweep_of_the_ended_run_does_not_drop_the_redriven_runs_deadline() -> None:
    # Given a run timed out by its deadline, read by a sweep while it is ended (its timers are void)
    from flowkit.runtime import timers
    from flowkit.runtime.control import redrive_run

    world, clock = _world({"a": "hang"})
    start_run(world.store, document("slow", [job("a")], timeout=60), {}, run_id="r")
    world.drain()
    clock.advance(60)
    world.store.end_run("r", "timed_out", phase_index=1, keep_due=True)  # the sweep's end, before its event
    ended = world.store.get_run("r")
    assert ended is not None and "next_due_ms" in ended

    # When the run is redriven before that sweep finishes with it
    redrive_run(world.store, "r")
    timers.fire_run(world.runtime, ended, world.store.now())

    # Then the redriven run keeps its deadline's sweep key, and the deadline fires
    run = world.store.get_run("r")
    assert run is not None
    assert run["next_due_ms"] == int(run["redrive_deadline"].timestamp() * 1000)
    clock.advance(60)
    world.fire_timers()
    assert world.store.get_run("r")["status"] == "timed_out"  # type: ignore[index]
