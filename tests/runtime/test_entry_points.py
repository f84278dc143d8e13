"""The Lambda entry points: one Runtime per container, configured from the environment."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from _harness import document, job

from flowkit.runtime import handlers
from flowkit.runtime.events import to_envelope
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store, make_status


@pytest.fixture
def lambda_env(wire_server: Any, wire_database: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The environment a deployed handler sees, with moto standing in for AWS Lambda."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FLOWKIT_MONGO_URI": wire_server.uri,
        "FLOWKIT_DATABASE": wire_database.name,
        "FLOWKIT_RUNS_COLLECTION": "state_machines",
        "FLOWKIT_PAYLOAD_LIMIT_BYTES": "4096",
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "FLOWKIT_SLACK_TOKEN",
        "FLOWKIT_SLACK_WEBHOOK_URL",
        "FLOWKIT_WEBHOOK_URL",
        "FLOWKIT_LAMBDA_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(handlers, "_default", None)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        import boto3

        role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("h.py", "def handler(event, context):\n    return event\n")
        client = boto3.client("lambda")
        for name in ("fn-a", "fn-b"):
            client.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role,
                Handler="h.handler",
                Code={"ZipFile": code.getvalue()},
            )
        yield Store(wire_database, runs="state_machines")
        if handlers._default is not None:
            handlers._default.store.database.client.close()


def test_the_entry_points_share_one_runtime_built_from_the_environment(lambda_env: Store) -> None:
    store = lambda_env
    store.ensure_indexes()
    start_run(store, document("wf", [job("a"), job("b", "a")]), {"x": 1}, run_id="r-1")
    started = to_envelope(
        make_status("r-1", "wf", None, 0, "started"), database=store.database.name, collection="statuses"
    )

    result = handlers.orchestrator_job(started, None)

    assert result["dispatched"] == ["a"]
    runtime = handlers.default_runtime()
    assert runtime.payload_limit == 4096
    assert runtime.store.runs.name == "state_machines"
    assert store.get_run("r-1")["jobs"]["a"]["state"] == "dispatched"

    success = to_envelope(
        make_status("r-1", "wf", "a", 1, "success", output={"n": 1}),
        database=store.database.name,
        collection="statuses",
    )
    assert handlers.statemachine_job(success, None)["action"] == "recorded"
    assert handlers.orchestrator_job(success, None)["dispatched"] == ["b"]
    assert handlers.default_runtime() is runtime
    # no notifier configured in this environment: notifications are skipped, not failed
    assert handlers.notifications_job(success, None)["sent"] is False


def test_without_a_mongo_uri_the_entry_points_say_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowkit.errors import FlowkitError

    monkeypatch.delenv("FLOWKIT_MONGO_URI", raising=False)
    monkeypatch.setattr(handlers, "_default", None)
    with pytest.raises(FlowkitError, match="set FLOWKIT_MONGO_URI"):
        handlers.orchestrator_job({}, None)
