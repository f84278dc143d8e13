"""The embedded database: MongoDB's semantics for flowkit's subset, atomic across threads.

Checked three ways: pinned behaviours of MongoDB, random operation sequences compared with
mongomock-ng (a test-only oracle), and threads racing on claims and counters.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import mongomock_ng
import pytest
from bson import ObjectId
from bson.errors import InvalidDocument
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import ReturnDocument, WriteConcern
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, WriteError

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


def test_derived_collections_share_the_data_and_the_lock() -> None:
    database = embedded_database()
    items = database["items"]
    derived = items.with_options(write_concern=WriteConcern(w=1))
    derived.insert_one({"_id": 1, "n": 0})
    assert items.find_one({"_id": 1}) == {"_id": 1, "n": 0}
    assert database.get_collection("items").count_documents({}) == 1

    def bump(i: int) -> None:
        for _ in range(100):
            (items if i % 2 else derived).update_one({"_id": 1}, {"$inc": {"n": 1}})

    _race(8, bump)
    assert items.find_one({"_id": 1})["n"] == 800


# --------------------------------------------------------------------------- MongoDB semantics


def test_datetimes_are_stored_at_millisecond_precision_and_read_back_aware_utc() -> None:
    items = embedded_database()["items"]
    naive = datetime(2026, 11, 28, 1, 2, 3, 456789)
    paris = datetime(2026, 11, 28, 2, 2, 3, 999999, tzinfo=timezone(timedelta(hours=1)))
    items.insert_one({"_id": 1, "naive": naive, "paris": paris})
    items.update_one({"_id": 1}, {"$set": {"later.at": naive}})

    doc = items.find_one({"_id": 1})

    assert doc["naive"] == datetime(2026, 11, 28, 1, 2, 3, 456000, tzinfo=UTC)
    assert doc["paris"] == datetime(2026, 11, 28, 1, 2, 3, 999000, tzinfo=UTC)
    assert doc["paris"].utcoffset() == timedelta(0)
    assert doc["later"]["at"] == doc["naive"]
    assert items.count_documents({"naive": naive}) == 1  # the filter value is cut the same way


def test_booleans_are_not_numbers_and_documents_compare_in_field_order() -> None:
    items = embedded_database()["items"]
    items.insert_many([{"_id": 1, "flag": True, "sub": {"a": 1, "b": 2}}, {"_id": 2, "flag": 1}])

    assert [d["_id"] for d in items.find({"flag": True})] == [1]
    assert [d["_id"] for d in items.find({"flag": 1.0})] == [2]
    assert items.count_documents({"sub": {"a": 1, "b": 2}}) == 1
    assert items.count_documents({"sub": {"b": 2, "a": 1}}) == 0


def test_null_matches_a_path_that_leads_through_a_scalar() -> None:
    items = embedded_database()["items"]
    items.insert_many([{"_id": 1, "a": 5}, {"_id": 2, "a": {"b": None}}, {"_id": 3, "a": {"b": 1}}])

    assert [d["_id"] for d in items.find({"a.b": None})] == [1, 2]
    assert [d["_id"] for d in items.find({"a.b": {"$ne": None}})] == [3]
    assert [d["_id"] for d in items.find({"a.b": {"$exists": False}})] == [1]


def test_changing_a_value_to_an_equal_value_of_another_type_modifies_the_document() -> None:
    items = embedded_database()["items"]
    items.insert_one({"_id": 1, "n": 1})

    same = items.update_one({"_id": 1}, {"$set": {"n": 1}})
    other_type = items.update_one({"_id": 1}, {"$set": {"n": 1.0}})

    assert (same.matched_count, same.modified_count) == (1, 0)
    assert (other_type.matched_count, other_type.modified_count) == (1, 1)
    assert type(items.find_one({"_id": 1})["n"]) is float


def test_a_failing_update_changes_nothing() -> None:
    items = embedded_database()["items"]
    items.insert_one({"_id": 1, "a": {"b": "text"}, "n": 1})

    with pytest.raises(WriteError, match="non-numeric") as failed:
        items.update_one({"_id": 1}, {"$set": {"x.y": 1, "n": 5}, "$inc": {"a.b": 1}})
    with pytest.raises(WriteError, match="Cannot create field 'c'") as through_a_string:
        items.update_one({"_id": 1}, {"$set": {"n": 6, "a.b.c": 1}})

    assert failed.value.code == 14 and through_a_string.value.code == 28
    assert items.find_one({"_id": 1}) == {"_id": 1, "a": {"b": "text"}, "n": 1}


def test_an_update_that_breaks_a_unique_index_is_undone_whole() -> None:
    items = embedded_database()["items"]
    items.create_index([("k.x", 1), ("k.y", 1)], unique=True)
    items.insert_many([{"_id": 1, "k": {"x": 1, "y": 1}}, {"_id": 2, "k": {"x": 1, "y": 2}, "tags": []}])

    with pytest.raises(DuplicateKeyError) as duplicate:
        items.update_one({"_id": 2}, {"$set": {"k.y": 1, "new.field": 1}, "$push": {"tags": "t"}})

    assert items.find_one({"_id": 2}) == {"_id": 2, "k": {"x": 1, "y": 2}, "tags": []}
    assert duplicate.value.code == 11000
    assert duplicate.value.details is not None
    assert duplicate.value.details["keyPattern"] == {"k.x": 1, "k.y": 1}
    assert duplicate.value.details["keyValue"] == {"k.x": 1, "k.y": 1}
    assert "index: k.x_1_k.y_1 dup key: { k.x: 1, k.y: 1 }" in str(duplicate.value)
    items.update_one({"_id": 2}, {"$set": {"k.y": 3}})  # the old key is free again, the new one taken
    items.insert_one({"_id": 3, "k": {"x": 1, "y": 2}})
    with pytest.raises(DuplicateKeyError):
        items.insert_one({"_id": 4, "k": {"x": 1, "y": 3}})


def test_a_duplicate_id_names_the_id_index_and_inserts_nothing() -> None:
    items = embedded_database("db")["items"]
    items.insert_one({"_id": "r"})

    with pytest.raises(DuplicateKeyError) as duplicate:
        items.insert_one({"_id": "r", "other": 1})

    assert str(duplicate.value).startswith(
        'E11000 duplicate key error collection: db.items index: _id_ dup key: { _id: "r" }'
    )
    assert items.find_one({"_id": "r"}) == {"_id": "r"}


def test_insert_adds_an_object_id_to_the_callers_document_and_keeps_no_alias() -> None:
    items = embedded_database()["items"]
    doc: dict[str, Any] = {"nested": {"list": [1]}}

    result = items.insert_one(doc)
    doc["nested"]["list"].append(2)
    read = items.find_one({"_id": result.inserted_id})
    read["nested"]["list"].append(3)

    assert isinstance(doc["_id"], ObjectId) and result.inserted_id == doc["_id"]
    assert items.find_one({})["nested"] == {"list": [1]}


def test_projections_copy_only_what_they_return() -> None:
    runs = embedded_database()["runs"]
    runs.insert_one(
        {"_id": "r", "workflow": "wf", "config": {"big": list(range(5))}, "jobs": {"a": {"s": 1}, "b": {}}}
    )

    assert runs.find_one({"_id": "r"}, {"config": 0}) == {
        "_id": "r",
        "workflow": "wf",
        "jobs": {"a": {"s": 1}, "b": {}},
    }
    assert runs.find_one({"_id": "r"}, {"jobs.a": 1, "_id": 0}) == {"jobs": {"a": {"s": 1}}}
    assert runs.find_one({"_id": "r"}, {"jobs.a.s": 0, "config": False}) == {
        "_id": "r",
        "workflow": "wf",
        "jobs": {"a": {}, "b": {}},
    }
    assert runs.find_one({"_id": "r"}, ["workflow"]) == {"_id": "r", "workflow": "wf"}
    assert runs.find_one({"_id": "r"}, {"workflow.x": 1}) == {"_id": "r"}  # a scalar has no field x
    assert runs.find_one({"_id": "r"}, {"workflow.x": 0, "jobs": 0, "config": 0}) == {
        "_id": "r",
        "workflow": "wf",
    }
    with pytest.raises(OperationFailure, match="exclusion on field config in inclusion"):
        runs.find_one({}, {"workflow": 1, "config": 0})
    with pytest.raises(OperationFailure, match="Path collision"):
        runs.find_one({}, {"jobs": 1, "jobs.a": 1})


def test_index_creation_follows_mongodb_conflict_rules() -> None:
    statuses = embedded_database()["statuses"]
    assert statuses.create_index("key", unique=True) == "key_1"
    assert statuses.create_index([("key", 1)], unique=True) == "key_1"  # the same index again

    with pytest.raises(OperationFailure) as other_name:
        statuses.create_index([("key", 1)], unique=True, name="flowkit_status_key")
    with pytest.raises(OperationFailure) as other_keys:
        statuses.create_index([("run", 1)], name="key_1")

    assert other_name.value.code == 85 and other_keys.value.code == 86
    assert [(i["name"], i["key"], i.get("unique", False)) for i in statuses.list_indexes()] == [
        ("_id_", {"_id": 1}, False),
        ("key_1", {"key": 1}, True),
    ]
    statuses.insert_many([{"run": 1, "key": "a"}, {"run": 1, "key": "b"}])
    with pytest.raises(DuplicateKeyError):
        statuses.create_index("run", unique=True)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda c: c.find_one({"a": {"$regex": "x"}}), r"\$regex"),
        (lambda c: c.find_one({"$or": [{"a": 1}]}), r"\$or"),
        (lambda c: c.update_one({}, {"$mul": {"a": 2}}), r"\$mul"),
        (lambda c: c.update_one({}, {"$push": {"a": {"$each": [1]}}}), r"\$each"),
        (lambda c: c.update_one({}, {"$set": {"a": 1}}, upsert=True), "upsert"),
        (lambda c: c.find_one({}, {"a": {"$slice": 1}}), r"\$slice"),
        (lambda c: c.find_one({"list.x": 1}), "through an array"),
        (lambda c: c.update_one({}, {"$set": {"list.0": 2}}), "through an array"),
        (lambda c: c.find_one_and_update({}, {"$set": {"a": 1}}, sort=[("a", 1)]), "sort"),
    ],
)
def test_anything_outside_the_subset_is_refused_by_name(call: Callable[[Any], Any], named: str) -> None:
    items = embedded_database()["items"]
    items.insert_one({"_id": 1, "a": 1, "list": [{"x": 1}]})

    with pytest.raises(NotImplementedError, match=named):
        call(items)
    assert items.find_one({}) == {"_id": 1, "a": 1, "list": [{"x": 1}]}


def test_bad_documents_and_updates_are_refused_with_pymongos_errors() -> None:
    items = embedded_database()["items"]
    with pytest.raises(InvalidDocument, match="cannot encode object"):
        items.insert_one({"_id": 1, "s": {1, 2}})
    with pytest.raises(InvalidDocument, match="string keys"):
        items.insert_one({"_id": 1, "d": {1: "x"}})
    with pytest.raises(ValueError, match=r"update only works with \$ operators"):
        items.update_one({}, {"a": 1})
    with pytest.raises(WriteError, match="immutable field '_id'"):
        items.insert_one({"_id": 1}) and items.update_one({"_id": 1}, {"$set": {"_id": 2}})
    assert items.find_one({}) == {"_id": 1}


# --------------------------------------------------------------------------- against mongomock

# Generated values leave out booleans and floats on purpose: mongomock treats ``True == 1`` in
# filters and counts ``$set`` of ``1.0`` over ``1`` as no modification, where MongoDB does neither
# (both are pinned above). Paths and values come from tiny alphabets so that operations collide.
_FIELDS = ("a", "b", "c")
_paths = st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3).map(".".join)
_scalars = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from(["x", "y"]),
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 1, 2)),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.dictionaries(st.sampled_from(_FIELDS), inner, max_size=3) | st.lists(inner, max_size=2),
    max_leaves=6,
)
_ids = st.integers(0, 3)
_docs = st.builds(
    lambda i, rest: {"_id": i, **rest}, _ids, st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=3)
)
_conditions = st.one_of(
    _scalars,
    st.builds(lambda v: {"$in": v}, st.lists(_scalars, max_size=3)),
    st.builds(lambda v: {"$ne": v}, _scalars),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
    st.builds(lambda v: {"$lt": v}, st.integers(-3, 3)),
    st.builds(lambda v: {"$gte": v}, st.integers(-3, 3)),
)


def _null_test(condition: Any) -> bool:
    if not isinstance(condition, dict):
        return condition is None
    arguments = [
        *condition.values(),
        *(v for arg in condition.values() if isinstance(arg, list) for v in arg),
    ]
    return None in arguments


# Null tests stay on top-level fields: on ``{"a": 5}`` MongoDB matches ``{"a.b": None}`` (a.b is
# missing) and mongomock does not (pinned below instead).
_field_filters = st.dictionaries(_paths, _conditions, max_size=2).map(
    lambda f: {k: v for k, v in f.items() if "." not in k or not _null_test(v)}
)
# Biased towards filters that match something: everything, one _id, an _id and a condition (a claim).
_filters = st.one_of(
    st.just({}),
    st.builds(lambda i: {"_id": i}, _ids),
    st.builds(lambda i, f: {"_id": i, **f}, _ids, _field_filters),
    _field_filters,
)
_updates = st.one_of(
    st.builds(lambda p, v: {"$set": {p: v}}, _paths, _values),
    st.builds(lambda p, v: {"$inc": {p: v}}, _paths, st.integers(-2, 2)),
    # the timers' lower bound (next_due_ms): $min / $max on numbers, on missing fields too
    st.builds(lambda op, p, v: {op: {p: v}}, st.sampled_from(["$min", "$max"]), _paths, st.integers(-2, 2)),
    st.builds(
        lambda p: {"$set": {f"{p}.state": "dispatched"}, "$inc": {f"{p}.attempt": 1}}, _paths
    ),  # a claim
    st.dictionaries(
        st.sampled_from(["$set", "$inc", "$addToSet", "$push"]),
        st.dictionaries(_paths, _values, min_size=1, max_size=2),
        min_size=1,
        max_size=2,
    ),
).map(
    lambda u: {
        op: {p: (v if isinstance(v, int) else 1) for p, v in f.items()} if op == "$inc" else f
        for op, f in u.items()
    }
)
_projections = st.one_of(
    st.none(),
    st.dictionaries(_paths, st.just(1), min_size=1, max_size=2),
    # mongomock drops a scalar ``a`` when excluding ``a.b`` (MongoDB keeps it: pinned above), so
    # the exclusions compared here are of whole top-level fields
    st.dictionaries(st.sampled_from(_FIELDS), st.just(0), min_size=1, max_size=2),
).flatmap(lambda p: st.one_of(st.just(p), st.just({**(p or {}), "_id": 0})))
_operations = st.one_of(
    st.tuples(st.just("insert_one"), _docs),
    st.tuples(st.just("find_one"), _filters, _projections),
    st.tuples(st.just("count_documents"), _filters),
    st.tuples(st.just("update_one"), _filters, _updates),
    st.tuples(st.just("update_many"), _filters, _updates),
    st.tuples(
        st.just("find_one_and_update"),
        _filters,
        _updates,
        _projections,
        st.sampled_from([ReturnDocument.BEFORE, ReturnDocument.AFTER]),
    ),
    st.tuples(st.just("delete_one"), _filters),
)


def _call(collection: Any, operation: tuple[Any, ...]) -> Any:
    name, *args = operation
    if name == "find_one_and_update":
        spec, update, projection, when = args
        return collection.find_one_and_update(spec, update, projection=projection, return_document=when)
    if name == "update_many" and isinstance(collection, mongomock_ng.Collection):
        # mongomock's update_many shares one $set value between the documents it updates (a later
        # update of one changes the others): on the oracle, update them one by one instead.
        spec, update = args
        results = [
            collection.update_one({"_id": doc["_id"]}, copy.deepcopy(update))
            for doc in collection.find(copy.deepcopy(spec))
        ]
        return (len(results), sum(r.modified_count for r in results))
    result = getattr(collection, name)(*copy.deepcopy(args))
    if name in ("update_one", "update_many"):
        return (result.matched_count, result.modified_count)
    if name == "delete_one":
        return result.deleted_count
    if name == "insert_one":
        return result.inserted_id
    return result


def _outcome(collection: Any, operation: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", _call(collection, operation)
    except (DuplicateKeyError, WriteError, OperationFailure, NotImplementedError) as exc:
        return type(exc).__name__, getattr(exc, "code", None)


# What the embedded store refuses where mongomock does something else (often a Python error):
# operations outside the subset (paths through arrays), updates MongoDB refuses (a path through a
# scalar, ``$inc`` / ``$push`` on the wrong type: WriteError), projection path collisions (31250).
_MONGODB_ONLY = {("NotImplementedError", None), ("WriteError", 2), ("WriteError", 14), ("WriteError", 28)}
_MONGODB_ONLY |= {("OperationFailure", 31250), ("WriteError", 40)}  # 40: conflicting update paths


def _resync(oracle: Any, ours: Any) -> None:
    oracle.delete_many({})
    for doc in ours.find({}):
        oracle.insert_one(doc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_docs, max_size=4), st.lists(_operations, max_size=10), st.booleans())
def test_same_results_and_documents_as_mongomock(
    initial: list[dict[str, Any]], operations: list[tuple[Any, ...]], indexed: bool
) -> None:
    ours = embedded_database()["items"]
    oracle = mongomock_ng.MongoClient(tz_aware=True)["flowkit"]["items"]
    if indexed:  # a compound unique index on dotted paths (missing fields count as null)
        for collection in (ours, oracle):
            collection.create_index([("a.b", 1), ("c", 1)], unique=True)

    for operation in [("insert_one", doc) for doc in initial] + operations:
        mine = _outcome(ours, operation)
        if mine[0] != "ok" and mine in _MONGODB_ONLY:
            # The store followed MongoDB; let mongomock do what it does, then copy the store's state.
            with contextlib.suppress(Exception):  # mongomock's own failure modes do not matter here
                _call(oracle, operation)
            _resync(oracle, ours)
            continue
        try:
            theirs = _outcome(oracle, operation)
        except (AttributeError, TypeError):
            # mongomock crashes on some data MongoDB handles (a dotted projection over an array that
            # holds null, even in a document find_one does not return): no verdict, resynchronise.
            _resync(oracle, ours)
            continue
        assert mine == theirs, operation

    assert list(ours.find({})) == list(oracle.find({}))


def test_insert_many_stops_at_the_first_duplicate_like_an_ordered_bulk_write() -> None:
    items = embedded_database()["items"]

    with pytest.raises(BulkWriteError) as failed:
        items.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}])
    with pytest.raises(TypeError, match="non-empty"):
        items.insert_many([])

    assert failed.value.details["nInserted"] == 2
    assert failed.value.details["writeErrors"][0]["index"] == 2
    assert [d["_id"] for d in items.find({})] == [1, 2]


@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=40),
        st.binary(max_size=40),
        st.datetimes(timezones=st.just(UTC)),
        st.builds(ObjectId),
        # bounded: Decimal128 holds 34 digits and raises decimal.Inexact beyond them
        st.decimals(min_value=-(10**20), max_value=10**20, places=4).map(
            lambda d: __import__("bson").decimal128.Decimal128(d)
        ),
        st.dictionaries(
            st.text(max_size=5).filter(lambda key: "\x00" not in key),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            max_size=3,
        ),
        st.lists(st.text(max_size=5), max_size=3),
    )
)
def test_the_update_size_bound_is_never_below_the_bson_size(value: Any) -> None:
    # An update grows the stored size bound by this much per value written (the document is encoded
    # again only near 16 MB), so it must never be smaller than what BSON takes.
    import bson

    from flowkit.local._memory.collection import _size_bound

    stored = value if isinstance(value, dict) else {"": value}
    assert _size_bound(value) >= len(bson.encode(stored))


@pytest.mark.parametrize(
    "value",
    [
        {"a": "é", "b": [1, (2, 3)], "c": {"d": datetime(2026, 1, 1, 0, 0, 0, 123456)}},
        {"when": datetime(2026, 1, 1, 3, 0, 0, 999999, tzinfo=timezone(timedelta(hours=3)))},
        {"big": 2**63 - 1, "small": -(2**63), "f": 1.5, "t": True, "n": None},
    ],
)
def test_values_are_stored_as_a_bson_round_trip_reads_them(value: dict[str, Any]) -> None:
    import bson
    from bson.codec_options import CodecOptions

    from flowkit.local._memory.values import to_bson

    expected = bson.decode(bson.encode(value), CodecOptions(tz_aware=True))
    assert to_bson(value) == expected
    assert repr(to_bson(value)) == repr(expected)


def test_the_smallest_document_nested_too_deep_is_refused_and_one_level_less_is_stored() -> None:
    # Nesting is only walked for documents over 700 bytes: 101 levels take at least 707.
    import bson

    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {"": None}
        for _ in range(levels - 1):
            value = {"": value}
        return value

    runs = embedded_database("nesting")["runs"]
    deepest_allowed, too_deep = nested(99), nested(100)  # plus the document holding them and its _id
    runs.insert_one({"_id": 1, "v": deepest_allowed})
    with pytest.raises(WriteError, match="exceeds 100 levels of nesting"):
        runs.insert_one({"_id": 2, "v": too_deep})
    assert len(bson.encode({"_id": 2, "v": too_deep})) > 700
    assert runs.count_documents({}) == 1
