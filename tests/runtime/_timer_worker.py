"""One process of test_timer_wire's race: its own MongoClient, sweeping the due timers at a given time.

    python _timer_worker.py MONGO_URI DATABASE ISO_TIME

Dispatches are written to the ``dispatches`` collection (so a double dispatch would show); the last
line printed is ``{"retried": <retries this process fired>}``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import pymongo
from _harness import RUNS, STATUSES

from flowkit.runtime import timers
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.store import Store


class CollectionDispatcher:
    def __init__(self, database: Any) -> None:
        self.collection = database["dispatches"]

    def dispatch(self, spec: Any, payload: dict[str, Any]) -> None:
        self.collection.insert_one({k: payload[k] for k in ("run_id", "job", "attempt")})


def main() -> int:
    uri, name, at = sys.argv[1:4]
    now = datetime.fromisoformat(at)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, tz_aware=True)
    database = client[name]
    store = Store(database, runs=RUNS, statuses=STATUSES, clock=lambda: now)
    runtime = Runtime(store, CollectionDispatcher(database))
    retried = 0
    for _ in range(3):  # sweep repeatedly: the others are sweeping the same runs meanwhile
        retried += sum(len(result["retried"]) for result in timers.sweep(runtime, now))
    print(json.dumps({"retried": retried}))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
