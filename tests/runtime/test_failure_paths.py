"""Failure paths users write, run through the real handlers, store and Reporter.

Branching on the error type, the rule that makes a failure handled (a failure path must actually run),
and ``always(job)``: a cleanup that runs whatever happened without hiding a failure.
"""

from __future__ import annotations

from typing import Any

from _harness import World
from dsl_builders import flow, mk

from flowkit import always, compile, parallel, sequence, when
from flowkit.runtime.start import start_run


def _run(database: Any, root: Any, *, fail: dict[str, str] | None = None, run_id: str = "r-1") -> World:
    fail = fail or {}
    world = World(database, outcomes=dict.fromkeys(fail, "fail"), error_types=fail)
    start_run(world.store, compile(flow(root, name="wf")), {}, run_id=run_id)
    world.drain()
    return world


def _states(world: World, run_id: str = "r-1") -> dict[str, str]:
    run = world.store.get_run(run_id)
    assert run is not None
    return {name: job["state"] for name, job in run["jobs"].items()}


def _status(world: World, run_id: str = "r-1") -> str:
    run = world.store.get_run(run_id)
    assert run is not None
    return str(run["status"])


def _dispatched(world: World) -> list[str]:
    return [name for _, name, _ in world.dispatcher.dispatched]


def _payment() -> Any:
    charge = mk("charge")
    return sequence(
        charge, when(charge.error_type == "CardDeclined", then=mk("apologise")), mk("close", needs=["charge"])
    )


def test_a_failure_of_the_type_a_branch_tests_takes_that_branch_and_the_run_succeeds(database: Any) -> None:
    world = _run(database, _payment(), fail={"charge": "CardDeclined"})

    assert _states(world) == {"charge": "failed", "apologise": "succeeded", "close": "succeeded"}
    assert _status(world) == "succeeded"
    assert [e["status"] for e in world.end_events("r-1")] == ["success"]


def test_a_failure_of_another_type_is_not_handled_and_fails_the_run(database: Any) -> None:
    world = _run(database, _payment(), fail={"charge": "GatewayTimeout"})

    # the failure path was not taken: the failure counts, and nothing after charge starts
    assert _states(world) == {"charge": "failed", "apologise": "skipped", "close": "cancelled"}
    assert _status(world) == "failed"
    assert "close" not in _dispatched(world)
    assert [e["status"] for e in world.end_events("r-1")] == ["failed"]


def test_failed_with_lists_several_types(database: Any) -> None:
    charge = mk("charge")
    root = charge >> when(charge.failed_with("CardDeclined", "CardExpired"), then=mk("apologise"))

    expired = _run(database, root, fail={"charge": "CardExpired"}, run_id="r-1")
    assert _status(expired) == "succeeded"
    assert _states(expired)["apologise"] == "succeeded"


def test_a_status_test_true_either_way_does_not_swallow_the_failure(database: Any) -> None:
    """The issue's trap: `when(load.status.is_in(["succeeded", "failed"]), then=cleanup)` used to mark
    load's failure handled, so the run succeeded although load failed."""
    load = mk("load")
    root = load >> when(load.status.is_in(["succeeded", "failed"]), then=mk("cleanup"))

    world = _run(database, root, fail={"load": "ValueError"})

    assert _status(world) == "failed"
    assert _states(world) == {"load": "failed", "cleanup": "cancelled"}


def test_a_failed_otherwise_path_is_a_failure_path(database: Any) -> None:
    charge = mk("charge")
    root = charge >> when(charge.succeeded, then=mk("ship"), otherwise=mk("refund")) >> mk("close")

    world = _run(database, root, fail={"charge": "ValueError"})

    assert _states(world) == {
        "charge": "failed",
        "ship": "skipped",
        "refund": "succeeded",
        "close": "succeeded",
    }
    assert _status(world) == "succeeded"


def test_always_runs_after_a_failure_and_the_run_still_fails_once_it_finished(database: Any) -> None:
    world = World(database, outcomes={"load": "fail"})
    start_run(world.store, compile(flow(mk("load") >> always(mk("cleanup")) >> mk("report"))), {}, run_id="r")

    while not any(name == "cleanup" for _, name, _ in world.pending_jobs()):  # until cleanup is dispatched
        if world.deliveries:
            world.deliver(world.deliveries.pop(0))
        else:
            world.execute(0)
    run = world.store.get_run("r")
    assert run["status"] == "running", "the run must wait for cleanup before it ends failed"
    assert run["jobs"]["load"]["state"] == "failed"
    assert world.end_events("r") == []

    world.drain()

    assert _states(world, "r") == {"load": "failed", "cleanup": "succeeded", "report": "cancelled"}
    assert _status(world, "r") == "failed"
    assert "report" not in _dispatched(world)
    assert [e["status"] for e in world.end_events("r")] == ["failed"]


def test_always_is_an_ordinary_step_when_nothing_failed(database: Any) -> None:
    world = _run(database, mk("load") >> always(mk("cleanup")) >> mk("report"))

    assert _states(world) == dict.fromkeys(["load", "cleanup", "report"], "succeeded")
    assert _status(world) == "succeeded"


def test_always_waits_for_needs_still_in_flight_when_another_failed(database: Any) -> None:
    world = World(database, outcomes={"a": "fail"})
    start_run(world.store, compile(flow(parallel(mk("a"), mk("b")) >> always(mk("cleanup")))), {}, run_id="r")
    world.deliver(world.deliveries.pop(0))  # the run starts: a and b dispatched
    assert sorted(_dispatched(world)) == ["a", "b"]
    world.execute(0)  # a reports failed; b is still running
    while world.deliveries:
        world.deliver(world.deliveries.pop(0))

    assert _status(world, "r") == "running"
    assert "cleanup" not in _dispatched(world), "cleanup must wait for b"

    world.drain()  # b succeeds, then cleanup runs

    assert _states(world, "r") == {"a": "failed", "b": "succeeded", "cleanup": "succeeded"}
    assert _status(world, "r") == "failed"
    assert [e["status"] for e in world.end_events("r")] == ["failed"]


def test_a_failed_always_job_fails_the_run(database: Any) -> None:
    world = _run(database, mk("load") >> always(mk("cleanup")), fail={"cleanup": "OSError"})

    assert _states(world) == {"load": "succeeded", "cleanup": "failed"}
    assert _status(world) == "failed"


def test_no_ordinary_job_is_claimed_once_the_run_drains(database: Any) -> None:
    """Rule 9's compare-and-set: a handler deciding on a snapshot from before the failure cannot start
    an ordinary job once the run is draining; an always job still can."""
    world = World(database)
    start_run(world.store, compile(flow(mk("a") >> always(mk("cleanup")))), {}, run_id="r")
    assert world.store.start_draining("r") is not None

    assert not world.store.claim("r", "a", 0)
    assert world.store.claim("r", "cleanup", 0, always=True)
