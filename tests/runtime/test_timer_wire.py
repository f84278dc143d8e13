"""Timers over the wire (nx-27017, or a real MongoDB via FLOWKIT_TEST_MONGO_URI) and the SQS wake-up (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import pytest
from _harness import World, document, job
from pymongo import monitoring

from flowkit.local.clock import VirtualClock
from flowkit.runtime.start import start_run
from flowkit.runtime.store import epoch_ms
from flowkit.runtime.timers import SqsWaker

HERE = Path(__file__).resolve().parent
RETRY = {"max_attempts": 3, "interval_seconds": 10.0, "backoff_rate": 2.0}


def test_the_timer_sweep_query_uses_its_index(wire_database: Any, wire_server: Any) -> None:
    """The sweep's query uses the next_due index and, on a real MongoDB, examines only the due runs.

    40 runs with a job deadline an hour away, 20 runs without any timer, 5 of the 40 made due now:
    MongoDB's explain (``executionStats``) must report 5 documents examined for 5 returned. nx-27017
    names the index it uses but reports 0 documents examined whatever it reads, so there only the
    plan and the result are checked (``FLOWKIT_TEST_MONGO_URI`` runs the rest).
    """
    world = World(wire_database, outcomes={"a": "hang"}, clock=VirtualClock(), timers=True)
    timed = document("many", [job("a", timeout=3600)])
    untimed = document("plain", [job("a")])
    for i in range(40):
        start_run(world.store, timed, {}, run_id=f"r-{i}")
    for i in range(20):
        start_run(world.store, untimed, {}, run_id=f"p-{i}")
    world.drain()
    due = [f"r-{i}" for i in (3, 11, 19, 27, 35)]
    world.store.runs.update_many({"_id": {"$in": due}}, {"$set": {"next_due_ms": 0}})
    query = {"next_due_ms": {"$lte": epoch_ms(world.store.now())}}

    plan = wire_database.command(
        {"explain": {"find": world.store.runs.name, "filter": query}, "verbosity": "executionStats"}
    )

    text = json.dumps(plan, default=str)
    assert "next_due" in text and ("IXSCAN" in text or "USING INDEX" in text), text[:2000]
    assert sorted(run["_id"] for run in world.store.due_runs(world.store.now())) == sorted(due)
    if not wire_server.stand_in:  # a real MongoDB reports what it examined
        stats = plan["executionStats"]
        assert stats["nReturned"] == 5
        assert stats["totalDocsExamined"] == 5, stats


def test_processes_firing_the_same_timers_never_double_fire(wire_server: Any, wire_database: Any) -> None:
    """Four processes sweep the same due retries at once: each retry is claimed and dispatched once."""
    world = World(wire_database, outcomes={"a": "fail", "b": "fail"}, clock=VirtualClock(), timers=True)
    spec = document("race", [job("a", retry=RETRY), job("b", retry=RETRY)])
    for i in range(10):
        start_run(world.store, spec, {}, run_id=f"r-{i}")
    world.drain()  # every a and b failed attempt 1: waiting, their retries due in 10 s
    states = [(r["jobs"]["a"]["state"], r["jobs"]["b"]["state"]) for r in world.store.runs.find({})]
    assert states == [("waiting", "waiting")] * 10
    at = (world.store.now() + timedelta(seconds=10)).isoformat()

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_timer_worker.py"), wire_server.uri, wire_database.name, at],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], [r[1].decode()[-2000:] for r in results]

    dispatches = [(d["run_id"], d["job"], d["attempt"]) for d in wire_database["dispatches"].find({})]
    assert sorted(dispatches) == sorted({(f"r-{i}", j, 2) for i in range(10) for j in "ab"})
    fired = sum(json.loads(r[0].decode().splitlines()[-1])["retried"] for r in results)
    assert fired == 20  # every retry fired exactly once, whoever fired it
    for run in world.store.runs.find({}):
        assert {name: (j["state"], j["attempt"]) for name, j in run["jobs"].items()} == {
            "a": ("dispatched", 2),
            "b": ("dispatched", 2),
        }


def test_the_sqs_wake_up_fires_the_run_and_re_queues_a_far_due_time() -> None:
    """moto SQS: arm() sends a delayed message; timer_job on it fires the run, or sends it again."""
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    from flowkit.local.embedded import embedded_database

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="flowkit-timers")["QueueUrl"]
        clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
        world = World(embedded_database(), outcomes={"a": "fail"}, clock=clock, timers=True)
        world.runtime.waker = SqsWaker(url, client=sqs, clock=clock)
        start_run(world.store, document("wake", [job("a", retry=RETRY)]), {}, run_id="r")
        world.drain()  # a failed: its retry is armed 10 s ahead

        sent = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0, AttributeNames=["All"])
        assert "Messages" not in sent  # delayed by DelaySeconds=10: not visible yet
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )
        assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"

        clock.advance(10)
        record = {"body": json.dumps({"run_id": "r", "due": clock().isoformat()}), "eventSource": "aws:sqs"}
        answer = world.runtime.timer_job({"Records": [record]})
        assert answer["fired"][0]["retried"] == ["a"]
        assert world.store.get_run("r")["jobs"]["a"]["attempt"] == 2  # type: ignore[index]

        far = clock() + timedelta(hours=2)
        record = {"body": json.dumps({"run_id": "r", "due": far.isoformat()}), "eventSource": "aws:sqs"}
        assert world.runtime.timer_job({"Records": [record]})["runs"] == 0  # not due: sent again
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )
        assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "2"


def test_a_wake_up_that_is_not_one_is_ignored_and_a_schedule_event_sweeps() -> None:
    from flowkit.local.embedded import embedded_database

    world = World(embedded_database(), clock=VirtualClock(), timers=True)

    bad = world.runtime.timer_job({"Records": [{"body": "not json"}, {"body": '{"due": "x"}'}]})
    swept = world.runtime.timer_job({"source": "aws.events", "detail-type": "Scheduled Event"})

    assert (bad["runs"], swept["action"], swept["runs"]) == (0, "swept", 0)


class _Received(monitoring.CommandListener):
    """A pymongo ``CommandListener``: the BSON bytes of every reply, per command."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name != "endSessions":
            self.replies.append((event.command_name, len(bson.encode(event.reply))))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _thousand_jobs(wire_server: Any, name: str, timed: int) -> tuple[World, _Received, Any]:
    """A run of 1,000 jobs, all dispatched: ``j0000``'s attempt is due in 5 s, ``j0001``'s in 10 s,
    ``timed - 2`` others' in an hour (the rest have no timeout). Stored as the runtime leaves it (its ``timers`` map included)."""
    from flowkit.runtime.start import new_run_document

    received = _Received()
    client = wire_server.client(event_listeners=[received])
    world = World(client[name], outcomes={}, clock=VirtualClock(), timers=True)
    names = [f"j{i:04d}" for i in range(1000)]
    timeouts = {n: ((5, 10)[i] if i < 2 else 3600) for i, n in enumerate(names) if i < timed}
    jobs = [job(n, phase="all", timeout=timeouts.get(n)) for n in names]
    spec = document("wide", jobs, phases=[("all", names)])
    base = world.store.now()
    doc: Any = new_run_document(spec.model_dump(mode="json"), {}, "w", at=base)
    for n in names:
        doc["jobs"][n].update(state="dispatched", attempt=1, dispatched_at=base)
        if n in timeouts:
            due = base + timedelta(seconds=timeouts[n])
            doc["jobs"][n].update(due=due, timer="attempt")
            doc["timers"][n] = due
    doc["next_due_ms"] = epoch_ms(base + timedelta(seconds=5))
    world.store.runs.insert_one(doc)
    return world, received, client


