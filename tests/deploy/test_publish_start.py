"""Published definitions (``workflows`` collection) and the starter that starts them, on both databases."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import compile
from flowkit.errors import EventError, RunError
from flowkit.runtime.definitions import Definitions
from flowkit.runtime.starter import start_published
from flowkit.runtime.store import Store
from workflows.nested import nested
from workflows.order_pipeline import order_pipeline

RUNS = "state_machines"  # nx-27017 rejects hyphens in collection names


@pytest.fixture
def store(any_database: Any) -> Store:
    store = Store(any_database, runs=RUNS)
    store.ensure_indexes()
    Definitions(any_database).ensure_indexes()
    return store


def changed(doc: dict[str, Any], description: str) -> dict[str, Any]:
    """The same workflow, another content version (as a new deploy would publish)."""
    from flowkit.document import content_version

    new = {**doc, "description": description}
    new["version"] = content_version(new)
    return new


def test_publishing_is_idempotent_and_versioned_by_content(store: Store) -> None:
    definitions = Definitions(store.database)
    v1 = compile(nested).model_dump(mode="json")
    v2 = changed(v1, "second deploy")

    assert definitions.publish(v1) == "published"
    assert definitions.publish(v1) == "unchanged"
    assert definitions.document("nested") == v1
    assert definitions.publish(v2) == "published"
    assert definitions.document("nested")["version"] == v2["version"]
    # publishing the first version again is a rollback: it becomes current, nothing is duplicated
    assert definitions.publish(v1) == "reactivated"
    assert definitions.document("nested")["version"] == v1["version"]
    assert sorted(e["version"] for e in definitions.versions("nested")) == sorted(
        [v1["version"], v2["version"]]
    )
    assert definitions.document("order-pipeline") is None


def test_the_starter_starts_the_current_version_and_runs_keep_theirs(store: Store) -> None:
    definitions = Definitions(store.database)
    v1 = compile(nested).model_dump(mode="json")
    definitions.publish(v1)

    first = start_published(store, {"workflow": "nested", "input": {"day": "2026-11-27"}, "run_id": "n-1"})
    v2 = changed(v1, "second deploy")
    definitions.publish(v2)
    second = start_published(store, {"workflow": "nested", "run_id": "n-2"})

    assert first == {"run_id": "n-1", "workflow": "nested", "version": v1["version"], "status": "running"}
    assert second["version"] == v2["version"]
    assert store.get_run("n-1")["config"] == v1 and store.get_run("n-1")["version"] == v1["version"]
    assert store.get_run("n-2")["config"]["description"] == "second deploy"
    assert store.get_run("n-2")["input"] == {}
    keys = sorted(doc["key"] for doc in store.statuses.find({}))
    assert keys == ["n-1/*/0/started", "n-2/*/0/started"]


def test_the_starter_is_idempotent_by_run_id(store: Store) -> None:
    Definitions(store.database).publish(compile(order_pipeline).model_dump(mode="json"))
    request = {"workflow": "order-pipeline", "input": {"order_id": "o-1"}, "run_id": "o-1"}

    assert start_published(store, request) == start_published(store, request)
    assert store.runs.count_documents({}) == 1
    assert store.statuses.count_documents({}) == 1
    with pytest.raises(RunError, match="different input"):
        start_published(store, {**request, "input": {"order_id": "o-2"}})


def test_a_generated_run_id_names_the_workflow(store: Store) -> None:
    Definitions(store.database).publish(compile(order_pipeline).model_dump(mode="json"))
    started = start_published(store, {"workflow": "order-pipeline", "input": {}})
    assert started["run_id"].startswith("order-pipeline-")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([], "a start request is a JSON object, got list"),
        ({"input": {}}, "'workflow' must be a workflow name, got None"),
        ({"workflow": "nested", "input": [1]}, "'input' must be a JSON object, got list"),
        ({"workflow": "nested", "run_id": ""}, "'run_id' must be a non-empty string"),
        ({"workflow": "nested", "inputs": {}}, "unknown field\\(s\\): inputs"),
    ],
)
def test_bad_start_requests_are_refused_before_anything_is_written(
    store: Store, request_: Any, message: str
) -> None:
    with pytest.raises(EventError, match=message):
        start_published(store, request_)
    assert store.runs.count_documents({}) == 0


def test_an_unpublished_workflow_says_how_to_publish(store: Store) -> None:
    with pytest.raises(RunError, match=r"workflow 'nested' is not published .*flowkit publish"):
        start_published(store, {"workflow": "nested"})
    assert store.runs.count_documents({}) == 0
