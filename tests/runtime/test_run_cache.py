"""The handlers read a run's fixed part (``config``, ``input``, ``workflow``) once per container.

Over the wire, with a ``pymongo.monitoring.CommandListener`` on the client: what each handler
invocation receives, and how many commands it sends, with the cache and without it
(``Runtime(cache_runs=0)``: the fixed part read again by every invocation).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

import bson
import pytest
from _harness import Delivery, World, check_invariants, document, input_eq, job, scenarios
from pymongo import monitoring

from flowkit.errors import UnknownRun
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.start import start_run
from flowkit.runtime.store import COUNTERS, RunCache, nested

SCENARIOS = {s.name: s for s in scenarios()}


class Replies(monitoring.CommandListener):
    """Every command's name and the run documents that came back in its reply."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]], int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "endSessions":
            return
        reply = event.reply
        docs: list[dict[str, Any]] = []
        if isinstance(reply.get("value"), dict):
            docs.append(reply["value"])
        docs.extend(reply.get("cursor", {}).get("firstBatch", []))
        # shallow copies: pymongo hands the same dicts to the caller, which may add fields to them
        docs = [dict(doc) for doc in docs]
        self.calls.append((event.command_name, docs, len(bson.encode(reply))))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def listened(wire_server: Any) -> Iterator[tuple[Any, Replies]]:
    """A fresh database on the wire server whose client reports every reply to a ``Replies``."""
    replies = Replies()
    client = wire_server.client(event_listeners=[replies])
    name = f"flowkit_cache_{uuid.uuid4().hex[:10]}"
    yield client[name], replies
    client.drop_database(name)
    client.close()


def _run_docs(calls: list[tuple[str, list[dict[str, Any]], int]]) -> list[dict[str, Any]]:
    """The run documents among the replies (status documents have a ``key``)."""
    return [doc for _, docs, _ in calls for doc in docs if "key" not in doc]


def _deliver_all(world: World, replies: Replies) -> list[tuple[Delivery, list[Any]]]:
    """FIFO until quiet; each handler delivery with the replies its invocation received."""
    made: list[tuple[Delivery, list[Any]]] = []
    while world.deliveries or world.pending_jobs():
        if world.deliveries:
            delivery = world.deliveries.pop(0)
            replies.calls.clear()
            world.deliver(delivery)
            made.append((delivery, list(replies.calls)))
        else:
            world.execute(0)
    return made


def test_a_second_invocation_for_a_run_receives_no_config(listened: tuple[Any, Replies]) -> None:
    database, replies = listened
    world = World(database)
    scenario = SCENARIOS["join"]
    start_run(world.store, scenario.document, {"day": "2026-11-28"}, run_id="r-1")
    config_bytes = len(bson.encode(world.store.get_run("r-1")["config"]))  # type: ignore[index]
    made = _deliver_all(world, replies)
    check_invariants(world, scenario, "r-1")

    first, later = made[0], made[1:]
    assert first[0].handler == "orchestrator"
    first_docs = _run_docs(first[1])
    assert "config" in first_docs[0] and "input" in first_docs[0]  # the fixed part, read once
    assert all("config" not in doc for doc in first_docs[1:])
    assert len(later) >= 10
    for delivery, calls in later:
        docs = _run_docs(calls)
        assert docs, f"{delivery.key} to {delivery.handler} read no run"
        for doc in docs:
            assert set(nested(doc)) <= {"_id", "jobs", *COUNTERS}, f"{delivery.key}: {sorted(doc)}"
        assert sum(size for _, _, size in calls) < config_bytes * len(docs), delivery.key


def _commands_and_bytes(cache_runs: int, database: Any, replies: Replies) -> list[tuple[str, int, int]]:
    world = World(database)
    world.runtime = Runtime(world.store, world.dispatcher, cache_runs=cache_runs)
    scenario = SCENARIOS["join"]
    start_run(world.store, scenario.document, {}, run_id="r-1")
    made = _deliver_all(world, replies)
    check_invariants(world, scenario, "r-1")
    return [(f"{d.handler} {d.key}", len(calls), sum(size for _, _, size in calls)) for d, calls in made]


def test_without_the_cache_every_invocation_reads_the_fixed_part_again(wire_server: Any) -> None:
    """The same FIFO run, with the cache and without it: one more command and more bytes each time."""
    results = []
    for cache_runs in (128, 0):
        replies = Replies()
        client = wire_server.client(event_listeners=[replies])
        name = f"flowkit_cache_{uuid.uuid4().hex[:10]}"
        try:
            results.append(_commands_and_bytes(cache_runs, client[name], replies))
        finally:
            client.drop_database(name)
            client.close()
    cached, uncached = results
    assert [label for label, _, _ in cached] == [label for label, _, _ in uncached]
    assert cached[0][1:] == pytest.approx(uncached[0][1:], rel=0.05)  # the first one reads it either way
    for (label, trips, with_cache), (_, trips_without, without) in zip(cached[1:], uncached[1:], strict=True):
        assert (trips + 1, with_cache) < (trips_without + 1, without / 2), label
        assert trips + 1 == trips_without, label


