"""The store's atomic transitions, on the embedded database and over the wire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from _harness import RUNS, STATUSES, document, job

from flowkit.document import status_key as document_status_key
from flowkit.runtime import engine
from flowkit.runtime.start import new_run_document
from flowkit.runtime.store import Store, make_status, nested, project, status_key


@pytest.fixture
def store(any_database: Any) -> Store:
    store = Store(any_database, runs=RUNS, statuses=STATUSES)
    store.ensure_indexes()
    return store


@pytest.fixture
def run_id(store: Store) -> str:
    doc = document("wf", [job("a"), job("b", "a")])
    assert store.insert_run(new_run_document(doc, {"k": 1}, "r-1"))
    return "r-1"


def test_status_key_matches_the_document_models() -> None:
    assert status_key("r", None, 0, "started") == document_status_key("r", None, 0, "started")
    assert status_key("r", "a", 2, "failed") == document_status_key("r", "a", 2, "failed")


def test_ensure_indexes_is_idempotent_and_makes_the_status_key_unique(store: Store) -> None:
    store.ensure_indexes()
    store.ensure_indexes()
    seen: list[str] = []
    store.on_status = lambda doc: seen.append(doc["key"])

    first = store.insert_status(make_status("r", "wf", "a", 1, "success", output={"x": 1}))
    second = store.insert_status(make_status("r", "wf", "a", 1, "success", output={"x": 2}))

    assert (first, second) == (True, False)
    assert seen == ["r/a/1/success"]
    assert store.statuses.count_documents({"key": "r/a/1/success"}) == 1


def test_insert_run_refuses_a_second_run_with_the_same_id(store: Store, run_id: str) -> None:
    doc = document("wf", [job("a")])
    assert store.insert_run(new_run_document(doc, {}, run_id)) is False
    assert store.get_run(run_id)["input"] == {"k": 1}


def test_a_job_is_claimed_once(store: Store, run_id: str) -> None:
    assert store.claim(run_id, "a", 0) is True
    assert store.claim(run_id, "a", 0) is False
    job_doc = store.get_run(run_id)["jobs"]["a"]
    assert (job_doc["state"], job_doc["attempt"]) == ("dispatched", 1)


def test_claims_stop_once_the_run_ended(store: Store, run_id: str) -> None:
    assert store.end_run(run_id, "failed", phase_index=2)
    assert store.claim(run_id, "a", 0) is False
    assert store.skip(run_id, "a", 0) is None


def test_recording_an_outcome_needs_an_open_job_at_that_attempt(store: Store, run_id: str) -> None:
    assert store.record_outcome(run_id, "a", 1, state="succeeded", output={"rows": 1}) is None  # pending
    store.claim(run_id, "a", 0)
    assert store.record_outcome(run_id, "a", 2, state="succeeded") is None  # wrong attempt

    after = store.record_outcome(run_id, "a", 1, state="succeeded", output={"rows": 1, "none": None})

    assert after is not None
    assert after["jobs"]["a"]["state"] == "succeeded"
    assert after["jobs"]["a"]["output"] == {"rows": 1, "none": None}
    assert store.record_outcome(run_id, "a", 1, state="failed", error={"type": "E", "message": "m"}) is None


def test_started_moves_dispatched_to_running_once(store: Store, run_id: str) -> None:
    store.claim(run_id, "a", 0)
    header = store.mark_running(run_id, "a", 1)
    assert header is not None and header["workflow"] == "wf"
    assert store.mark_running(run_id, "a", 1) is None
    assert store.get_run(run_id)["jobs"]["a"]["state"] == "running"


def test_release_gives_a_claim_back(store: Store, run_id: str) -> None:
    store.claim(run_id, "a", 0)
    assert store.release(run_id, "a", 1) is True
    assert store.release(run_id, "a", 1) is False
    job_doc = store.get_run(run_id)["jobs"]["a"]
    assert (job_doc["state"], job_doc["attempt"]) == ("pending", 0)
    assert store.claim(run_id, "a", 0) is True


def test_the_run_ends_once(store: Store, run_id: str) -> None:
    assert store.end_run(run_id, "succeeded", phase_index=2) is True
    assert store.end_run(run_id, "failed", phase_index=2) is False
    run = store.get_run(run_id)
    assert (run["status"], run["phase"]) == ("succeeded", None)


def test_the_phase_only_moves_forward(store: Store, run_id: str) -> None:
    assert store.advance_phase(run_id, 1, "b") is True
    assert store.advance_phase(run_id, 1, "b") is False
    assert store.advance_phase(run_id, 0, "a") is False
    assert store.get_run(run_id)["phase"] == "b"


def test_read_job_projects_one_job(store: Store, run_id: str) -> None:
    header, job_doc = store.read_job(run_id, "b")
    assert header is not None and header["workflow"] == "wf"
    assert job_doc is not None and job_doc["state"] == "pending"
    assert store.read_job(run_id, "nope")[1] is None
    assert store.read_job("missing", "a") == (None, None)


def test_read_notifications(store: Store, run_id: str) -> None:
    assert store.read_notifications(run_id) == {
        "slack_channel": None,
        "on": ["run.failed", "job.failed"],
        "mention": None,
        "webhook": False,
    }
    assert store.read_notifications("missing") is None


def test_times_set_by_a_transition_read_back_as_dates(store: Store, run_id: str, request: Any) -> None:
    # MongoDB keeps a datetime written with $set on a dotted path a BSON date. The nx-27017 stand-in
    # stores it as a string: a known stand-in quirk, documented in docs/runtime.md.
    if "wire" in request.node.callspec.id and getattr(
        request.getfixturevalue("wire_server"), "stand_in", False
    ):
        pytest.xfail("nx-27017 turns a datetime written by $set on a dotted path into a string")
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    store.claim(run_id, "a", 0, at=at)
    stored = store.get_run(run_id)["jobs"]["a"]["dispatched_at"]
    assert isinstance(stored, datetime)
    assert stored.replace(tzinfo=UTC) == at


def _unique_on_key(database: Any) -> list[dict[str, Any]]:
    return [
        i for i in database[STATUSES].list_indexes() if list(dict(i["key"])) == ["key"] and i.get("unique")
    ]


def test_ensure_indexes_accepts_an_equivalent_index_made_by_hand(any_database: Any) -> None:
    any_database[STATUSES].create_index("key", unique=True)  # default name key_1
    store = Store(any_database, runs=RUNS, statuses=STATUSES)
    store.ensure_indexes()
    store.ensure_indexes()
    assert _unique_on_key(any_database)


def test_a_non_unique_status_key_index_never_stays_the_only_one(any_database: Any, request: Any) -> None:
    """MongoDB refuses the unique index next to a non-unique one (-> a clear error); mongomock adds
    it beside (uniqueness holds). nx-27017 keeps the non-unique index and reports success: a stand-in
    quirk."""
    from flowkit.errors import FlowkitError

    if "wire" in request.node.callspec.id and request.getfixturevalue("wire_server").stand_in:
        pytest.xfail("nx-27017 ignores a unique index requested on keys that already have a non-unique one")
    any_database[STATUSES].create_index("key")
    try:
        Store(any_database, runs=RUNS, statuses=STATUSES).ensure_indexes()
    except FlowkitError as exc:
        assert "non-unique index" in str(exc) and "flowkit needs it unique" in str(exc)
    else:
        assert _unique_on_key(any_database)


def test_an_outcome_moves_the_counters_of_every_dependent_in_one_update(store: Store, request: Any) -> None:
    # A fan-out of 100: the start job's outcome takes one off each of 100 dependents' unmet in the same
    # update. MongoDB applies any number of $inc paths; the nx-27017 stand-in silently drops nested ones
    # past about 60 paths in one update: a known stand-in quirk, documented in docs/runtime.md.
    if "wire" in request.node.callspec.id and getattr(
        request.getfixturevalue("wire_server"), "stand_in", False
    ):
        pytest.xfail("nx-27017 drops nested $inc paths past about 60 in one update")
    names = [f"j{i}" for i in range(100)]
    doc = document("fan", [job("start"), *(job(name, "start") for name in names)])
    run = new_run_document(doc, {}, "r-fan")
    assert store.insert_run(run)
    plan = engine.Plan.of(run["config"])
    assert store.claim("r-fan", "start", 0)
    after = store.record_outcome(
        "r-fan",
        "start",
        1,
        state="succeeded",
        inc=engine.increments(plan, "start", "succeeded"),
        version=run["version"],
        projection=project(ready=plan.dependents["start"]),
    )
    assert after is not None
    snapshot = nested(after)
    assert snapshot["remaining"] == 100
    assert engine.ready(snapshot, plan.dependents["start"]) == names
    stored = store.get_run("r-fan")
    assert stored is not None and {stored["jobs"][name]["unmet"] for name in names} == {0}
