"""Starting a run: the stored documents, idempotency on the run id, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from _harness import RUNS, STATUSES, document, job

from flowkit.document import Run, RunStatus
from flowkit.errors import InvalidWorkflow, RunError
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store

DOC = document(
    "nightly",
    [job("extract", phase="load"), job("transform", "extract", phase="load"), job("publish", "transform")],
)


@pytest.fixture
def store(any_database: Any) -> Store:
    store = Store(any_database, runs=RUNS, statuses=STATUSES)
    store.ensure_indexes()
    return store


def test_start_inserts_the_run_and_one_started_event(store: Store) -> None:
    run = start_run(store, DOC, {"day": "2026-01-01", "n": None}, run_id="r-1")

    assert isinstance(run, Run)
    assert (run.id, run.workflow, run.version, run.status, run.phase) == (
        "r-1",
        "nightly",
        DOC.version,
        RunStatus.RUNNING,
        "load",
    )
    assert run.config == DOC
    assert run.input == {"day": "2026-01-01", "n": None}
    assert {name: (j.state.value, j.attempt) for name, j in run.jobs.items()} == {
        "extract": ("pending", 0),
        "transform": ("pending", 0),
        "publish": ("pending", 0),
    }
    events = list(store.statuses.find({"run_id": "r-1"}))
    assert [(e["key"], e["job"], e["attempt"], e["status"]) for e in events] == [
        ("r-1/*/0/started", None, 0, "started")
    ]


def test_starting_the_same_run_again_returns_it_without_a_second_event(store: Store) -> None:
    seen: list[str] = []
    store.on_status = lambda doc: seen.append(doc["key"])
    first = start_run(store, DOC, {"a": 1}, run_id="r-1")
    second = start_run(store, DOC, {"a": 1}, run_id="r-1")

    assert second.id == first.id and second.created_at == first.created_at
    assert seen == ["r-1/*/0/started"]
    assert store.runs.count_documents({}) == 1


def test_the_same_run_id_with_another_input_or_workflow_is_refused(store: Store) -> None:
    start_run(store, DOC, {"a": 1}, run_id="r-1")
    with pytest.raises(RunError, match="'r-1' already exists with a different input"):
        start_run(store, DOC, {"a": 2}, run_id="r-1")
    other = document("other", [job("x")])
    with pytest.raises(RunError, match="already exists with workflow 'nightly', not 'other'"):
        start_run(store, other, {"a": 1}, run_id="r-1")


def test_a_generated_run_id_names_the_workflow(store: Store) -> None:
    run = start_run(store, DOC, {})
    assert run.id.startswith("nightly-") and len(run.id) > len("nightly-")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "the input of a run is a JSON object, got list"),
        ({"x": float("nan")}, "input.x: nan is not a JSON number"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(store: Store, value: Any, message: str) -> None:
    with pytest.raises(RunError, match=message):
        start_run(store, DOC, value, run_id="r-1")
    assert store.runs.count_documents({}) == 0 and store.statuses.count_documents({}) == 0


def test_job_names_that_are_not_safe_paths_are_refused(store: Store) -> None:
    bad = document("wf", [job("ok"), job("a.b"), job("$x")])
    with pytest.raises(InvalidWorkflow) as info:
        start_run(store, bad, {}, run_id="r-1")
    assert info.value.problems == [
        "job name 'a.b' of workflow 'wf' may only use letters, digits, '_' and '-'",
        "job name '$x' of workflow 'wf' may only use letters, digits, '_' and '-'",
    ]
    assert store.runs.count_documents({}) == 0


def test_a_configuration_that_defines_jobs_twice_is_refused_naming_each_once(store: Store) -> None:
    # A published definition is a plain dict (the starter Lambda starts it without pydantic).
    from flowkit.runtime.start import start_config

    config = document("wf", [job("a"), job("b"), job("c")]).model_dump(mode="json")
    config["jobs"] += [dict(config["jobs"][1]), dict(config["jobs"][1]), dict(config["jobs"][0])]
    with pytest.raises(InvalidWorkflow) as info:
        start_config(store, config, {}, run_id="r-1")
    assert info.value.problems == [
        "job 'a' is defined more than once in workflow 'wf'",
        "job 'b' is defined more than once in workflow 'wf'",
    ]
    assert store.runs.count_documents({}) == 0


def test_an_empty_run_id_is_refused(store: Store) -> None:
    with pytest.raises(RunError, match="a run id is a non-empty string"):
        start_run(store, DOC, {}, run_id=" ")


def test_starting_again_after_a_crash_between_the_two_inserts_completes_the_start(store: Store) -> None:
    from flowkit.runtime.start import new_run_document

    store.insert_run(new_run_document(DOC, {"a": 1}, "r-1"))  # the process died before the event
    assert store.statuses.count_documents({}) == 0

    run = start_run(store, DOC, {"a": 1}, run_id="r-1")

    assert run.id == "r-1"
    assert [s["key"] for s in store.statuses.find({})] == ["r-1/*/0/started"]