@pytest.mark.parametrize("timed", [10, 1000])
def test_a_timer_fire_on_a_1000_job_run_reads_what_it_touches(wire_server: Any, timed: int) -> None:
    """A timer fire costs what it touches: the sweep of a 1,000-job run whose one job timed out
    receives its own fields, its ``timers`` map (one entry per job with a timer) and the one due job,
    never the jobs (a whole read of this run is over 200 KB). The configuration is read once per
    container (``RunCache``, by the first fire here); the second fire is measured: with 10 jobs with a
    timeout it is under 4 KB in all."""
    name = f"flowkit_test_{uuid.uuid4().hex[:12]}"
    world, received, client = _thousand_jobs(wire_server, name, timed)
    try:
        whole = len(bson.encode(world.store.get_run("w") or {}))
        assert whole > 200_000
        world.clock.advance(5)
        assert [f["expired"] for f in world.fire_timers()] == [["j0000"]]
        world.clock.advance(5)
        received.replies.clear()

        fired = world.fire_timers()

        # j0000's timed_out event is not recorded yet (no statemachine ran): it fires again, harmlessly
        assert [f["expired"] for f in fired] == [["j0000", "j0001"]]
        total = sum(size for _, size in received.replies)
        print(f"timed={timed}: received {total} bytes in {received.replies}; whole run {whole} bytes")
        assert total < 4096 + timed * 40, received.replies  # a map entry: 2 + 5 + 8 bytes each here
        if timed == 10:
            assert total < 4096, received.replies
        events = list(world.store.statuses.find({"run_id": "w", "status": "timed_out"}))
        assert sorted((e["job"], e["attempt"]) for e in events) == [("j0000", 1), ("j0001", 1)]
        stored = world.store.get_run("w")
        assert stored is not None
        # the next due time is the other timers' (an hour away), not the fired ones' again
        due_ms = stored.get("next_due_ms")
        if timed > 2:
            assert due_ms is not None and due_ms > epoch_ms(world.store.now() + timedelta(minutes=50))
    finally:
        client.drop_database(name)
        client.close()


