"""What flowkit stores: the compiled workflow, a run, a status event.

These pydantic models are the contract between authoring (the compiler writes a ``WorkflowDocument``)
and the runtime (which embeds it in a ``Run`` and reads it to schedule jobs). Shape is checked here;
graph-level problems (unknown needs, cycles, ...) are the validator's job, so a broken document can
still be loaded and reported on in full.

Determinism: ``canonical_json`` is the one serialization used for hashing and for files (sorted keys,
no NaN); ``content_version`` hashes a document without its ``version`` field.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from flowkit.vocab import (
    DEFAULT_NOTIFY_ON,
    JOB_TERMINAL_STATES,
    EventStatus,
    JobState,
    NotifyKind,
    RunOn,
    RunStatus,
    TimerKind,
    status_key,
)

__all__ = [
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "AttemptRecord",
    "Branch",
    "EventStatus",
    "JobError",
    "JobRun",
    "JobSpec",
    "JobState",
    "Notifications",
    "NotifyKind",
    "Phase",
    "RetryPolicy",
    "Run",
    "RunStatus",
    "StatusEvent",
    "Target",
    "WorkflowDocument",
    "canonical_json",
    "content_version",
    "status_key",
]

SCHEMA_VERSION: Final = 1

Condition = dict[str, Any]
"""A condition AST; see ``flowkit.conditions`` for its grammar."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --------------------------------------------------------------------------- the compiled workflow


class Target(_Model):
    """Where a job runs: an AWS Lambda function (name or ARN) and an optional alias/version."""

    function: str = Field(description="Lambda function name or ARN; empty means 'missing'")
    qualifier: str | None = Field(default=None, description="alias or version, e.g. 'prod' or '7'")


class RetryPolicy(_Model):
    """How often and how fast a failed (or timed-out) attempt is retried.

    The delay before attempt n+1 is ``interval_seconds * backoff_rate ** (n - 1)``, capped by
    ``max_delay_seconds``; with ``jitter="full"`` a uniform random time between 0 and that delay.
    """

    max_attempts: int = Field(default=1, description="total attempts, 1 means no retry")
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter: Literal["none", "full"] = "none"
    on: list[str] | None = Field(
        default=None, description="error types that are retried (None: every type not in not_on)"
    )
    not_on: list[str] = Field(default=[], description="error types that are never retried")


class Branch(_Model):
    """One ``when``: its own condition and the jobs of each arm (for diagrams and docs)."""

    id: str
    condition: Condition
    then: list[str]
    otherwise: list[str] = []


class JobSpec(_Model):
    name: str
    description: str = ""
    phase: str = Field(description="name of the phase (top-level stage) the job belongs to")
    target: Target
    handler: str | None = Field(
        default=None, description="'module:qualname' of the Python body, for local runs; none if body-less"
    )
    needs: list[str] = Field(default=[], description="jobs that must finish first (sorted)")
    condition: Condition | None = Field(
        default=None, description="effective condition: the AND of every enclosing when-arm guard"
    )
    failure_handled: bool = Field(
        default=False,
        description="some job's condition is a failure path of this job (see handled_by)",
    )
    handled_by: list[str] | None = Field(
        default=None,
        description="jobs whose condition is a failure path of this job: its failure is handled when one "
        "of them runs, and fails the run when every one of them was skipped (None: handled whenever "
        "failure_handled, as documents of schema 1 before this field)",
    )
    run_on: RunOn = Field(
        default=RunOn.ALL_SUCCESS,
        description="all_success: start once every need succeeded, was skipped or failed on a handled "
        "path; all_done: once every need finished in any state (always(job))",
    )
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = Field(
        default=None, description="an attempt not finished this long after its dispatch times out"
    )
    heartbeat_seconds: float | None = Field(
        default=None, description="an attempt silent (no start, no heartbeat) this long times out"
    )
    input: dict[str, JsonValue] = {}


class Phase(_Model):
    name: str
    jobs: list[str]


class Notifications(_Model):
    slack_channel: str | None = None
    on: list[NotifyKind] = list(DEFAULT_NOTIFY_ON)
    mention: str | None = Field(default=None, description="added to failure messages, e.g. '<!here>'")
    webhook: bool = Field(default=False, description="also post to the generic JSON webhook")


