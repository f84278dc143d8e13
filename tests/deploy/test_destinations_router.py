"""Lambda destination results become status events; the job router runs and reports the named body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowkit import compile
from flowkit.errors import EventError, FlowkitError
from flowkit.runtime.destinations import REPORTED_MARKER, handle_result
from flowkit.runtime.report import Reporter
from flowkit.runtime.router import Registry, route
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store
from workflows.nested import nested

RUNS = "state_machines"


@pytest.fixture
def store(any_database: Any) -> Store:
    store = Store(any_database, runs=RUNS)
    store.ensure_indexes()
    start_run(store, compile(nested), {"day": "2026-11-27"}, run_id="r-1")
    for name in ("prepare", "score"):
        assert store.claim("r-1", name, 0)  # as the orchestrator would, before invoking the function
    return store


def payload(job: str, attempt: int = 1) -> dict[str, Any]:
    return {
        "run_id": "r-1",
        "workflow": "nested",
        "job": job,
        "attempt": attempt,
        "input": {"day": "2026-11-27"},
        "needs": {},
    }


def result(
    request: dict[str, Any], response: Any, *, condition: str = "Success", error: str | None = None
) -> dict[str, Any]:
    """What Lambda puts on the destination bus after an asynchronous invocation (documented shape)."""
    kind = "Success" if condition == "Success" else "Failure"
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if error:
        response_context["functionError"] = error
    return {
        "version": "0",
        "id": "0f6c6a7c-5b3c-4a33-a2b4-2b2f3c7e1d11",
        "detail-type": f"Lambda Function Invocation Result - {kind}",
        "source": "lambda",
        "account": "123456789012",
        "time": "2026-11-27T02:00:05Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:lambda:eu-west-1:123456789012:function:score-model:prod"],
        "detail": {
            "version": "1.0",
            "timestamp": "2026-11-27T02:00:05.120Z",
            "requestContext": {
                "requestId": "c0a8b8e4-8d54-4f43-b2a1-0a3b5c2b8d7e",
                "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:score-model:prod",
                "condition": condition,
                "approximateInvokeCount": 1,
            },
            "requestPayload": request,
            "responseContext": response_context,
            "responsePayload": response,
        },
    }


def statuses(store: Store) -> dict[str, Any]:
    return {doc["key"]: (doc["output"], doc["error"]) for doc in store.statuses.find({"job": {"$ne": None}})}


def test_an_existing_functions_success_becomes_its_success_event(store: Store) -> None:
    answer = handle_result(store, result(payload("score"), {"scored": 900}))
    again = handle_result(store, result(payload("score"), {"scored": 900}))

    assert answer["action"] == "reported" and answer["status"] == "success"
    assert again["action"] == "ignored"  # a redelivered result changes nothing
    assert statuses(store) == {"r-1/score/1/success": ({"scored": 900}, None)}


def test_an_existing_functions_failure_becomes_its_failed_event(store: Store) -> None:
    error = {"errorType": "ValueError", "errorMessage": "model not found", "stackTrace": []}
    handle_result(store, result(payload("score"), error, condition="RetriesExhausted", error="Unhandled"))
    assert statuses(store) == {
        "r-1/score/1/failed": (None, {"type": "ValueError", "message": "model not found"})
    }


def test_the_detail_alone_is_accepted_too(store: Store) -> None:
    # a destination that is a Lambda function receives the record without the EventBridge envelope
    record = result(
        payload("score"),
        {"errorMessage": "Task timed out after 3.00 seconds"},
        condition="RetriesExhausted",
        error="Unhandled",
    )["detail"]
    handle_result(store, record)
    assert statuses(store) == {
        "r-1/score/1/failed": (None, {"type": "Unhandled", "message": "Task timed out after 3.00 seconds"})
    }


def test_a_crash_after_started_is_reported_failed(store: Store) -> None:
    # given a router job that reported started, then its process was killed (out of memory)
    Reporter(store).started("r-1", "prepare", 1)
    crash = {"errorType": "Runtime.ExitError", "errorMessage": "Runtime exited with error: signal: killed"}
    # when its on-failure destination delivers
    handle_result(store, result(payload("prepare"), crash, condition="RetriesExhausted", error="Unhandled"))
    # then its attempt is failed with the runtime's error
    assert statuses(store)["r-1/prepare/1/failed"] == (
        None,
        {"type": "Runtime.ExitError", "message": "Runtime exited with error: signal: killed"},
    )


def test_an_outcome_the_job_reported_itself_wins(store: Store) -> None:
    reporter = Reporter(store)
    reporter.started("r-1", "prepare", 1)
    reporter.succeeded("r-1", "prepare", 1, {"day": "2026-11-27"})
    # the function timed out after reporting: the failure result must not contradict the success
    answer = handle_result(
        store,
        result(
            payload("prepare"), {"errorMessage": "timed out"}, condition="RetriesExhausted", error="Unhandled"
        ),
    )
    assert answer["action"] == "ignored"
    assert list(statuses(store)) == ["r-1/prepare/1/started", "r-1/prepare/1/success"]


def test_the_router_success_result_is_ignored(store: Store) -> None:
    answer = handle_result(store, result(payload("prepare"), {REPORTED_MARKER: True, "job": "prepare"}))
    assert answer["action"] == "ignored" and statuses(store) == {}


def test_a_result_for_an_attempt_never_dispatched_is_rejected(store: Store) -> None:
    answer = handle_result(store, result(payload("score", attempt=2), {"scored": 1}))
    assert answer["action"] == "rejected" and statuses(store) == {}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("text", "is a JSON object, got str"),
        (
            {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
            "not a Lambda invocation result",
        ),
        ({"requestPayload": {}}, "needs requestContext.condition"),
        (
            {"requestContext": {"condition": "Success"}, "requestPayload": {"orderId": 7}},
            "was not a flowkit job",
        ),
        (
            {
                "requestContext": {"condition": "Success"},
                "requestPayload": {"run_id": "r-1", "job": "a", "attempt": "1"},
            },
            "attempt must be a whole number",
        ),
    ],
)
def test_malformed_results_are_refused_without_writing(store: Store, event: Any, message: str) -> None:
    with pytest.raises(EventError, match=message):
        handle_result(store, event)
    assert statuses(store) == {}


def test_a_contradicting_detail_type_is_refused(store: Store) -> None:
    event = result(payload("score"), {"x": 1})
    event["detail-type"] = "Lambda Function Invocation Result - Failure"
    with pytest.raises(EventError, match="contradicts condition"):
        handle_result(store, event)


# ---------------------------------------------------------------------- the job router


def test_the_router_runs_the_named_body_and_reports_it(store: Store) -> None:
    registry = Registry(["workflows.nested"])
    answer = route(payload("prepare"), None, registry=registry, reporter=Reporter(store))

    assert answer == {
        REPORTED_MARKER: True,
        "job": "prepare",
        "result": {"day": "2026-11-27", "regions": ["eu", "us"]},
    }
    assert statuses(store) == {
        "r-1/prepare/1/started": (None, None),
        "r-1/prepare/1/success": ({"day": "2026-11-27", "regions": ["eu", "us"]}, None),
    }
    json.dumps(answer)  # what Lambda returns must be JSON


def test_named_copies_share_one_body_in_the_router() -> None:
    bodies = Registry(["workflows.nested"]).bodies["nested"]
    assert bodies["fetch-eu"] is bodies["fetch-us"]
    assert "score" not in bodies  # an existing Lambda, no body


def test_a_job_the_router_does_not_serve_is_reported_failed(store: Store) -> None:
    answer = route(payload("score"), None, registry=Registry(["workflows.nested"]), reporter=Reporter(store))
    assert answer["status"] == "failed"
    [(_output, error)] = statuses(store).values()
    assert (
        error["type"] == "UnknownJob"
        and "no @job body for job 'score' of workflow 'nested'" in error["message"]
    )


def test_the_router_needs_its_modules() -> None:
    with pytest.raises(FlowkitError, match="FLOWKIT_WORKFLOW_MODULES"):
        Registry.from_setting("")
    with pytest.raises(FlowkitError, match="no workflow found in json"):
        Registry(["json"])