def test_a_due_retry_on_a_1000_job_run_reads_what_it_touches(wire_server: Any) -> None:
    """A due retry is claimed reading back only what the new attempt's payload takes (its needs'
    outputs), never the run's jobs: a whole read of this run is over 200 KB."""
    name = f"flowkit_test_{uuid.uuid4().hex[:12]}"
    world, received, client = _thousand_jobs(wire_server, name, 10)
    try:
        base = world.store.now()
        world.store.runs.update_one(
            {"_id": "w"},
            {
                "$set": {
                    "jobs.j0000.state": "waiting",
                    "jobs.j0000.timer": "retry",
                    "jobs.j0000.due": base + timedelta(seconds=5),
                    "timers.j0000": base + timedelta(seconds=5),
                }
            },
        )
        whole = len(bson.encode(world.store.get_run("w") or {}))
        assert whole > 200_000
        fixed = world.store.read_fixed("w")
        assert fixed is not None
        world.runtime.run_cache.put(fixed)  # a warm container: the configuration is cached
        world.clock.advance(5)
        received.replies.clear()

        fired = world.fire_timers()

        assert [f["retried"] for f in fired] == [["j0000"]]
        total = sum(size for _, size in received.replies)
        print(f"retry: received {total} bytes in {received.replies}; whole run {whole} bytes")
        assert total < 4096, received.replies
        a = (world.store.get_run("w") or {})["jobs"]["j0000"]
        assert (a["state"], a["attempt"], a["timer"]) == ("dispatched", 2, "attempt")
        assert [(n, attempt) for _, n, attempt in world.dispatcher.dispatched] == [("j0000", 2)]
    finally:
        client.drop_database(name)
        client.close()


def test_a_run_started_before_the_timers_map_is_fired_on_a_whole_read(wire_server: Any) -> None:
    """A run stored by an older flowkit (no ``timers`` map, ``counters`` 3) is still fired: read whole."""
    name = f"flowkit_test_{uuid.uuid4().hex[:12]}"
    world, received, client = _thousand_jobs(wire_server, name, 10)
    try:
        world.store.runs.update_one({"_id": "w"}, {"$set": {"counters": 3}, "$unset": {"timers": ""}})
        whole = len(bson.encode(world.store.get_run("w") or {}))
        world.clock.advance(5)
        received.replies.clear()

        fired = world.fire_timers()

        assert [f["expired"] for f in fired] == [["j0000"]]
        assert max(size for _, size in received.replies) >= whole  # the whole run was read
        stored = world.store.get_run("w")
        assert stored is not None and "timers" not in stored
        assert stored["next_due_ms"] == epoch_ms(world.store.now() + timedelta(seconds=5))
    finally:
        client.drop_database(name)
        client.close()