def test_a_new_container_mid_run_reads_the_run_whole_once(listened: tuple[Any, Replies]) -> None:
    database, replies = listened
    world = World(database)
    scenario = SCENARIOS["payment-happy"]
    start_run(world.store, scenario.document, {}, run_id="r-1")
    for _ in range(4):  # started -> validate dispatched and reported -> its outcome delivered
        if world.deliveries:
            world.deliver(world.deliveries.pop(0))
        else:
            world.execute(0)
    assert "r-1" in world.runtime.run_cache
    world.runtime = Runtime(world.store, world.dispatcher)  # a new Lambda container
    made = _deliver_all(world, replies)
    check_invariants(world, scenario, "r-1")
    whole = [i for i, (_, calls) in enumerate(made) if any("config" in d for d in _run_docs(calls))]
    assert whole == [0]


def test_a_cleared_cache_mid_run_changes_nothing(database: Any) -> None:
    """Clearing the cache between any two steps (embedded database): the run still ends right."""
    for name in ("when-skip", "handled-failure", "output-condition", "unhandled-failure"):
        scenario = SCENARIOS[name]
        world = World(database, outcomes=scenario.outcomes, outputs=scenario.outputs)
        run_id = f"r-{name}"
        start_run(world.store, scenario.document, scenario.input, run_id=run_id)
        step = 0
        while world.deliveries or world.pending_jobs():
            if step % 3 == 1:
                world.runtime.run_cache.clear()
            if world.deliveries:
                world.deliver(world.deliveries.pop(0))
            else:
                world.execute(0)
            step += 1
        check_invariants(world, scenario, run_id)


def test_a_run_started_again_under_the_same_id_is_not_read_from_the_cache(database: Any) -> None:
    """A cached run deleted and started again with another input: the new input decides."""
    doc = document("again", [job("x", condition=input_eq("go", True)), job("y", "x")])
    world = World(database)
    start_run(world.store, doc, {"go": True}, run_id="r-1")
    world.deliver(world.deliveries.pop(0))
    assert [name for _, name, _ in world.dispatcher.dispatched] == ["x"]
    assert "r-1" in world.runtime.run_cache

    world.store.runs.delete_one({"_id": "r-1"})
    with pytest.raises(UnknownRun):  # the cache never hides that a run is gone
        world.runtime.orchestrator_job(_started_envelope(world), None)
    world.store.statuses.delete_many({"run_id": "r-1"})
    time.sleep(0.005)  # another created_at (milliseconds), the cache's identity check with the version
    world.deliveries.clear()
    start_run(world.store, doc, {"go": False}, run_id="r-1")
    result = world.deliver(world.deliveries.pop(0))
    assert result["skipped"] == ["x"] and result["dispatched"] == ["y"]


def _started_envelope(world: World) -> dict[str, Any]:
    from flowkit.runtime.events import to_envelope

    return to_envelope(world.statuses[0], database=world.store.database.name, collection="statuses")


def test_a_dispatcher_that_changes_what_it_receives_cannot_change_the_cached_run(database: Any) -> None:
    """The local runner hands the payload to job code in this process; the cache must not share it."""
    doc = document("mutating", [job("x", input={"k": 1}), job("y", "x", condition=input_eq("go", True))])
    world = World(database)
    recording = world.dispatcher

    class Meddling:
        def dispatch(self, spec: dict[str, Any], payload: dict[str, Any]) -> None:
            recording.dispatch(copy.deepcopy(spec), copy.deepcopy(payload))
            payload["input"]["go"] = False
            payload["job_input"]["k"] = 2
            spec["needs"] = ["nothing"]

    world.runtime = Runtime(world.store, Meddling())  # type: ignore[arg-type]
    start_run(world.store, doc, {"go": True}, run_id="r-1")
    while world.deliveries or world.pending_jobs():
        if world.deliveries:
            world.deliver(world.deliveries.pop(0))
        else:
            world.execute(0)
    assert [name for _, name, _ in recording.dispatched] == ["x", "y"]
    assert recording.payloads[1]["input"] == {"go": True}
    cached = world.runtime.run_cache.get("r-1")
    assert cached is not None and cached["config"]["jobs"][0]["input"] == {"k": 1}


def test_the_cache_keeps_the_most_recently_used_runs() -> None:
    cache = RunCache(2)
    for run_id in ("a", "b"):
        cache.put({"_id": run_id, "workflow": "w", "config": {}, "input": {}, "version": "v"})
    assert cache.get("a") is not None  # a is now the most recent
    cache.put({"_id": "c", "workflow": "w", "config": {}, "input": {}, "version": "v"})
    assert ("a" in cache, "b" in cache, "c" in cache, len(cache)) == (True, False, True, 2)
    assert cache.put({"_id": "d", "jobs": {}}) is None  # a projected read is never cached
    assert "d" not in cache
    entry = RunCache(0).put({"_id": "e", "config": {}})
    assert entry is not None and entry["config"] == {} and entry["plan"].specs == {}
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "128"])
def test_a_cache_size_that_is_not_a_count_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_runs"):
        RunCache(bad)
