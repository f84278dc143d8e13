"""The three handlers through real EventBridge envelopes, the real store and the real Reporter."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _harness import RUNS, STATUSES, Scenario, World, check_invariants, document, job, scenarios

from flowkit.errors import EventError, UnknownRun
from flowkit.runtime.events import to_envelope
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store, make_status

SCENARIOS = {s.name: s for s in scenarios()}


def run_scenario(world: World, scenario: Scenario, pick: Any) -> str:
    """Start the scenario's run, then repeatedly let ``pick(world)`` act until nothing is left."""
    start_run(world.store, scenario.document, scenario.input, run_id=f"r-{scenario.name}")
    while world.deliveries or world.pending_jobs():
        pick(world)
    return f"r-{scenario.name}"


def fifo(world: World) -> None:
    if world.deliveries:
        world.deliver(world.deliveries.pop(0))
    else:
        world.execute(0)


def orchestrator_first_and_twice(world: World) -> None:
    """The classic trap: the orchestrator hears of an outcome before the statemachine recorded it.
    Every delivery is also made twice."""
    if world.deliveries:
        index = next((i for i, d in enumerate(world.deliveries) if d.handler == "orchestrator"), 0)
        delivery = world.deliveries.pop(index)
        world.deliver(delivery)
        world.deliver(delivery)
    else:
        world.execute(len(world.pending_jobs()) - 1)


def statemachine_last(world: World) -> None:
    """Outcome events reach the statemachine only when nothing else is left; jobs run newest first."""
    index = next((i for i, d in enumerate(world.deliveries) if d.handler != "statemachine"), None)
    if index is not None:
        world.deliver(world.deliveries.pop(index))
    elif world.pending_jobs():
        world.execute(len(world.pending_jobs()) - 1)
    else:
        world.deliver(world.deliveries.pop())


@pytest.mark.parametrize("pick", [fifo, orchestrator_first_and_twice, statemachine_last])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_end_right_whatever_the_delivery_order(database: Any, name: str, pick: Any) -> None:
    scenario = SCENARIOS[name]
    world = World(database, outcomes=scenario.outcomes, outputs=scenario.outputs)
    run_id = run_scenario(world, scenario, pick)
    check_invariants(world, scenario, run_id)


def test_the_phase_follows_the_first_unfinished_stage(database: Any) -> None:
    world = World(database)
    doc = document("phased", [job("a", phase="p1"), job("b", phase="p1"), job("c", "a", "b", phase="p2")])
    start_run(world.store, doc, {}, run_id="r")
    phases = []
    while world.deliveries or world.pending_jobs():
        fifo(world)
        phases.append(world.store.get_run("r")["phase"])
    assert phases[0] == "p1" and "p2" in phases and phases[-1] is None
    assert phases.index("p2") > phases.index("p1")


def test_a_payload_over_the_limit_fails_the_job_with_a_clear_error(database: Any) -> None:
    world = World(database, outputs={"a": {"blob": "x" * 5000}}, payload_limit=2000)
    doc = document("big", [job("a"), job("b", "a")])
    start_run(world.store, doc, {}, run_id="r")
    while world.deliveries or world.pending_jobs():
        fifo(world)
    run = world.store.resolve_run(world.store.get_run("r"))  # a long error: kept in the results
    assert run["status"] == "failed"
    assert run["jobs"]["b"]["state"] == "failed"
    assert run["jobs"]["b"]["error"]["type"] == "DispatchError"
    assert "payload for job 'b' of run 'r' is" in run["jobs"]["b"]["error"]["message"]
    assert [j for _, j, _ in world.dispatcher.dispatched] == ["a"]
    assert world.store.statuses.find_one({"key": "r/b/1/failed"})["error"]["type"] == "DispatchError"
    assert [e["status"] for e in world.end_events("r")] == ["failed"]


def test_a_failed_dispatch_releases_the_claim_and_the_redelivery_dispatches(database: Any) -> None:
    world = World(database)
    world.dispatcher.fail_for = {"a"}
    start_run(world.store, document("wf", [job("a")]), {}, run_id="r")
    started = world.deliveries.pop(0)

    with pytest.raises(ConnectionError):
        world.deliver(started)
    assert world.store.get_run("r")["jobs"]["a"]["state"] == "pending"

    world.deliver(started)  # EventBridge retries the failed invocation
    assert world.dispatcher.dispatched == [("r", "a", 1)]
    assert world.store.get_run("r")["jobs"]["a"]["attempt"] == 1


def _envelope(store: Store, status: dict[str, Any]) -> dict[str, Any]:
    return to_envelope(status, database=store.database.name, collection=STATUSES)


def test_events_for_an_unknown_run_raise(database: Any) -> None:
    world = World(database)
    started = _envelope(world.store, make_status("ghost", "wf", None, 0, "started"))
    success = _envelope(world.store, make_status("ghost", "wf", "a", 1, "success"))
    with pytest.raises(UnknownRun, match="run 'ghost' does not exist"):
        world.runtime.orchestrator_job(started, None)
    with pytest.raises(UnknownRun, match="run 'ghost' does not exist"):
        world.runtime.statemachine_job(success, None)


