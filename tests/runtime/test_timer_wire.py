"""Timers over the wire (nx-27017, or a real MongoDB via FLOWKIT_TEST_MONGO_URI) and the SQS wake-up (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _harness import World, document, job

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
