"""What an operator does to a run: cancel it, or redrive it after it failed.

``cancel_run(store, run_id, reason=...)`` ends a running run ``cancelled`` (one compare-and-set, so
exactly once whoever races), cancels its jobs that have not started (``pending``, ``waiting``: one
compare-and-set each), and inserts the one workflow-level ``cancelled`` event (notification
``run.cancelled``). Jobs already dispatched or running are left alone: a Lambda cannot be stopped from
here, and their outcomes are still recorded when they arrive, changing nothing else (nothing is
claimed on a run that is not running). Cancelling a cancelled run again finishes what a crash may have
left undone and changes nothing else.

``redrive_run(store, run_id)`` takes a ``failed``, ``timed_out`` or ``cancelled`` run back to
``running``, with Step Functions' ``RedriveExecution`` semantics (``jobs_to_redrive``): the jobs whose
failure ended it, the cancelled or unfinished ones, and the jobs decided on their outcome run again,
with a fresh attempt budget; everything else keeps its state and output. The run's ``redrive_count``
is the compare-and-set: two redrives of the same failure redrive once. The redrive inserts a
workflow-level ``started`` event with ``attempt`` = the new redrive count, which the orchestrator
handles like the run's first start.

Plain dicts and pymongo only (no pydantic), like the rest of ``flowkit.runtime``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from flowkit.conditions import referenced_jobs
from flowkit.errors import RunError, UnknownRun
from flowkit.runtime import engine
from flowkit.runtime.bounds import redrive_problem
from flowkit.runtime.limits import clean_text, short_text
from flowkit.runtime.store import Store, end_event, epoch_ms, make_status
from flowkit.runtime.timers import as_datetime
from flowkit.vocab import FAILED_STATES, JOB_TERMINAL_STATES, OPEN_STATES, EventStatus, JobState, RunStatus

__all__ = ["REDRIVABLE", "Redrive", "cancel_run", "jobs_to_redrive", "redrive_run"]

logger = logging.getLogger(__name__)

Doc = dict[str, Any]

REDRIVABLE: Final = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED})
"""Run statuses a redrive accepts."""
_NO_REASON: Final = "no reason given"
_RETRIES: Final = 5
"""Compare-and-set attempts of a redrive racing late outcomes before it gives up."""


def _read(store: Store, run_id: str) -> Any:
    if not isinstance(run_id, str) or not run_id:
        raise RunError(f"a run id is a non-empty string, got {run_id!r}")
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
    return run


# --------------------------------------------------------------------------- cancel


def cancel_run(store: Store, run_id: str, *, reason: str | None = None) -> bool:
    """Cancel a running run; True if this call cancelled it, False if it was already cancelled.

    A run that ended otherwise (succeeded, failed, timed out) raises ``RunError``; an unknown run
    ``UnknownRun``.
    """
    if reason is not None and not isinstance(reason, str):
        raise RunError(f"a cancel reason is a string, got {reason!r}", run_id=run_id)
    if reason is not None:  # stored in the run document: cut like an error message (its bound counts on it)
        reason = short_text(clean_text(reason))
    won = False
    for _ in range(_RETRIES):
        run = _read(store, run_id)
        status = run.get("status")
        if status == RunStatus.CANCELLED:
            break
        if status != RunStatus.RUNNING:
            raise RunError(
                f"run {run_id!r} has already ended {status!r}: only a running run can be cancelled",
                run_id=run_id,
                workflow=run.get("workflow"),
            )
        # The end compare-and-set of rule 5, on the redrive read: the end event below is that redrive's.
        won = store.end_run(
            run_id,
            RunStatus.CANCELLED,
            phase_index=len(run["config"]["phases"]),
            reason=reason if reason is not None else _NO_REASON,
            redrive=int(run.get("redrive_count") or 0),
        )
        if won:
            break
    else:
        raise RunError(f"run {run_id!r} kept changing while being cancelled; try again", run_id=run_id)
    # Finish the cancel (again, after a crash: every step is a no-op the second time). The jobs as they
    # are now (one may have gone to waiting since the read); the end event is the cancelled redrive's.
    now_run = _read(store, run_id) if won else run
    open_names = [
        name for name, job in now_run["jobs"].items() if job["state"] in (JobState.PENDING, JobState.WAITING)
    ]
    cancelled = store.cancel_jobs(run_id, open_names)
    stored_reason = reason if won else run.get("end_reason", reason)
    store.insert_status(
        end_event(run, RunStatus.CANCELLED, output={"reason": stored_reason or _NO_REASON}, time=store.now())
    )
    if won:
        logger.info("run %s cancelled (%s); jobs cancelled: %s", run_id, reason, ", ".join(cancelled))
    return won


# --------------------------------------------------------------------------- redrive


@dataclass(frozen=True)
class Redrive:
    """What a redrive did: the run's new ``redrive_count`` and the jobs that will run again."""

    run_id: str
    redrive_count: int
    jobs: list[str]


