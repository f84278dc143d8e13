"""The in-process event bus: routing like the EventBridge rules, retries, dead letters, chaos."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from flowkit.local.bus import HANDLERS, EventBus, routes
from flowkit.runtime.events import parse_event, to_envelope

ENVELOPE = functools.partial(to_envelope, database="flowkit", collection="statuses")


def _status(job: str | None, status: str, attempt: int | None = None, run_id: str = "r-1") -> dict[str, Any]:
    attempt = (0 if job is None else 1) if attempt is None else attempt
    return {
        "key": f"{run_id}/{job or '*'}/{attempt}/{status}",
        "run_id": run_id,
        "workflow": "wf",
        "job": job,
        "attempt": attempt,
        "status": status,
        "output": None,
        "error": None,
        "time": datetime(2026, 11, 27, tzinfo=UTC),
    }


class Recorder:
    """Three handlers that record (handler, event key) and can be told to fail."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = dict(fail or {})
        self.lock = threading.Lock()

    def handler(self, name: str) -> Any:
        def handle(envelope: dict[str, Any], context: Any) -> None:
            event = parse_event(envelope, database="flowkit", collection="statuses")
            assert context.function_name == name
            with self.lock:
                self.calls.append((name, event.key))
                if self.fail.get(name, 0) > 0:
                    self.fail[name] -= 1
                    raise RuntimeError(f"{name} is down")

        return handle

    def handlers(self) -> dict[str, Any]:
        return {name: self.handler(name) for name in HANDLERS}


@pytest.mark.parametrize(
    ("job", "status", "expected"),
    [
        (None, "started", ("orchestrator_job", "notifications_job")),
        (None, "success", ("notifications_job",)),
        (None, "failed", ("notifications_job",)),
        ("extract", "started", ("notifications_job",)),
        ("extract", "success", ("statemachine_job", "orchestrator_job", "notifications_job")),
        ("extract", "failed", ("statemachine_job", "orchestrator_job", "notifications_job")),
    ],
)
def test_routes_follow_the_eventbridge_rules(job: str | None, status: str, expected: tuple[str, ...]) -> None:
    assert routes(_status(job, status)) == expected


def test_every_routed_handler_gets_the_trigger_envelope_once() -> None:
    recorder = Recorder()
    bus = EventBus(recorder.handlers(), ENVELOPE)
    try:
        bus.publish(_status(None, "started"))
        bus.publish(_status("extract", "success"))
        assert bus.activity.wait_idle(5)
    finally:
        bus.close()

    assert sorted(recorder.calls) == [
        ("notifications_job", "r-1/*/0/started"),
        ("notifications_job", "r-1/extract/1/success"),
        ("orchestrator_job", "r-1/*/0/started"),
        ("orchestrator_job", "r-1/extract/1/success"),
        ("statemachine_job", "r-1/extract/1/success"),
    ]
    assert [e["key"] for e in bus.events] == ["r-1/*/0/started", "r-1/extract/1/success"]
    assert bus.dead_letters == []


def test_a_failing_handler_is_retried_then_succeeds() -> None:
    recorder = Recorder(fail={"statemachine_job": 2})
    bus = EventBus(recorder.handlers(), ENVELOPE, retry_delay=0)
    try:
        bus.publish(_status("extract", "failed"))
        assert bus.activity.wait_idle(5)
    finally:
        bus.close()

    assert Counter(name for name, _ in recorder.calls)["statemachine_job"] == 3
    assert bus.dead_letters == []


def test_a_handler_failing_every_attempt_is_dead_lettered() -> None:
    recorder = Recorder(fail={"orchestrator_job": 99})
    bus = EventBus(recorder.handlers(), ENVELOPE, retries=2, retry_delay=0)
    try:
        bus.publish(_status("extract", "success"))
        assert bus.activity.wait_idle(5)
    finally:
        bus.close()

    assert Counter(name for name, _ in recorder.calls)["orchestrator_job"] == 3
    [letter] = bus.dead_letters
    assert (letter.handler, letter.key, letter.attempts) == ("orchestrator_job", "r-1/extract/1/success", 3)
    assert letter.error == "RuntimeError: orchestrator_job is down"
    assert parse_event(letter.envelope).key == "r-1/extract/1/success"


def test_handlers_run_concurrently() -> None:
    # Two handlers that each wait for the other: only concurrent delivery lets both finish.
    barrier = threading.Barrier(2, timeout=5)
    done: list[str] = []

    def meet(name: str) -> Any:
        def handle(envelope: dict[str, Any], context: Any) -> None:
            barrier.wait()
            done.append(name)

        return handle

    bus = EventBus({"statemachine_job": meet("s"), "orchestrator_job": meet("o")}, ENVELOPE, workers=4)
    try:
        bus.publish(_status("extract", "success"))
        assert bus.activity.wait_idle(5)
    finally:
        bus.close()

    assert sorted(done) == ["o", "s"]
    assert bus.dead_letters == []


def _chaos_calls(seed: int) -> tuple[list[tuple[str, str]], int]:
    recorder = Recorder()
    bus = EventBus(recorder.handlers(), ENVELOPE, chaos=seed, workers=1)
    try:
        for i in range(20):
            bus.publish(_status(f"job{i}", "success"))
        assert bus.activity.wait_idle(10)
    finally:
        bus.close()
    return recorder.calls, bus.deliveries


def test_chaos_duplicates_and_reorders_but_delivers_everything() -> None:
    calls, deliveries = _chaos_calls(seed=7)

    expected = {(name, f"r-1/job{i}/1/success") for i in range(20) for name in HANDLERS}
    assert set(calls) == expected  # every delivery made at least once
    assert deliveries == len(calls) > len(expected)  # some duplicated
    order = [key for _, key in calls]
    first_seen = list(dict.fromkeys(order))
    assert first_seen != sorted(first_seen, key=lambda k: int(k.split("/")[1][3:]))  # reordered


def test_chaos_plan_depends_only_on_seed_and_event() -> None:
    bus_a = EventBus({}, ENVELOPE, chaos=3)
    bus_b = EventBus({}, ENVELOPE, chaos=3)
    bus_c = EventBus({}, ENVELOPE, chaos=4)
    try:
        plan_a = bus_a._chaos_plan("r-1/x/1/success", list(HANDLERS))
        plan_b = bus_b._chaos_plan("r-1/x/1/success", list(HANDLERS))
        plan_c = bus_c._chaos_plan("r-1/x/1/success", list(HANDLERS))
    finally:
        for bus in (bus_a, bus_b, bus_c):
            bus.close()

    assert plan_a == plan_b
    assert plan_a != plan_c


def test_unknown_handler_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown handlers \\['orchestrator'\\]"):
        EventBus({"orchestrator": lambda e, c: None}, ENVELOPE)


def test_each_handler_gets_its_own_copy_of_the_envelope() -> None:
    seen: dict[str, Any] = {}
    lock = threading.Lock()

    def vandal(envelope: dict[str, Any], context: Any) -> None:
        with lock:
            envelope["detail"]["fullDocument"]["status"] = "vandalized"
            seen["vandal"] = envelope

    def reader(envelope: dict[str, Any], context: Any) -> None:
        with lock:
            seen["reader"] = parse_event(envelope).status.value

    bus = EventBus({"statemachine_job": vandal, "orchestrator_job": reader}, ENVELOPE, workers=1)
    try:
        bus.publish(_status("extract", "success"))
        assert bus.activity.wait_idle(5)
    finally:
        bus.close()

    assert seen["reader"] == "success"
    assert seen["vandal"]["detail"]["fullDocument"]["status"] == "vandalized"
