"""Lambda asynchronous-invocation results -> flowkit status events.

A job whose target is an existing Lambda (any language, unchanged) reports through Lambda's
destinations: its asynchronous invocation config sends *on success* and *on failure* to an EventBridge
bus, where a rule invokes ``flowkit.runtime.handlers.destinations_job`` with::

    {"source": "lambda", "detail-type": "Lambda Function Invocation Result - Success" | "... - Failure",
     "detail": {"requestContext": {"condition": "Success" | "RetriesExhausted" | "EventAgeExceeded", ...},
                "requestPayload": <the flowkit payload the orchestrator sent>,
                "responseContext": {"statusCode": 200, "functionError": "Unhandled"?},
                "responsePayload": <what the function returned, or its error>}}

(a destination that is the Lambda itself receives the ``detail`` object alone; both are accepted). The
request payload carries ``run_id``, ``job`` and ``attempt``, which is how a result finds its job. A
success becomes the job's ``success`` event with the returned value as output; a failure its ``failed``
event with the error's type and message. A Python job served by flowkit's job router reports for
itself; the same on-failure path catches it when it crashed, timed out or ran out of memory before it
could (an outcome it already reported wins: the result is then ignored).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from flowkit.errors import EventError, RejectedReport
from flowkit.runtime.report import INVALID_OUTPUT, Reporter
from flowkit.runtime.store import Store, status_key
from flowkit.vocab import EventStatus

__all__ = ["REPORTED_MARKER", "RESULT_DETAIL_TYPES", "handle_result", "parse_result"]

logger = logging.getLogger(__name__)

SUCCESS: Final = "Lambda Function Invocation Result - Success"
FAILURE: Final = "Lambda Function Invocation Result - Failure"
RESULT_DETAIL_TYPES: Final = (SUCCESS, FAILURE)
# What the job router returns: its job reported for itself, so a success result carries nothing new.
REPORTED_MARKER: Final = "flowkit_reported"


def parse_result(event: Any) -> tuple[bool, dict[str, Any], Any]:
    """``(succeeded, request payload, response payload)`` of a destination record; ``EventError`` if bad."""
    if not isinstance(event, Mapping):
        raise EventError(f"a Lambda destination record is a JSON object, got {type(event).__name__}")
    if "detail" in event or "detail-type" in event:
        kind = event.get("detail-type")
        if event.get("source") != "lambda" or kind not in RESULT_DETAIL_TYPES:
            raise EventError(
                f"not a Lambda invocation result: source {event.get('source')!r}, detail-type {kind!r}"
            )
        record = event.get("detail")
    else:
        kind, record = None, event
    if not isinstance(record, Mapping):
        raise EventError("a Lambda destination record needs a 'detail' object")
    context = record.get("requestContext")
    if not isinstance(context, Mapping) or "condition" not in context:
        raise EventError("a Lambda destination record needs requestContext.condition")
    succeeded = context["condition"] == "Success"
    if kind is not None and succeeded != (kind == SUCCESS):
        raise EventError(f"detail-type {kind!r} contradicts condition {context['condition']!r}")
    payload = record.get("requestPayload")
    if not isinstance(payload, Mapping):
        raise EventError("the Lambda destination record has no requestPayload object")
    missing = [key for key in ("run_id", "job", "attempt") if key not in payload]
    if missing:
        raise EventError(
            f"the invocation was not a flowkit job (requestPayload misses {', '.join(missing)}); "
            "only job functions should send results to this bus"
        )
    attempt = payload["attempt"]
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise EventError(f"requestPayload.attempt must be a whole number >= 1, got {attempt!r}")
    if not isinstance(payload["run_id"], str) or not isinstance(payload["job"], str):
        raise EventError("requestPayload.run_id and requestPayload.job must be strings")
    return succeeded, dict(payload), record.get("responsePayload")


def _error_of(record: Mapping[str, Any], response: Any) -> tuple[str, str]:
    context = record.get("requestContext") or {}
    condition = str(context.get("condition", "Failure"))
    function_error = (record.get("responseContext") or {}).get("functionError")
    if isinstance(response, Mapping):
        kind = response.get("errorType") or function_error or condition
        message = response.get("errorMessage") or ""
    else:
        kind, message = function_error or condition, "" if response is None else str(response)
    if condition == "EventAgeExceeded":
        message = message or "the invocation was dropped: it waited longer than the maximum event age"
    if not message:
        message = f"the Lambda invocation failed ({condition}) without reporting"
    return str(kind), str(message)


def handle_result(store: Store, event: Any, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """Insert the status event a Lambda invocation result stands for (idempotent); what was done."""
    succeeded, payload, response = parse_result(event)
    record = event.get("detail", event) if isinstance(event, Mapping) else {}
    run_id, job, attempt = payload["run_id"], payload["job"], payload["attempt"]
    result = {"run_id": run_id, "job": job, "attempt": attempt}
    if succeeded and isinstance(response, Mapping) and response.get(REPORTED_MARKER) is True:
        return {**result, "action": "ignored", "why": "the job reported for itself"}
    # An outcome the job already reported for this attempt wins. It was inserted before the invocation
    # ended, so before this result existed: reading it here is not a race.
    keys = [status_key(run_id, job, attempt, status) for status in (EventStatus.SUCCESS, EventStatus.FAILED)]
    if store.statuses.find_one({"key": {"$in": keys}}, {"key": 1}) is not None:
        return {**result, "action": "ignored", "why": "an outcome is already reported"}
    client = reporter or Reporter(store)
    try:
        problem = client.output_problem(run_id, job, attempt, response) if succeeded else None
        if succeeded and problem is None:
            inserted = client.succeeded(run_id, job, attempt, response)
            status = EventStatus.SUCCESS
        elif succeeded:
            # A returned value that cannot be stored unchanged (NaN, a $ key, too large) fails the job
            # with a clear error instead of leaving it dispatched.
            inserted = client.failed(run_id, job, attempt, INVALID_OUTPUT, str(problem))
            status = EventStatus.FAILED
        else:
            kind, message = _error_of(record, response)
            inserted = client.failed(run_id, job, attempt, kind, message)
            status = EventStatus.FAILED
    except RejectedReport as exc:
        logger.warning("Lambda result for %s/%s attempt %s ignored: %s", run_id, job, attempt, exc)
        return {**result, "action": "rejected", "why": str(exc)}
    return {**result, "action": "reported" if inserted else "duplicate", "status": status}
