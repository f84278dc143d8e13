"""flowkit's shared vocabulary: every state, kind, name rule, limit and environment variable, once.

Standard library only. The pydantic document models, the Lambda runtime, the local runner, the display,
the diagrams and the CLI all import their words from here, so a new state is added in one place and
``grep`` finds each literal once.

Job states (``JobState``)::

    pending ──claim──> dispatched ──started──> running ──success──> succeeded
       │                   │                      │
       │ skip              └──────────┬───────────┘
       v                              │ failed / deadline passed
    skipped                           v
                         attempts left? ──yes──> waiting ──not-before time──> dispatched (attempt n+1)
                                │ no
                                v
                         failed | timed_out
    (any non-terminal) ──run cancelled / can never run──> cancelled

Run statuses (``RunStatus``): ``running`` until it ends exactly once as ``succeeded``, ``failed``,
``timed_out`` (its own deadline passed) or ``cancelled``; a redrive takes an ended, unsuccessful run back
to ``running``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

__all__ = [
    "CONDITION_MAX_DEPTH",
    "DEFAULT_NOTIFY_ON",
    "ENV",
    "ERROR_MESSAGE_LIMIT",
    "EVENTBRIDGE_ENTRY_LIMIT",
    "FAILED_STATES",
    "INLINE_LIMIT",
    "JOB_ONLY_STATUSES",
    "JOB_TERMINAL_STATES",
    "LAMBDA_ASYNC_PAYLOAD_LIMIT",
    "MONGO_DOCUMENT_LIMIT",
    "MONGO_NESTING_LIMIT",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "NOTIFY_KINDS",
    "OPEN_STATES",
    "OUTCOME_STATUSES",
    "OUTPUT_LIMIT",
    "RESULT_KINDS",
    "RUN_DOCUMENT_BOUND",
    "RUN_ENDED_STATUSES",
    "RUN_END_EVENTS",
    "WORKFLOW_ONLY_STATUSES",
    "ErrorType",
    "EventStatus",
    "JobState",
    "NotifyKind",
    "RunOn",
    "RunStatus",
    "TimerKind",
    "is_valid_name",
    "status_key",
]


class JobState(StrEnum):
    """Where one job of a run is."""

    PENDING = "pending"
    """Not started: waiting for its needs (or its condition to be decided)."""
    DISPATCHED = "dispatched"
    """Claimed and handed to its target; not reported started yet."""
    RUNNING = "running"
    """Its body reported ``started``."""
    WAITING = "waiting"
    """An attempt failed or timed out with attempts left: waiting for the retry's not-before time."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Its condition was false (or it sits on the arm of a ``when`` that was not taken)."""
    TIMED_OUT = "timed_out"
    """Its last attempt passed its timeout or heartbeat deadline."""
    CANCELLED = "cancelled"
    """It will never run: the run was cancelled, or ended before the job could start."""


JOB_TERMINAL_STATES: Final = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.SKIPPED, JobState.TIMED_OUT, JobState.CANCELLED}
)
"""States a job never leaves (except through a redrive)."""

FAILED_STATES: Final = frozenset({JobState.FAILED, JobState.TIMED_OUT})
"""Terminal states that count as a failure of the job."""

OPEN_STATES: Final = (JobState.DISPATCHED, JobState.RUNNING)
"""A job handed to its target that has not finished its current attempt."""


class RunOn(StrEnum):
    """When a job may start (a job spec's ``run_on``)."""

    ALL_SUCCESS = "all_success"
    """Every need succeeded, was skipped, or failed on a handled failure path (the default)."""
    ALL_DONE = "all_done"
    """Every need finished in any state, or can never run: ``always(job)``."""


