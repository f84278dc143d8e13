"""Cancel and redrive (``flowkit.runtime.control``) through the real store, handlers and Reporter."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from _harness import World, document, job
from dsl_builders import flow, mk

from flowkit import compile, when
from flowkit.errors import RejectedReport, RunError, UnknownRun
from flowkit.runtime import cancel_run, redrive_run
from flowkit.runtime.control import jobs_to_redrive
from flowkit.runtime.start import start_run


def _workflow_events(world: World, run_id: str) -> list[tuple[str, int]]:
    return sorted(
        (s["status"], s["attempt"]) for s in world.store.statuses.find({"run_id": run_id, "job": None})
    )


def _states(world: World, run_id: str) -> dict[str, str]:
    run = world.store.get_run(run_id)
    assert run is not None
    return {name: j["state"] for name, j in run["jobs"].items()}


def _step_until(world: World, predicate: Any) -> None:
    while not predicate():
        if world.deliveries:
            world.deliver(world.deliveries.pop(0))
        elif world.pending_jobs():
            world.execute(0)
        else:
            raise AssertionError("nothing left to do")


# --------------------------------------------------------------------------- cancel


def _fan(world: World, run_id: str = "r") -> None:
    doc = document("fan", [job("a"), job("b", "a"), job("c", "a"), job("d", "b", "c")])
    start_run(world.store, doc, {}, run_id=run_id)


def test_cancel_ends_the_run_once_and_lets_running_jobs_report(any_database: Any) -> None:
    world = World(any_database)
    _fan(world)
    _step_until(world, lambda: len(world.pending_jobs()) == 2)  # a succeeded; b and c dispatched

    assert cancel_run(world.store, "r", reason="deploy freeze") is True

    run = world.store.get_run("r")
    assert run["status"] == "cancelled" and run["end_reason"] == "deploy freeze" and run["phase"] is None
    assert _states(world, "r") == {"a": "succeeded", "b": "dispatched", "c": "dispatched", "d": "cancelled"}
    # b and c report afterwards: recorded, and nothing else happens
    world.drain()
    assert _states(world, "r") == {"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "cancelled"}
    assert world.store.get_run("r")["status"] == "cancelled"
    assert [name for _, name, _ in world.dispatcher.dispatched] == ["a", "b", "c"]
    assert _workflow_events(world, "r") == [("cancelled", 0), ("started", 0)]
    [end] = list(world.store.statuses.find({"run_id": "r", "status": "cancelled"}))
    assert end["output"] == {"reason": "deploy freeze"}
    assert world.runtime.rejections == {}


def test_cancel_again_is_harmless_and_other_endings_are_refused(database: Any) -> None:
    world = World(database)
    _fan(world)
    assert cancel_run(world.store, "r") is True
    assert cancel_run(world.store, "r", reason="again") is False
    assert _workflow_events(world, "r") == [("cancelled", 0), ("started", 0)]

    _fan(world, "done")
    world.drain()
    with pytest.raises(RunError, match="run 'done' has already ended 'succeeded'"):
        cancel_run(world.store, "done")
    with pytest.raises(UnknownRun, match="run 'nope' does not exist"):
        cancel_run(world.store, "nope")


def test_racing_cancels_cancel_once(wire_database: Any) -> None:
    world = World(wire_database)
    _fan(world)
    results: list[bool] = []
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            results.append(cancel_run(world.store, "r"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=cancel) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == [False] * 5 + [True]
    assert _workflow_events(world, "r") == [("cancelled", 0), ("started", 0)]


def test_a_cancelled_run_dispatches_nothing_when_its_start_arrives_late(database: Any) -> None:
    world = World(database)
    _fan(world)
    cancel_run(world.store, "r")

    world.drain()  # the run's started event is delivered only now

    assert world.dispatcher.dispatched == []
    assert set(_states(world, "r").values()) == {"cancelled"}


# --------------------------------------------------------------------------- redrive


def test_redrive_reruns_the_failed_job_and_what_never_ran(any_database: Any) -> None:
    outcomes = {"b": "fail"}
    world = World(any_database, outcomes=outcomes)
    start_run(world.store, document("seq", [job("a"), job("b", "a"), job("c", "b")]), {}, run_id="r")
    world.drain()
    assert world.store.get_run("r")["status"] == "failed"

    outcomes.clear()  # b works now
    redrive = redrive_run(world.store, "r")
    world.drain()

    # c never ran: it was cancelled when the run ended, and the redrive takes it back to pending
    assert (redrive.redrive_count, redrive.jobs) == (1, ["b", "c"])
    run = world.store.get_run("r")
    assert run["status"] == "succeeded" and run["redrive_count"] == 1
    assert _states(world, "r") == dict.fromkeys("abc", "succeeded")
    # a kept its output and did not run again; b's attempts go on upwards: 1 failed, 2 succeeded
    assert world.dispatcher.dispatched == [("r", "a", 1), ("r", "b", 1), ("r", "b", 2), ("r", "c", 1)]
    assert run["jobs"]["b"]["attempt_base"] == 1
    # one end event per redrive, each with its own key
    assert _workflow_events(world, "r") == [("failed", 0), ("started", 0), ("started", 1), ("success", 1)]


def test_two_redrives_of_the_same_failure_redrive_once(wire_database: Any) -> None:
    world = World(wire_database, outcomes={"b": "fail"})
    start_run(world.store, document("seq", [job("a"), job("b", "a")]), {}, run_id="r")
    world.drain()
    results: list[Any] = []

    def redrive() -> None:
        try:
            results.append(redrive_run(world.store, "r").redrive_count)
        except RunError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=redrive) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(1) == 1, results
    assert all("is running" in r for r in results if r != 1)
    assert world.store.get_run("r")["redrive_count"] == 1


def test_redrive_refuses_running_and_succeeded_runs(database: Any) -> None:
    world = World(database)
    start_run(world.store, document("one", [job("a")]), {}, run_id="r")
    with pytest.raises(RunError, match="run 'r' is running: only a failed, timed-out or cancelled run"):
        redrive_run(world.store, "r")
    world.drain()
    with pytest.raises(RunError, match="run 'r' ended 'succeeded'"):
        redrive_run(world.store, "r")


def test_redrive_redecides_a_branch_decided_on_the_failure(database: Any) -> None:
    """A branch skipped because of the error type that failed the run is decided again."""
    charge = mk("charge")
    workflow = flow(charge >> when(charge.error_type == "CardDeclined", then=mk("apologise")), name="pay")
    types = {"charge": "GatewayTimeout"}
    world = World(database, outcomes={"charge": "fail"}, error_types=types)
    start_run(world.store, compile(workflow), {}, run_id="r")
    world.drain()
    assert _states(world, "r") == {"charge": "failed", "apologise": "skipped"}
    assert jobs_to_redrive(world.store.get_run("r")) == ["charge", "apologise"]

    types["charge"] = "CardDeclined"
    redrive_run(world.store, "r")
    world.drain()

    assert _states(world, "r") == {"charge": "failed", "apologise": "succeeded"}
    assert world.store.get_run("r")["status"] == "succeeded"


def test_redrive_keeps_a_handled_failure_and_its_branch(database: Any) -> None:
    charge = mk("charge")
    workflow = flow(charge >> when(charge.failed, then=mk("refund"), otherwise=mk("ship")), name="pay")
    outcomes = {"charge": "fail", "refund": "fail"}
    world = World(database, outcomes=outcomes)
    start_run(world.store, compile(workflow), {}, run_id="r")
    world.drain()
    assert _states(world, "r") == {"charge": "failed", "refund": "failed", "ship": "skipped"}

    outcomes.pop("refund")
    redrive = redrive_run(world.store, "r")
    world.drain()

    assert redrive.jobs == ["refund"]
    assert _states(world, "r") == {"charge": "failed", "refund": "succeeded", "ship": "skipped"}
    assert [name for _, name, _ in world.dispatcher.dispatched].count("charge") == 1


def test_redrive_of_a_cancelled_run_makes_the_old_attempt_stale(database: Any) -> None:
    world = World(database)
    _fan(world)
    _step_until(world, lambda: len(world.pending_jobs()) == 2)
    cancel_run(world.store, "r")
    old = [world.take_job(0), world.take_job(0)]  # b's and c's attempts 1 are still out there

    redrive = redrive_run(world.store, "r")
    assert redrive.jobs == ["b", "c", "d"]
    for dispatch in old:  # their reports arrive after the redrive: stale, nothing written
        with pytest.raises(
            RejectedReport, match=f"job '{dispatch[1]}' attempt 1 of run 'r': the job is 'pending'"
        ):
            world.report_job(dispatch)
    world.drain()

    run = world.store.get_run("r")
    assert run["status"] == "succeeded"
    assert run["jobs"]["b"]["attempt"] == 2
    assert world.runtime.rejections == {}
    assert _workflow_events(world, "r") == [("cancelled", 0), ("started", 0), ("started", 1), ("success", 1)]


def test_a_redriven_timed_out_run_gets_its_timeout_again(database: Any) -> None:
    from flowkit.runtime import timers

    world = World(database)
    doc = compile(flow(mk("a") >> mk("b"), name="slow", timeout=60))
    start_run(world.store, doc, {}, run_id="r")
    first = world.store.get_run("r")["deadline"]
    assert world.store.end_run("r", "timed_out", phase_index=2)

    redrive_run(world.store, "r")

    run = world.store.get_run("r")
    assert run["deadline"] == first  # the first deadline stays as it was
    assert run["redrive_deadline"] == run["redriven_at"] + timedelta(seconds=60)
    assert timers.next_due(run) == run["redrive_deadline"]
    assert run["next_due_ms"] == int(run["redrive_deadline"].timestamp() * 1000)


@pytest.mark.parametrize("ending", ["timed_out", "cancelled"])
def test_a_redrive_inserts_the_end_event_its_ending_still_owed(any_database: Any, ending: str) -> None:
    # Given a run ended (by its deadline's timer, or a cancel) by a process that died before it
    # inserted the end event
    world = World(any_database)
    start_run(world.store, compile(flow(mk("a") >> mk("b"), name="slow", timeout=60)), {}, run_id="r")
    reason = "operator" if ending == "cancelled" else None
    assert world.store.end_run("r", ending, phase_index=2, reason=reason, keep_due=ending == "timed_out")
    assert _workflow_events(world, "r") == [("started", 0)]

    # When it is redriven (from now on nothing else would insert the old ending's event)
    redrive_run(world.store, "r")

    # Then that ending has its one end event, before the redrive's start
    events = {(e["status"], e["attempt"]): e for e in world.store.statuses.find({"run_id": "r", "job": None})}
    assert sorted(events) == sorted([("started", 0), (ending, 0), ("started", 1)])
    assert events[ending, 0]["time"] <= events["started", 1]["time"]
    if ending == "cancelled":
        assert events[ending, 0]["output"] == {"reason": "operator"}
