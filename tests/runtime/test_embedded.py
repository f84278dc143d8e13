"""The embedded database makes every collection operation atomic across threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import ReturnDocument

from flowkit.local.embedded import embedded_database

THREADS = 16


def _race(n: int, body: Callable[[int], None]) -> None:
    """Run ``body`` in ``n`` threads at once, switching threads as often as possible.

    (Without the embedded lock, plain mongomock loses about a third of the increments below.)
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _run_threads(n, body)
    finally:
        sys.setswitchinterval(interval)


def _run_threads(n: int, body: Callable[[int], None]) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            body(i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("round_", range(5))
def test_exactly_one_thread_wins_a_compare_and_set_claim(round_: int) -> None:
    runs = embedded_database()["runs"]
    runs.insert_one({"_id": "r", "jobs": {"a": {"state": "pending", "attempt": 0}}})
    winners: list[int] = []
    lock = threading.Lock()

    def claim(i: int) -> None:
        result = runs.update_one(
            {"_id": "r", "jobs.a.state": "pending", "jobs.a.attempt": 0},
            {"$set": {"jobs.a.state": "dispatched", "jobs.a.by": i}, "$inc": {"jobs.a.attempt": 1}},
        )
        if result.modified_count:
            with lock:
                winners.append(i)

    _race(THREADS, claim)

    stored = runs.find_one({"_id": "r"})["jobs"]["a"]
    assert len(winners) == 1
    assert stored == {"state": "dispatched", "attempt": 1, "by": winners[0]}


def test_find_one_and_update_claims_are_exclusive_too() -> None:
    runs = embedded_database()["runs"]
    runs.insert_many([{"_id": i, "state": "pending"} for i in range(50)])
    claimed: list[Any] = []

    def worker(i: int) -> None:
        for doc_id in range(50):
            doc = runs.find_one_and_update(
                {"_id": doc_id, "state": "pending"},
                {"$set": {"state": "taken", "by": i}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                claimed.append(doc["_id"])

    _race(8, worker)

    assert sorted(claimed) == list(range(50))


def test_counters_lose_no_increment() -> None:
    counters = embedded_database()["counters"]
    counters.insert_one({"_id": "c", "n": 0, "tags": []})

    def bump(i: int) -> None:
        for j in range(200):
            counters.update_one({"_id": "c"}, {"$inc": {"n": 1}, "$addToSet": {"tags": f"{i}-{j % 3}"}})

    _race(THREADS, bump)

    doc = counters.find_one({"_id": "c"})
    assert doc["n"] == THREADS * 200
    assert len(doc["tags"]) == THREADS * 3


def test_cursors_are_read_under_the_lock_and_support_sort() -> None:
    items = embedded_database()["items"]
    items.insert_many([{"_id": i, "v": -i} for i in range(5)])
    assert [d["_id"] for d in items.find({}).sort("v", 1)] == [4, 3, 2, 1, 0]
    assert [d["_id"] for d in items.find({"v": {"$lt": -2}})] == [3, 4]


def test_databases_are_independent() -> None:
    first, second = embedded_database("same"), embedded_database("same")
    first["c"].insert_one({"_id": 1})
    assert second["c"].find_one({"_id": 1}) is None


def test_derived_collections_stay_locked() -> None:
    from flowkit.local.embedded import _LockedCollection

    items = embedded_database()["items"]
    assert isinstance(items.with_options(), _LockedCollection)
