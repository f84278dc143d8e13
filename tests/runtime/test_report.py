"""Job-side reporting: the Reporter and the @reported Lambda decorator."""

from __future__ import annotations

from typing import Any

import pytest
from _harness import RUNS, STATUSES, document, job

from flowkit.errors import RejectedReport, UnknownRun
from flowkit.runtime.report import Reporter, reported
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store

DOC = document("wf", [job("a"), job("b", "a")])


@pytest.fixture
def store(any_database: Any) -> Store:
    store = Store(any_database, runs=RUNS, statuses=STATUSES)
    store.ensure_indexes()
    start_run(store, DOC, {}, run_id="r-1")
    store.claim("r-1", "a", 0)  # as the orchestrator would
    return store


def keys(store: Store) -> list[str]:
    return sorted(doc["key"] for doc in store.statuses.find({"job": {"$ne": None}}))


def snapshot(store: Store) -> dict[str, Any]:
    run = store.get_run("r-1")
    return {name: (j["state"], j["attempt"], j["output"]) for name, j in run["jobs"].items()}


def test_started_marks_the_job_running_and_is_harmless_twice(store: Store) -> None:
    reporter = Reporter(store)
    assert reporter.started("r-1", "a", 1) is True
    assert reporter.started("r-1", "a", 1) is False
    assert store.get_run("r-1")["jobs"]["a"]["state"] == "running"
    assert keys(store) == ["r-1/a/1/started"]


def test_success_inserts_the_event_once_and_leaves_recording_to_the_handlers(store: Store) -> None:
    reporter = Reporter(store)
    reporter.started("r-1", "a", 1)
    assert reporter.succeeded("r-1", "a", 1, {"rows": 3}) is True
    assert reporter.succeeded("r-1", "a", 1, {"rows": 3}) is False

    (event,) = store.statuses.find({"key": "r-1/a/1/success"})
    assert (event["workflow"], event["output"], event["error"]) == ("wf", {"rows": 3}, None)
    assert store.get_run("r-1")["jobs"]["a"]["state"] == "running"


def test_success_straight_from_dispatched_is_accepted(store: Store) -> None:
    assert Reporter(store).succeeded("r-1", "a", 1, None) is True


def test_failure_carries_type_and_message(store: Store) -> None:
    Reporter(store).failed("r-1", "a", 1, "KeyError", "'x'")
    (event,) = store.statuses.find({"key": "r-1/a/1/failed"})
    assert event["error"] == {"type": "KeyError", "message": "'x'"}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: r.started("nope", "a", 1), UnknownRun, "run 'nope' does not exist"),
        (lambda r: r.succeeded("nope", "a", 1), UnknownRun, "run 'nope' does not exist"),
        (lambda r: r.succeeded("r-1", "zz", 1), RejectedReport, "run 'r-1' has no job 'zz'"),
        (
            lambda r: r.started("r-1", "b", 1),
            RejectedReport,
            "job 'b' attempt 1 of run 'r-1': the job is 'pending' at attempt 0",
        ),
        (
            lambda r: r.succeeded("r-1", "a", 2),
            RejectedReport,
            "job 'a' attempt 2 of run 'r-1': the job is 'dispatched' at attempt 1",
        ),
        (lambda r: r.failed("r-1", "b", 0, "E", "m"), RejectedReport, "the job is 'pending' at attempt 0"),
        (
            lambda r: r.succeeded("r-1", "a", 1, {1, 2}),
            RejectedReport,
            "output of job 'a' cannot be stored unchanged: output: a set is not JSON data",
        ),
    ],
)
def test_bad_reports_are_rejected_and_change_nothing(
    store: Store, call: Any, error: type, message: str
) -> None:
    before = (snapshot(store), keys(store))
    with pytest.raises(error, match=message):
        call(Reporter(store))
    assert (snapshot(store), keys(store)) == before


def test_an_outcome_contradicting_the_recorded_one_is_rejected(store: Store) -> None:
    store.record_outcome("r-1", "a", 1, state="succeeded", output={})
    reporter = Reporter(store)
    assert reporter.succeeded("r-1", "a", 1, {}) is True  # late duplicate of the recorded outcome: fine
    with pytest.raises(
        RejectedReport, match=r"cannot report 'failed' for job 'a' attempt 1 .* the job is 'succeeded'"
    ):
        reporter.failed("r-1", "a", 1, "E", "m")


def test_the_decorator_reports_started_and_success_with_the_returned_output(store: Store) -> None:
    seen: list[Any] = []

    @reported(reporter=Reporter(store))
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(store.get_run("r-1")["jobs"]["a"]["state"])
        return {"rows": event["input"]["n"]}

    result = handler({"run_id": "r-1", "job": "a", "attempt": 1, "input": {"n": 5}}, None)

    assert result == {"rows": 5}
    assert seen == ["running"]
    assert keys(store) == ["r-1/a/1/started", "r-1/a/1/success"]
    assert store.statuses.find_one({"key": "r-1/a/1/success"})["output"] == {"rows": 5}


def test_the_decorator_reports_a_failure_with_type_and_message(store: Store) -> None:
    @reported(reporter=lambda: Reporter(store))
    def handler(event: dict[str, Any], context: Any) -> None:
        raise ValueError("bad row 7")

    result = handler({"run_id": "r-1", "job": "a", "attempt": 1}, None)

    assert result == {"status": "failed", "error": {"type": "ValueError", "message": "bad row 7"}}
    assert store.statuses.find_one({"key": "r-1/a/1/failed"})["error"] == {
        "type": "ValueError",
        "message": "bad row 7",
    }


def test_the_decorator_can_reraise(store: Store) -> None:
    @reported(reporter=Reporter(store), reraise=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        handler({"run_id": "r-1", "job": "a", "attempt": 1}, None)
    assert keys(store) == ["r-1/a/1/failed", "r-1/a/1/started"]


def test_the_decorator_refuses_an_event_that_is_not_a_flowkit_payload(store: Store) -> None:
    calls: list[int] = []

    @reported(reporter=Reporter(store))
    def handler(event: Any, context: Any) -> None:
        calls.append(1)

    with pytest.raises(RejectedReport, match="missing job, attempt"):
        handler({"run_id": "r-1"}, None)
    with pytest.raises(RejectedReport, match="a flowkit job payload is an object, got list"):
        handler([], None)
    assert calls == []


def test_the_bare_decorator_uses_the_container_reporter_from_the_environment(
    wire_server: Any, wire_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowkit.runtime import report

    monkeypatch.setenv("FLOWKIT_MONGO_URI", wire_server.uri)
    monkeypatch.setenv("FLOWKIT_DATABASE", wire_database.name)
    monkeypatch.setenv("FLOWKIT_RUNS_COLLECTION", "runs_x")
    monkeypatch.setattr(report, "_default_reporter", None)
    store = Store(wire_database, runs="runs_x")
    store.ensure_indexes()
    start_run(store, DOC, {}, run_id="r-env")
    store.claim("r-env", "a", 0)

    @reported
    def handler(event: dict[str, Any], context: Any) -> str:
        return "done"

    assert handler({"run_id": "r-env", "job": "a", "attempt": 1}, None) == "done"
    assert store.statuses.find_one({"key": "r-env/a/1/success"})["output"] == "done"
    assert report._default_reporter is not None
    report._default_reporter.store.database.client.close()
    monkeypatch.setattr(report, "_default_reporter", None)
