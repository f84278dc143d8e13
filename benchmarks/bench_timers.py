"""Timer costs: a retry's due -> dispatch delay, round trips per timer fired, the sweep with many runs.

    python benchmarks/bench_timers.py [--mongo-uri URI] [--runs 10000] [--due 10] [--retries 30]

1. Delay (local, wall clock): ``--retries`` local runs of a job that fails once with
   ``Retry(interval=0.2)``; for each, the time between the retry's due time (the ``retrying`` event's
   ``not_before``) and the dispatch of attempt 2 (the job's ``dispatched_at``). Printed: median, p90, max.
2. Round trips per timer fired: commands pymongo sends (``CommandListener``) during sweeps that fire
   retries (claim + dispatch) and timeouts (a ``timed_out`` event), over TCP.
3. Sweep cost: ``--runs`` runs stored, ``--due`` of them with a due timer; the sweep query's
   ``explain("executionStats")``: the index it uses and the documents it examines.

Without ``--mongo-uri`` an ``nx-27017 --db memory`` server is started on a free port. nx-27017 is a
stand-in: it reports the index it uses but its execution counters are not MongoDB's (it reports 0
documents examined whatever it read), so the figure is printed as not measured; run with
``--mongo-uri`` against a real MongoDB for MongoDB's ``totalDocsExamined`` (the stand-in is recognised
by ``buildInfo``'s ``process``, also when it is given as ``--mongo-uri``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))

from _harness import World, document, job
from bench_runtime import Counter, start_server

from flowkit import Retry, workflow
from flowkit import job as job_decorator
from flowkit.local.clock import VirtualClock
from flowkit.local.environment import LocalEnvironment
from flowkit.local.mocks import failure, success
from flowkit.runtime.start import start_run
from flowkit.runtime.store import epoch_ms
from flowkit.runtime.timers import as_datetime


def retry_delays(count: int) -> list[float]:
    @job_decorator(name="flaky", retry=Retry(attempts=2, interval=0.2))
    def flaky(event: Any, context: Any = None) -> Any:
        return None

    @workflow(name="delay")
    def delay() -> Any:
        return flaky

    delays = []
    with LocalEnvironment(clock="wall") as env:
        for _ in range(count):
            run = env.run(delay, mocks={"flaky": [failure("Flaky"), success(None)]}, timeout=30)
            retrying = next(e for e in run.events if e.status == "retrying")
            due = as_datetime(retrying.output["not_before"])  # type: ignore[index, call-overload]
            dispatched = run.jobs["flaky"].dispatched_at
            assert due is not None and dispatched is not None
            delays.append((dispatched - due).total_seconds())
    return delays


def round_trips(uri: str) -> tuple[float, float, int]:
    counter = Counter()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True, event_listeners=[counter])
    name = f"bench_timers_{uuid.uuid4().hex[:8]}"
    try:
        clock = VirtualClock()
        world = World(client[name], outcomes={"r": "fail", "t": "hang"}, clock=clock, timers=True)
        retry = {"max_attempts": 2, "interval_seconds": 5.0, "backoff_rate": 1.0}
        for i in range(10):
            start_run(world.store, document("rt", [job("r", retry=retry)]), {}, run_id=f"retry-{i}")
            start_run(world.store, document("to", [job("t", timeout=5)]), {}, run_id=f"timeout-{i}")
        world.drain()
        clock.advance(5)
        world.runtime.run_cache.clear()
        counter.commands.clear()
        fired = world.fire_timers()
        sweep = len(counter.commands)
        count = sum(len(f["retried"]) + len(f["expired"]) for f in fired)
        return sweep / count, sweep, count
    finally:
        client.drop_database(name)
        client.close()


def sweep_cost(uri: str, runs: int, due: int) -> dict[str, Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    name = f"bench_sweep_{uuid.uuid4().hex[:8]}"
    try:
        world = World(client[name], clock=VirtualClock(), timers=True)
        spec = document("sweep", [job("a", timeout=3600)], timeout=86400)
        base = world.store.now()
        docs = []
        from flowkit.runtime.start import new_run_document

        for i in range(runs):
            doc = new_run_document(spec, {}, f"run-{i:05d}", at=base)
            if i % (runs // due) == 0:
                doc["next_due_ms"] = epoch_ms(base - timedelta(seconds=1))  # due now
            docs.append(doc)
        for i in range(0, len(docs), 1000):
            world.store.runs.insert_many(docs[i : i + 1000])
        query = {"next_due_ms": {"$lte": epoch_ms(base)}}
        began = time.perf_counter()
        found = world.store.due_runs(base, limit=runs)
        elapsed = time.perf_counter() - began
        plan = world.store.database.command(
            {"explain": {"find": world.store.runs.name, "filter": query}, "verbosity": "executionStats"}
        )
        stats = plan.get("executionStats", {})
        return {
            "returned": len(found),
            "seconds": elapsed,
            "winning_plan": json.dumps(plan.get("queryPlanner", {}).get("winningPlan"), default=str)[:200],
            "n_returned": stats.get("nReturned"),
            "docs_examined": stats.get("totalDocsExamined"),
            "keys_examined": stats.get("totalKeysExamined"),
        }
    finally:
        client.drop_database(name)
        client.close()


def stand_in(uri: str) -> bool:
    """Whether the server at ``uri`` is the nx-27017 stand-in (its ``buildInfo`` names its process)."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        return client.admin.command("buildInfo").get("process") == "nx_27017"
    finally:
        client.close()


def examined(cost: dict[str, Any], *, real: bool) -> str:
    """What the sweep read, as MongoDB's explain says (a real MongoDB only)."""
    if not real:
        return (
            "documents examined: not measured (nx-27017's explain reports "
            f"totalDocsExamined={cost['docs_examined']} whatever it reads; use --mongo-uri with a real MongoDB)"
        )
    if cost["docs_examined"] is None:
        return "documents examined: the server's explain gave no executionStats"
    only = "only the due runs" if cost["docs_examined"] == cost["n_returned"] else "MORE than the due runs"
    return (
        f"documents examined (explain executionStats.totalDocsExamined): {cost['docs_examined']}, keys "
        f"examined {cost['keys_examined']}, returned {cost['n_returned']}: it read {only}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-uri", default=None)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=10)
    parser.add_argument("--retries", type=int, default=30)
    args = parser.parse_args(argv)

    delays = sorted(retry_delays(args.retries))
    p90 = delays[int(len(delays) * 0.9) - 1]
    print(
        f"retry due -> dispatch (local, wall clock, {len(delays)} runs): median "
        f"{statistics.median(delays) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
    )
    server = None
    uri = args.mongo_uri
    if uri is None:
        server, uri = start_server()
    try:
        per, sweep, count = round_trips(uri)
        print(
            f"round trips per timer fired: {per:.2f} ({sweep} commands for {count} timers, sweep query included)"
        )
        cost = sweep_cost(uri, args.runs, args.due)
        real = not stand_in(uri)
        kind = "MongoDB" if real else "nx-27017, a stand-in"
        print(
            f"sweep over {args.runs} runs, {args.due} due ({kind}): returned {cost['returned']} in "
            f"{cost['seconds'] * 1000:.1f} ms; plan {cost['winning_plan']}"
        )
        print(f"sweep: {examined(cost, real=real)}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
