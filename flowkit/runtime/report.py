"""Job-side reporting: a business Lambda tells flowkit it ``started``, succeeded or failed.

``Reporter`` writes status events (rule 7 in ``docs/architecture.md``); the handlers, triggered by
those inserts, record the outcome in the run. Reporting the same thing twice is harmless (the status
key is unique); a report for an unknown run, an unknown job, or a job that is not dispatched/running
at that attempt raises ``RejectedReport`` (``UnknownRun`` for the run) and changes nothing.

``reported`` wraps a Lambda handler ``(event, context)`` that receives a flowkit payload::

    @reported
    def handler(event, context):
        return {"rows": 42}          # reported as the job's output

It reports ``started`` before the body, ``success`` with the returned value, or ``failed`` with the
exception's type and message. The exception is not re-raised by default: flowkit owns retries, and a
Lambda-level retry of the same attempt could only produce rejected reports. Pass ``reraise=True``
to let Lambda see the error too.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, overload

from flowkit.errors import RejectedReport, UnknownRun
from flowkit.runtime.documents import ErrorDoc
from flowkit.runtime.store import Store, make_status, now
from flowkit.vocab import OPEN_STATES, EventStatus, JobState

__all__ = ["Reporter", "reported"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# The states a job reaches once a report was taken into account: a repeat of it is harmless.
_ALREADY: Final[Mapping[EventStatus, frozenset[JobState]]] = {
    EventStatus.STARTED: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED}),
    EventStatus.SUCCESS: frozenset({JobState.SUCCEEDED}),
    EventStatus.FAILED: frozenset({JobState.FAILED}),
}


class Reporter:
    """Reports one job's progress into the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def started(self, run_id: str, job: str, attempt: int) -> bool:
        """``dispatched -> running`` at ``attempt`` and a ``started`` event; True if newly reported."""
        at = now()
        header = self.store.mark_running(run_id, job, attempt, at=at)
        if header is not None:
            workflow = str(header.get("workflow", ""))
        else:
            # Not dispatched at that attempt: fine if it is already past it, else rejected.
            workflow = self._check(run_id, job, attempt, EventStatus.STARTED, accept=set())
        return self.store.insert_status(
            make_status(run_id, workflow, job, attempt, EventStatus.STARTED, time=at)
        )

    def succeeded(self, run_id: str, job: str, attempt: int, output: Any = None) -> bool:
        """Insert the ``success`` event with ``output`` (JSON); True if newly reported."""
        try:
            json.dumps(output, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise RejectedReport(
                f"output of job {job!r} (run {run_id!r}) is not JSON-serializable: {exc}",
                run_id=run_id,
                job=job,
            ) from exc
        workflow = self._check(run_id, job, attempt, EventStatus.SUCCESS, accept=set(OPEN_STATES))
        return self.store.insert_status(
            make_status(run_id, workflow, job, attempt, EventStatus.SUCCESS, output=output)
        )

    def failed(self, run_id: str, job: str, attempt: int, error_type: str, message: str) -> bool:
        """Insert the ``failed`` event with the error's type and message; True if newly reported."""
        workflow = self._check(run_id, job, attempt, EventStatus.FAILED, accept=set(OPEN_STATES))
        error: ErrorDoc = {"type": str(error_type), "message": str(message)}
        return self.store.insert_status(
            make_status(run_id, workflow, job, attempt, EventStatus.FAILED, error=error)
        )

    def _check(
        self, run_id: str, job: str, attempt: int, status: EventStatus, *, accept: set[JobState]
    ) -> str:
        """Reject the report unless the job is in an accepted state (or already past it) at ``attempt``."""
        header, current = self.store.read_job(run_id, job)
        if header is None:
            raise UnknownRun(
                f"cannot report {status.value!r}: run {run_id!r} does not exist", run_id=run_id, job=job
            )
        if current is None:
            raise RejectedReport(
                f"cannot report {status.value!r}: run {run_id!r} has no job {job!r}", run_id=run_id, job=job
            )
        state, stored_attempt = current.get("state"), current.get("attempt")
        already = _ALREADY[status]
        if stored_attempt == attempt and (state in accept or state in already):
            return str(header.get("workflow", ""))
        raise RejectedReport(
            f"cannot report {status.value!r} for job {job!r} attempt {attempt} of run {run_id!r}: the job is "
            f"{state!r} at attempt {stored_attempt}",
            run_id=run_id,
            job=job,
            workflow=header.get("workflow"),
        )


# ---------------------------------------------------------------------- the Lambda decorator

_default_reporter: Reporter | None = None
_default_lock = threading.Lock()


def _container_reporter() -> Reporter:
    global _default_reporter
    if _default_reporter is None:
        with _default_lock:
            if _default_reporter is None:
                from flowkit.runtime.config import Settings

                _default_reporter = Reporter(Store.from_settings(Settings.from_env()))
    return _default_reporter


def _job_of(event: Any) -> tuple[str, str, int]:
    if not isinstance(event, Mapping):
        raise RejectedReport(f"a flowkit job payload is an object, got {type(event).__name__}")
    missing = [key for key in ("run_id", "job", "attempt") if key not in event]
    if missing:
        raise RejectedReport(f"the event is not a flowkit job payload: missing {', '.join(missing)}")
    return str(event["run_id"]), str(event["job"]), int(event["attempt"])


@overload
def reported(fn: F, /) -> F: ...
@overload
def reported(
    *, reporter: Reporter | Callable[[], Reporter] | None = None, reraise: bool = False
) -> Callable[[F], F]: ...
def reported(
    fn: F | None = None,
    /,
    *,
    reporter: Reporter | Callable[[], Reporter] | None = None,
    reraise: bool = False,
) -> F | Callable[[F], F]:
    """Wrap a Lambda handler so it reports ``started``, then ``success`` or ``failed``.

    ``reporter`` defaults to one built once per container from ``Settings.from_env()``.
    """

    def get_reporter() -> Reporter:
        if reporter is None:
            return _container_reporter()
        return reporter if isinstance(reporter, Reporter) else reporter()

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(event: Any, context: Any = None) -> Any:
            run_id, job, attempt = _job_of(event)
            client = get_reporter()
            client.started(run_id, job, attempt)
            try:
                output = func(event, context)
            except Exception as exc:
                logger.exception("job %s of run %s failed", job, run_id)
                client.failed(run_id, job, attempt, type(exc).__name__, str(exc))
                if reraise:
                    raise
                return {
                    "status": EventStatus.FAILED.value,
                    "error": {"type": type(exc).__name__, "message": str(exc)},
                }
            client.succeeded(run_id, job, attempt, output)
            return output

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate
