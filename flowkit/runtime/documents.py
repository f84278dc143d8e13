"""The runtime's documents as typed dicts: a run, a job entry of a run, a status event, an error.

The handlers, the store, the engine and the dispatchers pass plain dicts (what pymongo reads and writes,
and what an EventBridge envelope carries); these ``TypedDict``s give them a checked shape at no cost at
run time (no pydantic on the Lambda event path). They mirror the published pydantic models of
``flowkit.document`` (``Run``, ``JobRun``, ``StatusEvent``, ``JobError``), and
``tests/house/test_documents.py`` pins their keys to the models' fields.

Adding a field to a stored document: add it to the pydantic model in ``flowkit/document.py`` AND here,
in the same commit (the pin test fails until both have it). A field the runtime stores but does not
publish goes into ``STORED_ONLY`` below as well.

Run documents are often read with a projection (only the fields a handler needs), so ``RunDoc`` is
``total=False``: a key may be absent, never of another type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, NotRequired, TypedDict

from flowkit.vocab import JobState

__all__ = [
    "STORED_ONLY",
    "AttemptDoc",
    "ErrorDoc",
    "JobEntry",
    "PathsEntry",
    "RunDoc",
    "StatusDoc",
    "pending_entry",
]


class ErrorDoc(TypedDict):
    """Why a job (or a run) failed (``flowkit.document.JobError``)."""

    type: str
    message: str


class AttemptDoc(TypedDict):
    """One finished, unsuccessful attempt (``flowkit.document.AttemptRecord``)."""

    attempt: int
    state: str
    error: ErrorDoc | None
    finished_at: datetime | None
    error_ref: NotRequired[str | None]
    """The error's reference in the results collection when it is too big to keep inline."""


class JobEntry(TypedDict):
    """One job of a run: ``run["jobs"][name]`` (``flowkit.document.JobRun``)."""

    state: str
    attempt: int
    output: Any
    error: ErrorDoc | None
    output_ref: NotRequired[str | None]
    """The output's reference in the results collection (``output`` is then null): set when the
    output is over ``INLINE_LIMIT`` (``flowkit.runtime.results``)."""
    error_ref: NotRequired[str | None]
    """The same for the error."""
    dispatched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempt_base: int
    """Attempts made before the last redrive: the retry budget counts from here (absent: 0)."""
    unmet: int
    """How many of its needs have not let it go ahead yet (the counted plan's dependency counter)."""
    heartbeat_at: datetime | None
    """The attempt's latest heartbeat (``Reporter.heartbeat``)."""
    attempts: dict[str, AttemptDoc]
    """Every failed or timed-out attempt, by attempt number."""
    due: datetime | None
    """This job's timer: when it fires (rule 12)."""
    timer: str | None
    """What fires at ``due``: ``retry`` (the job is waiting) or ``attempt`` (its deadline check)."""


class PathsEntry(TypedDict):
    """``run["paths"][job]`` for a job with failure paths (the counters of rule 3)."""

    left: int
    """Its failure paths not skipped: 0 with the job failed = the failure counts (``unhandled``)."""
    taken: bool
    """One of its failure paths was claimed: if it failed, the jobs it gates may go ahead."""


def pending_entry(unmet: int) -> JobEntry:
    """A job's entry in a new run: pending at attempt 0, with ``unmet`` needs to wait for."""
    return {
        "state": JobState.PENDING,
        "attempt": 0,
        "attempt_base": 0,
        "unmet": unmet,
        "output": None,
        "error": None,
        "dispatched_at": None,
        "started_at": None,
        "finished_at": None,
        "heartbeat_at": None,
        "attempts": {},
        "due": None,
        "timer": None,
    }


class RunDoc(TypedDict, total=False):
    """A document of the ``state-machines`` collection (``flowkit.document.Run``); ``_id`` is the run id."""

    _id: str
    workflow: str
    version: str
    config: dict[str, Any]
    input: dict[str, Any]
    status: str
    phase: str | None
    phase_index: int
    jobs: dict[str, JobEntry]
    created_at: datetime
    ended_at: datetime | None
    draining: bool
    """Set once a failure ends the run but ``always`` jobs still run (absent before)."""
    remaining: int
    """Jobs not terminal yet (moved by ``$inc`` with each transition)."""
    unhandled: int
    """Failures no failure path handles (moved by ``$inc`` with each transition)."""
    counters: int
    """Which counters the run carries (``engine.COUNTERS_VERSION``; absent in older runs)."""
    paths: dict[str, PathsEntry]
    """Per job with failure paths: how many are left (not skipped), and whether one was claimed."""
    always_left: int
    """``always`` jobs not ended yet (a failing run ends once it is 0)."""
    waits: dict[str, int]
    """Per ``always`` job: its needs claimed and not ended, or ``always`` and not ended (rule 9)."""
    redrive_count: int
    """How many times the run was redriven (absent in runs started before redrives existed)."""
    redriven_at: datetime | None
    redrive_deadline: datetime | None
    """The run's deadline counted from its last redrive (its timeout again); None before."""
    end_reason: str | None
    """Why the run was cancelled."""
    deadline: datetime | None
    """The run times out at this time (``@workflow(timeout=...)``)."""
    next_due_ms: int
    """No timer of the run is due before this time, in epoch milliseconds (the sweep's index; absent
    when nothing is due)."""
    timer_seq: int
    """Bumped by every update that sets a due time."""
    timers: dict[str, datetime]
    """Every job's due time (``jobs.<job>.due``), kept in the same updates: the sweep reads this map,
    not the jobs (absent in runs started before it; complete only with ``counters`` >= 4)."""
    released: int
    """Claims given back (a job put back to pending/waiting after a failed dispatch; absent before)."""
    unrunnable_done: str
    """On an ended run: its pending/waiting jobs were cancelled as of ``"<redrive_count>:<released>"``
    (``store.unrunnable_mark``), so a handler need not read every job's state again."""


class StatusDoc(TypedDict):
    """A document of the ``statuses`` collection (``flowkit.document.StatusEvent``)."""

    key: str
    run_id: str
    workflow: str
    job: str | None
    attempt: int
    status: str
    output: Any
    error: ErrorDoc | None
    time: datetime


STORED_ONLY: Final = {
    "RunDoc": frozenset(
        {
            "phase_index",
            "draining",
            "remaining",
            "unhandled",
            "counters",
            "paths",
            "always_left",
            "waits",
            "released",
            "unrunnable_done",
            "timers",
        }
    )
}
"""Keys the runtime stores for its own bookkeeping that the published models leave out."""