def jobs_to_redrive(run: Mapping[str, Any]) -> list[str]:
    """The jobs of an ended run that a redrive sets back to ``pending``, in document order.

    - a job whose failure (``failed``, ``timed_out``) counted: it had no failure path, or none ran;
    - a job ``cancelled``, or left ``waiting`` / ``dispatched`` / ``running`` by the end (a late
      outcome of that attempt is then stale and changes nothing);
    - then, repeatedly, a ``skipped`` job whose condition reads a job being redriven, or that needs
      one: it was decided on an outcome that is about to change (``when(charge.error_type == ...)``).

    Kept: succeeded jobs (and their outputs), failures a failure path handled (the path that ran stays
    valid), skipped jobs decided on outcomes that stay, and pending jobs (still pending).
    """
    specs = {spec["name"]: spec for spec in engine.job_specs(run)}
    jobs = run["jobs"]
    again: set[str] = set()
    for name, job in jobs.items():
        state = job["state"]
        if state in FAILED_STATES:
            if engine.failure_taken(run, specs.get(name, {})) is not True:
                again.add(name)
        elif state in (JobState.CANCELLED, JobState.WAITING, *OPEN_STATES):
            again.add(name)
    changed = True
    while changed:
        changed = False
        for name, job in jobs.items():
            if name in again or job["state"] != JobState.SKIPPED:
                continue
            spec = specs.get(name, {})
            reads = referenced_jobs(spec["condition"]) if spec.get("condition") else set()
            if (reads | set(spec.get("needs", ()))) & again:
                again.add(name)
                changed = True
    return [name for name in specs if name in again] + sorted(again - set(specs))


def _counters(run: Mapping[str, Any]) -> Doc:
    """The counters of a run decided on them, computed from the jobs' states (after a reset):
    ``engine.counters``, with ``unmet`` of the pending jobs only (the others' is never read again) and
    the failure paths' entries only in runs that carry them."""
    values = engine.counters(run)
    return {
        path: value
        for path, value in values.items()
        if (not path.startswith("jobs.") or run["jobs"][path.split(".")[1]]["state"] == JobState.PENDING)
        and (not path.startswith("paths.") or int(run.get("counters") or 0) >= 2)
        and (
            (path not in ("always_left",) and not path.startswith("waits."))
            or int(run.get("counters") or 0) >= 3
        )
    }