def test_an_outcome_that_does_not_match_the_run_is_counted_and_changes_nothing(
    database: Any, caplog: Any
) -> None:
    world = World(database)
    start_run(world.store, document("wf", [job("a"), job("b", "a")]), {}, run_id="r")
    before = world.store.get_run("r")
    bogus = [
        make_status("r", "wf", "b", 1, "success"),  # b was never dispatched
        make_status("r", "wf", "zz", 1, "failed", error={"type": "E", "message": "m"}),  # no such job
    ]
    with caplog.at_level(logging.WARNING, logger="flowkit.runtime.handlers"):
        for status in bogus:
            assert world.runtime.statemachine_job(_envelope(world.store, status))["action"] == "rejected"
            assert world.runtime.orchestrator_job(_envelope(world.store, status))["action"] == "rejected"
    assert world.store.get_run("r") == before
    assert world.runtime.rejections == {"state_mismatch": 2, "unknown_job": 2}
    assert "job 'b' of run 'r' is 'pending' at attempt 0" in caplog.text
    assert world.dispatcher.dispatched == []


def test_a_malformed_event_is_refused_before_anything_is_read(database: Any) -> None:
    world = World(database)
    with pytest.raises(EventError):
        world.runtime.orchestrator_job({"detail": {"nope": 1}}, None)


def test_an_event_from_another_collection_is_refused(database: Any) -> None:
    world = World(database)
    start_run(world.store, document("wf", [job("a")]), {}, run_id="r")
    wrong = to_envelope(make_status("r", "wf", None, 0, "started"), database="other", collection=STATUSES)
    with pytest.raises(EventError, match="other"):
        world.runtime.orchestrator_job(wrong, None)
    assert world.dispatcher.dispatched == []


def test_events_a_handler_does_not_route_are_ignored(database: Any) -> None:
    world = World(database)
    start_run(world.store, document("wf", [job("a")]), {}, run_id="r")
    started = world.deliveries[0].envelope
    job_started = _envelope(world.store, make_status("r", "wf", "a", 1, "started"))
    assert world.runtime.statemachine_job(started)["action"] == "ignored"
    assert world.runtime.statemachine_job(job_started)["action"] == "ignored"
    assert world.runtime.orchestrator_job(job_started)["action"] == "ignored"
    assert world.dispatcher.dispatched == []


def test_a_late_duplicate_after_the_end_reinserts_the_end_event_harmlessly(database: Any) -> None:
    world = World(database)
    start_run(world.store, document("wf", [job("a")]), {}, run_id="r")
    history = []
    while world.deliveries or world.pending_jobs():
        if world.deliveries:
            history.append(world.deliveries[0])
        fifo(world)
    # simulate a crash between ending the run and inserting its event: the event is gone
    world.store.statuses.delete_many({"run_id": "r", "job": None, "status": "success"})

    world.deliver(history[-1])  # redelivered late

    assert [e["status"] for e in world.end_events("r")] == ["success"]
    world.deliver(history[-1])
    assert len(world.end_events("r")) == 1


class RecordingNotifier:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def send(self, message: Any) -> bool:
        self.messages.append(message)
        return True


def test_notifications_follow_the_runs_settings(database: Any) -> None:
    store = Store(database, runs=RUNS, statuses=STATUSES)
    notifier = RecordingNotifier()
    runtime = Runtime(store, World(database).dispatcher, notifier)
    start_run(store, document("wf", [job("a")]), {}, run_id="r")
    failed = _envelope(
        store, make_status("r", "wf", "a", 1, "failed", error={"type": "E", "message": "boom"})
    )
    started = _envelope(store, make_status("r", "wf", "a", 1, "started"))

    assert runtime.notifications_job(failed)["sent"] is True  # job.failed is on by default
    assert runtime.notifications_job(started)["sent"] is False  # job.started is not
    assert len(notifier.messages) == 1
    with pytest.raises(UnknownRun):
        runtime.notifications_job(_envelope(store, make_status("ghost", "wf", "a", 1, "failed")))


def test_without_a_notifier_nothing_is_sent(database: Any) -> None:
    store = Store(database, runs=RUNS, statuses=STATUSES)
    created: list[int] = []
    runtime = Runtime(store, World(database).dispatcher, notifier_factory=lambda: created.append(1) or None)
    start_run(store, document("wf", [job("a")]), {}, run_id="r")
    event = _envelope(store, make_status("r", "wf", "a", 1, "failed", error={"type": "E", "message": "m"}))
    assert runtime.notifications_job(event) == {"run_id": "r", "action": "ignored", "sent": False}
    runtime.notifications_job(event)
    assert created == [1]  # the factory is asked once per container


def test_a_job_whose_payload_is_too_big_is_not_reported_as_dispatched(database: Any) -> None:
    world = World(database, outputs={"a": {"blob": "x" * 5000}}, payload_limit=2000)
    start_run(world.store, document("big", [job("a"), job("b", "a"), job("c", "a")]), {}, run_id="r")
    fifo(world)  # started -> a dispatched
    world.execute(0)
    outcome = next(d for d in world.deliveries if d.handler == "orchestrator")
    result = world.deliver(outcome)
    assert result["dispatched"] == []
    assert world.store.get_run("r")["jobs"]["b"]["state"] == "failed"
