"""Outputs and errors too big to keep inline live in the results collection, read back where needed.

Store level on the embedded database and over the wire (``any_database``); handler level through the
real handlers, store and Reporter (``World``) on both decision paths (counters, whole documents).
"""

from __future__ import annotations

from typing import Any

import bson
import pytest
from _harness import RUNS, STATUSES, World, document, job, output_gt

from flowkit.errors import RejectedReport, RunError
from flowkit.runtime.control import redrive_run
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.report import Reporter
from flowkit.runtime.results import bson_size
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store
from flowkit.vocab import INLINE_LIMIT, OUTPUT_LIMIT

BIG = {"rows": 5, "blob": "b" * 16_000}  # 16 KB: a modest output, far over the inline size
SMALL = {"rows": 5}


@pytest.fixture(params=["counted", "whole"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The handler tests on both decision paths: counters, and whole run documents."""
    if request.param == "whole":
        monkeypatch.setattr(Runtime, "_counted", lambda self, run_id: None)
    return str(request.param)


def _store(database: Any) -> Store:
    store = Store(database, runs=RUNS, statuses=STATUSES)
    store.ensure_indexes()
    return store


def _started(store: Store, *names: str) -> None:
    doc = document("wf", [job(name) for name in names], phases=[("all", list(names))])
    start_run(store, doc, {}, run_id="r")
    for name in names:
        assert store.claim("r", name, 0)


# ---------------------------------------------------------------------- the store


def test_a_small_output_stays_inline_and_a_big_one_goes_to_the_results(any_database: Any) -> None:
    store = _store(any_database)
    _started(store, "small", "big")
    assert store.record_outcome("r", "small", 1, state="succeeded", output=SMALL) is not None
    assert store.record_outcome("r", "big", 1, state="succeeded", output=BIG) is not None
    run = store.get_run("r")
    assert run is not None
    assert run["jobs"]["small"]["output"] == SMALL and run["jobs"]["small"].get("output_ref") is None
    ref = run["jobs"]["big"]["output_ref"]
    assert run["jobs"]["big"]["output"] is None and ref.startswith("1/output/")
    [result] = list(store.results.find({}))
    assert result["_id"] == f"r/big/{ref}"
    assert (result["run_id"], result["job"], result["attempt"], result["kind"]) == ("r", "big", 1, "output")
    assert result["bytes"] == bson_size(BIG) and result["value"] == BIG
    assert len(bson.encode(run)) < 10_000  # the 16 KB stayed out of the run document
    resolved = store.resolve_run(run)
    assert resolved["jobs"]["big"]["output"] == BIG and resolved["jobs"]["small"]["output"] == SMALL
    assert store.get_run("r")["jobs"]["big"]["output"] is None  # resolving never writes


def test_the_inline_limit_is_measured_in_bson_bytes(database: Any) -> None:
    store = _store(database)
    _started(store, "at", "over")
    at_limit = {"s": ""}
    at_limit["s"] = "x" * (INLINE_LIMIT - bson_size(at_limit))
    over = {"s": at_limit["s"] + "x"}
    assert bson_size(at_limit) == INLINE_LIMIT
    store.record_outcome("r", "at", 1, state="succeeded", output=at_limit)
    store.record_outcome("r", "over", 1, state="succeeded", output=over)
    run = store.get_run("r")
    assert run["jobs"]["at"]["output"] == at_limit
    assert run["jobs"]["over"]["output"] is None and run["jobs"]["over"]["output_ref"]


def test_a_big_error_and_its_attempt_history_reference_the_same_result(any_database: Any) -> None:
    store = _store(any_database)
    _started(store, "a")
    error = {"type": "ValueError", "message": "m" * 2000}
    store.record_outcome("r", "a", 1, state="failed", error=error)
    run = store.get_run("r")
    entry = run["jobs"]["a"]
    assert entry["error"] is None and entry["attempts"]["1"]["error"] is None
    assert entry["error_ref"] == entry["attempts"]["1"]["error_ref"]
    assert store.results.count_documents({}) == 1
    resolved = store.resolve_run(run)["jobs"]["a"]
    assert resolved["error"] == error and resolved["attempts"]["1"]["error"] == error


def test_a_repeated_delivery_of_a_big_outcome_writes_one_result(any_database: Any) -> None:
    store = _store(any_database)
    _started(store, "a")
    assert store.record_outcome("r", "a", 1, state="succeeded", output=BIG) is not None
    # the same outcome again (the other handler, a duplicate delivery): the compare-and-set misses
    assert store.record_outcome("r", "a", 1, state="succeeded", output=BIG) is None
    assert store.results.count_documents({}) == 1
    assert store.resolve_run(store.get_run("r"))["jobs"]["a"]["output"] == BIG


def test_an_outcome_that_loses_its_compare_and_set_leaves_an_orphan_nobody_reads(any_database: Any) -> None:
    """A failed and a different success race for one attempt: the run references the winner only;
    the loser's result stays, unreferenced (harmless); a stale attempt's result likewise."""
    store = _store(any_database)
    _started(store, "a")
    error = {"type": "Timeout", "message": "t" * 1000}
    assert store.record_outcome("r", "a", 1, state="failed", error=error) is not None
    assert store.record_outcome("r", "a", 1, state="succeeded", output=BIG) is None
    assert store.record_outcome("r", "a", 7, state="succeeded", output={"stale": "s" * 1000}) is None
    run = store.get_run("r")
    assert run["jobs"]["a"]["state"] == "failed" and run["jobs"]["a"].get("output_ref") is None
    assert store.resolve_run(run)["jobs"]["a"]["error"] == error
    kinds = sorted((doc["kind"], doc["attempt"]) for doc in store.results.find({"run_id": "r"}))
    assert kinds == [("error", 1), ("output", 1), ("output", 7)]  # two orphans


def test_a_referenced_result_that_was_deleted_is_a_clear_error(database: Any) -> None:
    store = _store(database)
    _started(store, "a")
    store.record_outcome("r", "a", 1, state="succeeded", output=BIG)
    store.results.delete_many({})
    with pytest.raises(
        RunError, match=r"run 'r': 1 referenced output\(s\)/error\(s\) missing .*'r/a/1/output/"
    ):
        store.resolve_run(store.get_run("r"))


def test_ensure_indexes_indexes_the_results_by_run(any_database: Any) -> None:
    store = _store(any_database)
    store.ensure_indexes()  # twice: idempotent
    keys = [dict(info["key"]) for info in store.results.list_indexes()]  # nx-27017 renames indexes
    assert {"run_id": 1} in keys


# ---------------------------------------------------------------------- the handlers


def test_a_dependent_receives_a_big_output_in_its_payload(database: Any, path: str) -> None:
    world = World(database, outputs={"a": BIG, "b": SMALL})
    start_run(world.store, document("wf", [job("a"), job("b", "a"), job("c", "a", "b")]), {}, run_id="r")
    world.drain()
    payloads = {p["job"]: p for p in world.dispatcher.payloads}
    assert payloads["b"]["needs"] == {"a": BIG}
    assert payloads["c"]["needs"] == {"a": BIG, "b": SMALL}
    run = world.store.get_run("r")
    assert run["status"] == "succeeded" and run["jobs"]["a"]["output"] is None


@pytest.mark.parametrize(("rows", "state"), [(5, "succeeded"), (0, "skipped")])
def test_a_condition_reads_a_big_output(database: Any, path: str, rows: int, state: str) -> None:
    world = World(database, outputs={"a": {**BIG, "rows": rows}})
    doc = document("wf", [job("a"), job("b", "a", condition=output_gt("a", "rows", 0)), job("c", "b")])
    start_run(world.store, doc, {}, run_id="r")
    world.drain()
    run = world.store.get_run("r")
    assert run["status"] == "succeeded"
    assert run["jobs"]["b"]["state"] == state
    assert world.runtime.rejections == {}


def test_a_condition_reads_a_big_error(database: Any, path: str) -> None:
    """``when(charge.error_type == "CardDeclined")`` on an error whose message is far over the inline size."""
    world = World(database, outcomes={"charge": "fail"}, error_types={"charge": "CardDeclined"})
    declined = {"op": "eq", "args": [{"ref": ["jobs", "charge", "error", "type"]}, {"const": "CardDeclined"}]}
    doc = document(
        "pay",
        [
            job("charge", failure_handled=True),
            job("apologise", "charge", condition=declined),
        ],
    )
    long = "the card was declined: " + "d" * 3000
    original = world.reporter.failed

    def failed(run_id: str, name: str, attempt: int, error_type: str, message: str) -> bool:
        return original(run_id, name, attempt, error_type, long)

    world.reporter.failed = failed  # type: ignore[method-assign]
    start_run(world.store, doc, {}, run_id="r")
    world.drain()
    run = world.store.get_run("r")
    assert run["jobs"]["charge"]["error"] is None and run["jobs"]["charge"]["error_ref"]
    assert run["jobs"]["apologise"]["state"] == "succeeded"
    assert run["status"] == "succeeded"
    assert world.store.resolve_run(run)["jobs"]["charge"]["error"]["message"] == long


def test_a_redrive_keeps_the_big_outputs_of_succeeded_jobs(database: Any, path: str) -> None:
    world = World(database, outputs={"a": BIG}, outcomes={"b": ["fail", "success"]})
    start_run(world.store, document("wf", [job("a"), job("b", "a")]), {}, run_id="r")
    world.drain()
    assert world.store.get_run("r")["status"] == "failed"
    ref = world.store.get_run("r")["jobs"]["a"]["output_ref"]
    redrive_run(world.store, "r")
    world.drain()
    run = world.store.get_run("r")
    assert run["status"] == "succeeded" and run["jobs"]["a"]["output_ref"] == ref
    assert [p["needs"] for p in world.dispatcher.payloads if p["job"] == "b"] == [{"a": BIG}, {"a": BIG}]


# ---------------------------------------------------------------------- the per-output limit


def test_the_reporter_refuses_an_output_over_the_limit_naming_job_and_size(database: Any) -> None:
    store = _store(database)
    _started(store, "a")
    store.mark_running("r", "a", 1)
    too_big = {"blob": "x" * OUTPUT_LIMIT}
    with pytest.raises(RejectedReport) as caught:
        Reporter(store).succeeded("r", "a", 1, too_big)
    assert caught.value.message == (
        f"the output of job 'a' is {bson_size(too_big)} bytes (BSON), over the limit of {OUTPUT_LIMIT} bytes "
        "(240 KiB) for one output; store large data elsewhere (e.g. S3) and return a reference (run 'r')"
    )
    assert store.statuses.find_one({"key": "r/a/1/success"}) is None


def test_an_output_just_under_the_limit_is_accepted_and_stored_in_the_results(database: Any) -> None:
    store = _store(database)
    _started(store, "a")
    store.mark_running("r", "a", 1)
    fits = {"blob": ""}
    fits["blob"] = "x" * (OUTPUT_LIMIT - bson_size(fits) - 4096)  # room for the event's own fields
    assert Reporter(store).succeeded("r", "a", 1, fits) is True


def test_a_success_event_over_the_output_limit_from_elsewhere_fails_the_job(database: Any, path: str) -> None:
    """Status documents inserted by other code are checked by the handlers too: InvalidOutput."""
    world = World(database)
    start_run(world.store, document("wf", [job("a"), job("b", "a")]), {}, run_id="r")
    world.deliver(world.deliveries.pop(0))
    run_id, name, attempt = world.take_job()
    world.reporter.started(run_id, name, attempt)
    from flowkit.runtime.store import make_status

    too_big = {"blob": "y" * (OUTPUT_LIMIT + 10)}
    world.store.insert_status(make_status("r", "wf", "a", 1, "success", output=too_big))
    world.drain()
    run = world.store.resolve_run(world.store.get_run("r"))
    assert run["status"] == "failed"
    error = run["jobs"]["a"]["error"]
    assert error["type"] == "InvalidOutput"
    assert error["message"].startswith(f"the output of job 'a' is {bson_size(too_big)} bytes (BSON), over")
    assert world.store.statuses.find_one({"key": "r/a/1/failed"})["error"]["type"] == "InvalidOutput"
