"""The local runner over the wire: --mongo-uri against a MongoDB wire-protocol server.

nx-27017 (the default wire server) rejects hyphens in collection names, so these runs use
``state_machines`` through the same settings a deployment would set.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from _localrun import WORKFLOWS, example, outcome

from flowkit.cli import main
from flowkit.local.runner import run_workflow
from flowkit.runtime.config import Settings

pytestmark = pytest.mark.wire


@pytest.fixture
def wire_settings(wire_client: Any) -> Any:
    name = f"flowkit_local_{uuid.uuid4().hex[:10]}"
    yield Settings(database=name, runs_collection="state_machines", statuses_collection="statuses")
    wire_client.drop_database(name)


def test_a_run_over_the_wire_matches_the_embedded_run(
    wire_server: Any, wire_client: Any, wire_settings: Any
) -> None:
    data = {"order_id": "o-1", "card": "declined"}

    remote = run_workflow(
        example("order_pipeline"), data, mongo_uri=wire_server.uri, settings=wire_settings, timeout=30
    )
    local = run_workflow(example("order_pipeline"), data)

    assert outcome(remote) == outcome(local)
    stored = wire_client[wire_settings.database]["state_machines"].find_one({"_id": remote.id})
    assert stored["status"] == "succeeded"
    assert stored["jobs"]["charge"]["error"] == {
        "type": "CardDeclined",
        "message": "card declined for order o-1",
    }
    statuses = wire_client[wire_settings.database]["statuses"]
    assert statuses.count_documents({"run_id": remote.id}) == len(remote.events)
    assert remote.location.uri == wire_server.uri
    assert f"MongoDB {wire_server.uri}, database '{wire_settings.database}'" in str(remote.location)


def test_chaos_over_the_wire_ends_in_the_same_state(wire_server: Any, wire_settings: Any) -> None:
    data = {"date": "2026-11-27", "rows": 0}

    chaotic = run_workflow(
        example("nightly_etl"), data, mongo_uri=wire_server.uri, settings=wire_settings, chaos=4, timeout=30
    )

    assert outcome(chaotic) == outcome(run_workflow(example("nightly_etl"), data))


def test_cli_mongo_uri(
    wire_server: Any, wire_client: Any, wire_settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("FLOWKIT_DATABASE", wire_settings.database)
    monkeypatch.setenv("FLOWKIT_RUNS_COLLECTION", "state_machines")

    code = main(
        [
            "run",
            str(WORKFLOWS / "nightly_etl.py"),
            "--input",
            '{"date": "2026-11-27"}',
            "--mongo-uri",
            wire_server.uri,
            "--json",
        ]
    )

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    stored = wire_client[wire_settings.database]["state_machines"].find_one({"_id": document["_id"]})
    assert stored["status"] == document["status"] == "succeeded"