class RunStatus(StrEnum):
    """Where a run is."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


RUN_ENDED_STATUSES: Final = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED}
)


class EventStatus(StrEnum):
    """The ``status`` of a document in the ``statuses`` collection.

    Workflow-level events (no job) carry the run's redrive count as their ``attempt``: ``started`` at
    0 when the run is created and at n when redrive n takes it back to running; one end event per
    redrive.
    """

    STARTED = "started"
    SUCCESS = "success"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    """Job-level: an attempt passed its timeout or heartbeat deadline (written by the timer handler);
    an outcome like ``failed``. Workflow-level: the run passed its own deadline and ended."""
    RETRYING = "retrying"
    """Job-level only: a failed or timed-out attempt will be retried; ``output`` holds ``{"not_before": ...}``."""
    CANCELLED = "cancelled"
    """Workflow-level only: the run was cancelled (``flowkit cancel``); ``output`` holds the reason."""


WORKFLOW_ONLY_STATUSES: Final = frozenset({EventStatus.CANCELLED})
"""Event statuses that only workflow-level events (``job`` null) have."""

JOB_ONLY_STATUSES: Final = frozenset({EventStatus.RETRYING})
"""Event statuses that only job-level events have."""

RUN_END_EVENTS: Final = {
    RunStatus.SUCCEEDED: EventStatus.SUCCESS,
    RunStatus.FAILED: EventStatus.FAILED,
    RunStatus.TIMED_OUT: EventStatus.TIMED_OUT,
    RunStatus.CANCELLED: EventStatus.CANCELLED,
}
"""The workflow-level event a run's end inserts (attempt = the run's ``redrive_count``)."""

OUTCOME_STATUSES: Final = frozenset({EventStatus.SUCCESS, EventStatus.FAILED, EventStatus.TIMED_OUT})
"""Job-level events that carry an attempt's outcome: the statemachine and orchestrator record them."""


class ErrorType(StrEnum):
    """Error types flowkit itself gives a failed attempt (``Retry(on=[...])`` and conditions match them)."""

    TIMEOUT = "Timeout"
    """The attempt passed the job's ``timeout`` (counted from its dispatch)."""
    HEARTBEAT_TIMEOUT = "HeartbeatTimeout"
    """The attempt sent no heartbeat for longer than the job's ``heartbeat``."""
    DISPATCH_ERROR = "DispatchError"
    """The job could not be handed to its target (e.g. its payload is over the limit); never retried."""


class TimerKind(StrEnum):
    """What a job's due time (``jobs.<name>.due``) means."""

    RETRY = "retry"
    """The job is ``waiting``: at ``due`` its next attempt is dispatched."""
    ATTEMPT = "attempt"
    """The job is ``dispatched``/``running``: at ``due`` its deadline or heartbeat deadline is checked."""


def status_key(run_id: str, job: str | None, attempt: int, status: str) -> str:
    """Idempotency key of a status event; unique in the ``statuses`` collection."""
    return f"{run_id}/{job or '*'}/{attempt}/{status}"


class NotifyKind(StrEnum):
    """What a notification is about; ``Notify(on=[...])`` subscribes to these."""

    RUN_STARTED = "run.started"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_TIMED_OUT = "run.timed_out"
    RUN_CANCELLED = "run.cancelled"
    JOB_STARTED = "job.started"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_FAILURE_HANDLED = "job.failure_handled"
    """A job failed on a path the workflow handles (e.g. a declined card): not paged by default."""
    JOB_RETRYING = "job.retrying"
    JOB_TIMED_OUT = "job.timed_out"


NOTIFY_KINDS: Final = tuple(NotifyKind)
DEFAULT_NOTIFY_ON: Final = (NotifyKind.RUN_FAILED, NotifyKind.JOB_FAILED)
"""What a workflow is notified about when it does not say."""

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]+")
"""Job names: they become MongoDB dotted paths (``jobs.<name>.state``), so no ``.`` and no ``$``."""


NAME_MAX_LENGTH: Final = 128
"""The longest job or workflow name: it becomes part of status keys, Lambda function names and diagrams."""

CONDITION_MAX_DEPTH: Final = 32
"""The deepest a condition may nest (``and``/``or``/``not`` inside each other); deeper ones are refused."""


