"""One OS process of the multi-process order test: a "Lambda container" with its own MongoClient.

    python _worker.py URI DATABASE FAILING_JOB INDEX

Takes work from the ``work_queue`` collection until the run has ended and the queue stayed empty for
a second: ``deliver`` items go to a handler (the envelope is rebuilt from the stored status), ``job``
items are a dispatched job reporting. Every status insert enqueues each routed delivery twice
(at-least-once delivery); every dispatch is logged in ``dispatches``. Prints the number of items done.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from _harness import RUNS, STATUSES, routes
from pymongo import MongoClient

from flowkit.runtime.events import to_envelope
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.report import Reporter
from flowkit.runtime.store import Store


def main(uri: str, name: str, failing: str, index: str) -> int:
    rng = random.Random(int(index))
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    database = client[name]
    queue, log = database["work_queue"], database["dispatches"]

    def on_status(doc: dict[str, Any]) -> None:
        for handler in routes(doc):
            queue.insert_many(
                [
                    {"kind": "deliver", "handler": handler, "key": doc["key"], "r": rng.random()}
                    for _ in range(2)
                ]
            )

    class QueueDispatcher:
        def dispatch(self, spec: Any, payload: dict[str, Any]) -> None:
            log.insert_one(
                {
                    "run_id": payload["run_id"],
                    "job": payload["job"],
                    "attempt": payload["attempt"],
                    "by": index,
                }
            )
            queue.insert_one(
                {
                    "kind": "job",
                    "job": payload["job"],
                    "attempt": payload["attempt"],
                    "run_id": payload["run_id"],
                    "r": rng.random(),
                }
            )

    store = Store(database, runs=RUNS, statuses=STATUSES, on_status=on_status)
    runtime = Runtime(store, QueueDispatcher())
    reporter = Reporter(store)
    handlers = {"statemachine": runtime.statemachine_job, "orchestrator": runtime.orchestrator_job}
    done, idle_since, deadline = 0, None, time.monotonic() + 90
    while time.monotonic() < deadline:
        item = queue.find_one_and_delete({"r": {"$gte": rng.random()}}) or queue.find_one_and_delete({})
        if item is None:
            run = store.runs.find_one({}, {"status": 1})
            if run is not None and run["status"] != "running":
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 1.0:
                    print("done", done)
                    return 0
            time.sleep(0.01)
            continue
        idle_since = None
        if item["kind"] == "deliver":
            status = store.statuses.find_one({"key": item["key"]})
            status.pop("_id")
            handlers[item["handler"]](to_envelope(status, database=name, collection=STATUSES), None)
        else:
            run_id, job, attempt = item["run_id"], item["job"], item["attempt"]
            reporter.started(run_id, job, attempt)
            if job == failing:
                reporter.failed(run_id, job, attempt, "ValueError", f"{job} broke")
            else:
                reporter.succeeded(run_id, job, attempt, {"job": job})
        done += 1
    print("timed out", done, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