class WorkflowDocument(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    version: str = Field(description="content hash of the document without this field")
    description: str = ""
    timeout_seconds: float | None = Field(
        default=None, description="a run not ended this long after its start ends timed_out"
    )
    phases: list[Phase]
    jobs: list[JobSpec]
    branches: list[Branch] = []
    notifications: Notifications = Notifications()

    def job(self, name: str) -> JobSpec:
        for spec in self.jobs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))


def canonical_json(data: Any, *, indent: int | None = 2) -> str:
    """The one serialization flowkit hashes and writes: sorted keys, no NaN, trailing newline."""
    text = json.dumps(data, sort_keys=True, indent=indent, ensure_ascii=False, allow_nan=False)
    return text + "\n" if indent is not None else text


def content_version(document: dict[str, Any]) -> str:
    """Content hash of a dumped document, ignoring its ``version`` field."""
    return content_version_and_size(document)[0]


def content_version_and_size(document: dict[str, Any]) -> tuple[str, int]:
    """``content_version`` and the byte length of the compact JSON it hashes (one serialization)."""
    body = {k: v for k, v in document.items() if k != "version"}
    text = canonical_json(body, indent=None).encode()
    return f"sha256:{hashlib.sha256(text).hexdigest()[:16]}", len(text)


# --------------------------------------------------------------------------- a run


# The states, statuses and kinds are ``flowkit.vocab``'s (re-exported here for the models' users).
TERMINAL_STATES: Final = JOB_TERMINAL_STATES


class JobError(_Model):
    type: str
    message: str


class AttemptRecord(_Model):
    """One finished, unsuccessful attempt of a job (``jobs.<name>.attempts``)."""

    attempt: int
    state: JobState = Field(description="failed or timed_out")
    error: JobError | None = None
    finished_at: datetime | None = None
    error_ref: str | None = Field(
        default=None,
        description="the error's id suffix in the results collection when too big to keep inline",
    )


class JobRun(_Model):
    state: JobState = JobState.PENDING
    attempt: int = 0
    unmet: int = 0
    """How many of its needs have not finished in a way that lets it run (0: ready once pending)."""
    attempt_base: int = Field(
        default=0, description="attempts made before the last redrive: the retry budget counts from here"
    )
    output: JsonValue = None
    error: JobError | None = None
    output_ref: str | None = Field(
        default=None,
        description=(
            "set when the output is too big to keep inline in the run document: its id in the results "
            "collection is '<run_id>/<job>/<output_ref>' (output is then null in the stored run)"
        ),
    )
    error_ref: str | None = Field(default=None, description="the same as output_ref, for the error")
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    attempts: dict[str, AttemptRecord] = Field(
        default={},
        description="every failed or timed-out attempt, by attempt number (at most max_attempts of them)",
    )
    due: datetime | None = Field(default=None, description="this job's timer: when it fires")
    timer: TimerKind | None = Field(
        default=None, description="what fires at due: the next attempt, or the deadline check"
    )


class Run(_Model):
    """A run as stored in the ``state-machines`` collection (``_id`` is the run id)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True, populate_by_name=True)

    id: str = Field(alias="_id")
    workflow: str
    version: str
    config: WorkflowDocument
    input: dict[str, JsonValue] = {}
    status: RunStatus = RunStatus.RUNNING
    phase: str | None = None
    jobs: dict[str, JobRun]
    created_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = Field(default=None, description="why the run was cancelled")
    redrive_count: int = Field(default=0, description="how many times the run was redriven")
    redriven_at: datetime | None = None
    redrive_deadline: datetime | None = Field(
        default=None, description="the run's deadline counted from its last redrive (its timeout again)"
    )
    deadline: datetime | None = Field(default=None, description="the run times out at this time")
    next_due_ms: int | None = Field(
        default=None,
        description="no timer of this run is due before this time, in epoch milliseconds (the sweep's index)",
    )
    timer_seq: int = Field(default=0, description="bumped by every update that sets a due time")


# --------------------------------------------------------------------------- a status event


class StatusEvent(_Model):
    """A document of the ``statuses`` collection. ``job`` is None for workflow-level events."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    key: str
    run_id: str
    workflow: str
    job: str | None = None
    attempt: int = 0
    status: EventStatus
    output: JsonValue = None
    error: JobError | None = None
    time: datetime