def is_valid_name(name: object) -> bool:
    """Whether ``name`` is a string of at most ``NAME_MAX_LENGTH`` matching ``NAME_PATTERN`` whole."""
    return isinstance(name, str) and len(name) <= NAME_MAX_LENGTH and NAME_PATTERN.fullmatch(name) is not None


# Limits of the services flowkit writes to, enforced where flowkit writes (locally as in production).
LAMBDA_ASYNC_PAYLOAD_LIMIT: Final = 1_048_576
"""AWS Lambda's limit for an asynchronous invocation's payload, in bytes."""
MONGO_DOCUMENT_LIMIT: Final = 16 * 1024 * 1024
"""MongoDB's maximum BSON document size, in bytes."""
MONGO_NESTING_LIMIT: Final = 100
"""MongoDB's maximum nesting depth of a document."""
EVENTBRIDGE_ENTRY_LIMIT: Final = 256 * 1024
"""EventBridge's maximum size of one PutEvents entry, in bytes."""
ERROR_MESSAGE_LIMIT: Final = 8192
"""Characters of an error message flowkit stores; longer ones are cut, ending with a marker."""
RUN_DOCUMENT_BOUND: Final = MONGO_DOCUMENT_LIMIT - 1024 * 1024
"""The largest a run document may ever grow (15 MiB: MongoDB's 16 MiB less a 1 MiB margin). A run's
worst case (its configuration and input, then every job at its inline maxima with its whole attempt
history, ``flowkit.runtime.bounds``) is computable because outputs and errors beyond ``INLINE_LIMIT``
live in the results collection: compile refuses a workflow, ``start_run`` a run, and ``redrive_run`` a
redrive whose run document could pass it."""
INLINE_LIMIT: Final = 256
"""Largest BSON size of ``{"v": value}`` for a job's output or error kept inline in the run document;
a larger one is stored in the results collection and the run keeps its reference."""
OUTPUT_LIMIT: Final = 240 * 1024
"""Largest BSON size of ``{"v": output}`` of one job's output (240 KiB); a larger output fails the job
with ``InvalidOutput`` naming the job and the size. (Its status event must also fit an EventBridge
entry, ``EVENTBRIDGE_ENTRY_LIMIT``.)"""
RESULT_KINDS: Final = ("output", "error")
"""What a document of the results collection holds: a job attempt's output, or its error."""

# attribute of ``flowkit.runtime.config.Settings`` -> environment variable
ENV: Final = {
    "mongo_uri": "FLOWKIT_MONGO_URI",
    "database": "FLOWKIT_DATABASE",
    "runs_collection": "FLOWKIT_RUNS_COLLECTION",
    "statuses_collection": "FLOWKIT_STATUSES_COLLECTION",
    "results_collection": "FLOWKIT_RESULTS_COLLECTION",
    "slack_token": "FLOWKIT_SLACK_TOKEN",
    "slack_webhook_url": "FLOWKIT_SLACK_WEBHOOK_URL",
    "webhook_url": "FLOWKIT_WEBHOOK_URL",
    "payload_limit_bytes": "FLOWKIT_PAYLOAD_LIMIT_BYTES",
    "lambda_endpoint_url": "FLOWKIT_LAMBDA_ENDPOINT_URL",
    "workflows_collection": "FLOWKIT_WORKFLOWS_COLLECTION",
    "mongo_uri_secret": "FLOWKIT_MONGO_URI_SECRET",
    "slack_token_secret": "FLOWKIT_SLACK_TOKEN_SECRET",
    "workflow_modules": "FLOWKIT_WORKFLOW_MODULES",
    "timer_queue_url": "FLOWKIT_TIMER_QUEUE_URL",
    "sqs_endpoint_url": "FLOWKIT_SQS_ENDPOINT_URL",
}
TEST_MONGO_URI_ENV: Final = "FLOWKIT_TEST_MONGO_URI"
"""Set it to run the over-the-wire tests against a real MongoDB."""
