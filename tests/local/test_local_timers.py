"""Local runs carry out retries, timeouts and heartbeats for real, on a wall or a virtual clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flowkit import Retry, job, workflow
from flowkit.local.clock import VirtualClock
from flowkit.local.mocks import failure, hang, success
from flowkit.local.runner import run_workflow


def _flow(*, retry: Retry | None = None, timeout: float | None = None, heartbeat: float | None = None) -> Any:
    @job(name="work", retry=retry, timeout=timeout, heartbeat=heartbeat)
    def work(event: Any, context: Any = None) -> Any:
        return {"attempt": event["attempt"]}

    @job(name="after")
    def after(event: Any, context: Any = None) -> Any:
        return event["needs"]["work"]

    @workflow(name="timers")
    def timers() -> Any:
        return work >> after

    return timers


def test_per_attempt_mocks_drive_retries_and_a_ten_minute_backoff_takes_no_time() -> None:
    flow = _flow(retry=Retry(attempts=4, interval=timedelta(minutes=10), backoff=1.0))
    clock = VirtualClock()
    began_virtual = clock()
    began = time.monotonic()

    run = run_workflow(
        flow, mocks={"work": [failure("Flaky", "1"), failure("Flaky", "2"), success({"ok": 3})]}, clock=clock
    )

    assert time.monotonic() - began < 10
    assert run.status == "succeeded"
    assert run.jobs["work"].attempt == 3
    assert [a.error.message for a in run.jobs["work"].attempts.values() if a.error] == ["1", "2"]
    assert run.jobs["after"].output == {"ok": 3}
    assert clock() - began_virtual >= timedelta(minutes=20)  # two backoffs of ten minutes passed
    assert [e.status for e in run.events if e.job == "work"].count("retrying") == 2


def test_a_hung_job_times_out_after_an_hour_in_milliseconds_then_its_retry_succeeds() -> None:
    flow = _flow(retry=Retry(attempts=2, interval=1), timeout=3600)
    began = time.monotonic()

    run = run_workflow(flow, mocks={"work": [hang(), success({"second": True})]}, clock="virtual")

    assert time.monotonic() - began < 10
    assert run.status == "succeeded"
    first = run.jobs["work"].attempts["1"]
    assert (first.attempt, first.state, first.error and first.error.type) == (1, "timed_out", "Timeout")


def test_a_job_body_sees_its_remaining_time_from_its_own_timeout() -> None:
    seen: list[int] = []

    @job(name="measure", timeout=120)
    def measure(event: Any, context: Any = None) -> Any:
        seen.append(context.get_remaining_time_in_millis())
        return None

    @workflow(name="remaining")
    def remaining() -> Any:
        return measure

    run_workflow(remaining, clock="virtual")

    assert 0 < seen[0] <= 120_000 and seen[0] > 119_000


def test_a_body_that_heartbeats_outlives_its_heartbeat_interval_on_the_wall_clock() -> None:
    # generous margins: a loaded machine must not make a beat late (1 s apart at most, 2 s allowed)
    @job(name="beating", heartbeat=2, timeout=30)
    def beating(event: Any, context: Any = None) -> Any:
        for _ in range(6):
            time.sleep(0.5)
            context.heartbeat()
        return "alive"

    @job(name="silent", heartbeat=1)
    def silent(event: Any, context: Any = None) -> Any:
        time.sleep(3)
        return "too late"

    @workflow(name="beats")
    def beats() -> Any:
        return beating >> silent

    run = run_workflow(beats, clock="wall", timeout=30)

    assert run.jobs["beating"].state == "succeeded"
    assert run.jobs["silent"].state == "timed_out"
    assert run.jobs["silent"].error is not None and run.jobs["silent"].error.type == "HeartbeatTimeout"
    assert run.status == "failed"


def test_a_workflow_timeout_ends_the_run_timed_out() -> None:
    @job(name="forever")
    def forever(event: Any, context: Any = None) -> Any:
        return None

    @workflow(name="bounded", timeout=timedelta(hours=2))
    def bounded() -> Any:
        return forever

    run = run_workflow(bounded, mocks={"forever": hang()}, clock="virtual")

    assert run.status == "timed_out"
    assert [e.status for e in run.events if e.job is None] == ["started", "timed_out"]


def test_on_a_virtual_clock_every_event_is_on_that_clock_the_end_event_too() -> None:
    # Given a run whose only job fails twice with a ten-minute backoff, then fails for good
    flow = _flow(retry=Retry(attempts=3, interval=timedelta(minutes=10), backoff=1.0))
    clock = VirtualClock(datetime(2030, 1, 1, tzinfo=UTC))  # far from the wall clock

    # When it runs on a virtual clock
    run = run_workflow(flow, mocks={"work": failure("Broken", "no")}, clock=clock)

    # Then its end event is stamped when the run ended on that clock, twenty minutes in
    assert run.status == "failed"
    end = next(e for e in run.events if e.job is None and e.status == "failed")
    assert run.run.ended_at is not None
    assert end.time == run.run.ended_at
    assert end.time - run.run.created_at >= timedelta(minutes=20)
    assert all(e.time.year == 2030 for e in run.events)  # no event on the wall clock