def redrive_run(store: Store, run_id: str) -> Redrive:
    """Take an ended, unsuccessful run back to ``running``; ``RunError`` if it cannot be redriven.

    Exactly once per ending: the update is a compare-and-set on the run's status and ``redrive_count``,
    and on the state and attempt of every job it resets or that is not terminal: an outcome recorded
    or a job cancelled meanwhile is never overwritten nor missed (the redrive then reads the run again
    and retries).
    """
    for _ in range(_RETRIES):
        run = _read(store, run_id)
        status = run.get("status")
        if status not in REDRIVABLE:
            why = f"ended {status!r}"
            if status == RunStatus.RUNNING:
                why = "is running"
                count = int(run.get("redrive_count") or 0)
                if count:  # a redrive that crashed before its event: insert it (again; harmless)
                    store.insert_status(
                        make_status(
                            run_id,
                            run["workflow"],
                            None,
                            count,
                            EventStatus.STARTED,
                            time=run.get("redriven_at"),
                        )
                    )
            raise RunError(
                f"run {run_id!r} {why}: only a failed, timed-out or cancelled run can be redriven",
                run_id=run_id,
                workflow=run.get("workflow"),
            )
        count = int(run.get("redrive_count") or 0)
        # The end event of the ending being redriven, owed by whoever ended it: inserted again (a no-op
        # when it is there), since once the run is running again nothing else would (rule 8). A timer
        # that ended the run, or a cancel, may not have inserted it yet.
        output = {"reason": run.get("end_reason") or _NO_REASON} if status == RunStatus.CANCELLED else None
        store.insert_status(
            end_event(run, status, output=output, time=as_datetime(run.get("ended_at")) or store.now())
        )
        names = jobs_to_redrive(run)
        # the jobs it resets get a fresh retry budget: their attempt history can grow again
        too_big = redrive_problem(run, names)
        if too_big is not None:
            raise RunError(too_big, run_id=run_id, workflow=run.get("workflow"))
        query: Doc = {
            "_id": run_id,
            "status": status,
            "redrive_count": count if count else {"$in": [None, 0]},
        }
        sets: Doc = {
            "status": RunStatus.RUNNING,
            "redrive_count": count + 1,
            "redriven_at": store.now(),
            "ended_at": None,
            "end_reason": None,
            "draining": False,
        }
        after = {**run, "jobs": {**run["jobs"]}}
        for name, job in run["jobs"].items():
            # The snapshot this redrive decided on: every job it resets, and every job that can still
            # change on an ended run (an outcome arriving, a cancel finishing) must be as read.
            if name in names or job["state"] not in JOB_TERMINAL_STATES:
                query[f"jobs.{name}.state"] = job["state"]
                query[f"jobs.{name}.attempt"] = job["attempt"]
        for name in names:
            job = run["jobs"][name]
            reset = {
                "due": None,
                "timer": None,
                "state": JobState.PENDING,
                "attempt_base": job["attempt"],
                "output": None,
                "error": None,
                "output_ref": None,
                "error_ref": None,
                "dispatched_at": None,
                "started_at": None,
                "finished_at": None,
            }
            sets.update({f"jobs.{name}.{field}": value for field, value in reset.items()})
            after["jobs"][name] = {**job, **reset}
        timeout = run["config"].get("timeout_seconds")
        if timeout is not None:
            # The run's own timeout counts again from the redrive (its first ``deadline`` stays as it was).
            deadline = sets["redriven_at"] + timedelta(seconds=float(timeout))
            sets["redrive_deadline"] = deadline
            sets["next_due_ms"] = epoch_ms(deadline)
        index, phase = engine.current_phase(after)
        sets.update({"phase": phase, "phase_index": index})
        if "remaining" in run:  # a run decided on counters: set them to what the reset run holds
            sets.update(_counters(after))
        # timer_seq moves too: a sweep that read the ended run must not unset the new next_due_ms
        update: Doc = {"$set": sets, "$inc": {"timer_seq": 1}}
        if names:  # the reset jobs' timers are cleared: their entries of the ``timers`` map too
            update["$unset"] = {f"timers.{name}": "" for name in names}
        result = store.runs.update_one(query, update)
        if result.modified_count == 1:
            logger.info("run %s redriven (redrive %d): %s", run_id, count + 1, ", ".join(names))
            store.insert_status(
                make_status(
                    run_id, run["workflow"], None, count + 1, EventStatus.STARTED, time=sets["redriven_at"]
                )
            )
            return Redrive(run_id, count + 1, names)
    raise RunError(
        f"run {run_id!r} kept changing while being redriven (late outcomes?); try again", run_id=run_id
    )
