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
exception's type and message (``BaseException`` included: ``sys.exit()`` is reported, then re-raised).
An output that cannot be stored and passed on unchanged (NaN, a set, an integer over 64 bits, a key
starting with ``$``, too deep, too large) is reported ``failed`` with type ``InvalidOutput``. The body
runs at most once per attempt: if the attempt already started (the same invocation delivered twice),
the body is not run again. The exception is not re-raised by default: flowkit owns retries, and a
Lambda-level retry of the same attempt could only produce rejected reports. Pass ``reraise=True``
to let Lambda see the error too.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, overload

from flowkit.errors import RejectedReport, UnknownRun
from flowkit.runtime.documents import ErrorDoc
from flowkit.runtime.limits import clean_text, output_size_problem, short_text, value_problem
from flowkit.runtime.store import Store, make_status
from flowkit.vocab import EVENTBRIDGE_ENTRY_LIMIT, OPEN_STATES, EventStatus, JobState, is_valid_name

__all__ = ["ALREADY_STARTED", "INVALID_OUTPUT", "Reporter", "reported"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# The states a job reaches once a report was taken into account: a repeat of it is harmless.
_ALREADY: Final[Mapping[EventStatus, frozenset[JobState]]] = {
    EventStatus.STARTED: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED}),
    EventStatus.SUCCESS: frozenset({JobState.SUCCEEDED}),
    # waiting: the failure was recorded and will be retried
    EventStatus.FAILED: frozenset({JobState.FAILED, JobState.WAITING}),
}

ALREADY_STARTED = "already_started"
"""What ``@reported`` returns, as ``status``, for an invocation of an attempt that started elsewhere."""
INVALID_OUTPUT = "InvalidOutput"
"""The error type of a job whose returned output cannot be stored or passed on unchanged."""

# Room kept for the fields EventBridge adds around the status document (id, account, region, ...).
_ENVELOPE_ROOM = 1024


class Reporter:
    """Reports one job's progress into the store.

    ``event_limit`` is the largest status event the Atlas trigger can put on EventBridge (one
    PutEvents entry); an output whose event would be larger is refused at report time.
    """

    def __init__(self, store: Store, *, event_limit: int = EVENTBRIDGE_ENTRY_LIMIT) -> None:
        self.store = store
        self.event_limit = event_limit

    def started(self, run_id: str, job: str, attempt: int) -> bool:
        """``dispatched -> running`` at ``attempt`` and its ``started`` event.

        True only for the one call that made that transition: its caller runs the job's body. A
        repeat for an attempt that is already running or finished returns False (and inserts the
        ``started`` event if it is missing): the body has started elsewhere and must not run again.
        Anything else raises ``RejectedReport`` (``UnknownRun`` for the run).
        """
        _check_job(run_id, job, EventStatus.STARTED)
        at = self.store.now()
        header = self.store.mark_running(run_id, job, attempt, at=at)
        if header is not None:
            workflow = str(header.get("workflow", ""))
            self.store.insert_status(
                make_status(run_id, workflow, job, attempt, EventStatus.STARTED, time=at)
            )
            return True
        # Not dispatched at that attempt: a repeat if it is already past it, else rejected.
        workflow = self._check(run_id, job, attempt, EventStatus.STARTED, accept=set())
        self.store.insert_status(make_status(run_id, workflow, job, attempt, EventStatus.STARTED, time=at))
        return False

    def output_problem(self, run_id: str, job: str, attempt: int, output: Any) -> str | None:
        """Why ``output`` cannot be reported as the job's output (None when it can)."""
        problem = value_problem(output, "output")
        if problem is not None:
            return f"the output of job {job!r} cannot be stored unchanged: {problem}"
        problem = output_size_problem(job, output)
        if problem is not None:
            return problem
        size = _event_size(make_status(run_id, "", job, attempt, EventStatus.SUCCESS, output=output))
        if size > self.event_limit:
            return (
                f"the output of job {job!r} makes a status event of {size} bytes, over the "
                f"{self.event_limit}-byte limit of an EventBridge entry; store large data elsewhere "
                "(e.g. S3) and return a reference"
            )
        return None

    def succeeded(self, run_id: str, job: str, attempt: int, output: Any = None) -> bool:
        """Insert the ``success`` event with ``output`` (JSON); True if newly reported.

        An output that cannot be stored and passed on unchanged (``output_problem``) raises
        ``RejectedReport`` and writes nothing; ``finish`` reports such an output as a failure instead.
        """
        _check_job(run_id, job, EventStatus.SUCCESS)
        problem = self.output_problem(run_id, job, attempt, output)
        if problem is not None:
            raise RejectedReport(f"{problem} (run {run_id!r})", run_id=run_id, job=job)
        return self._succeeded(run_id, job, attempt, output)

    def _succeeded(self, run_id: str, job: str, attempt: int, output: Any) -> bool:
        workflow = self._check(run_id, job, attempt, EventStatus.SUCCESS, accept=set(OPEN_STATES))
        return self.store.insert_status(
            make_status(
                run_id, workflow, job, attempt, EventStatus.SUCCESS, output=output, time=self.store.now()
            )
        )

    def failed(self, run_id: str, job: str, attempt: int, error_type: str, message: str) -> bool:
        """Insert the ``failed`` event with the error's type and message; True if newly reported.

        Both are made storable (lone surrogates escaped) and cut to ``ERROR_MESSAGE_LIMIT`` characters
        (the type to 200) with a marker saying how much was cut.
        """
        _check_job(run_id, job, EventStatus.FAILED)
        workflow = self._check(run_id, job, attempt, EventStatus.FAILED, accept=set(OPEN_STATES))
        error: ErrorDoc = {
            "type": short_text(clean_text(error_type), 200),
            "message": short_text(clean_text(message)),
        }
        return self.store.insert_status(
            make_status(
                run_id, workflow, job, attempt, EventStatus.FAILED, error=error, time=self.store.now()
            )
        )

    def finish(
        self,
        run_id: str,
        job: str,
        attempt: int,
        *,
        output: Any = None,
        error: tuple[str, str] | None = None,
    ) -> dict[str, str] | None:
        """Report the end of an attempt: ``failed`` with ``error`` (type, message), else ``success``.

        An output that cannot be stored unchanged is reported as a failure of type ``InvalidOutput``
        naming the problem, so the run goes on (or fails) instead of waiting for a report that can
        never be written. Returns the error reported, or None for a success.
        """
        if error is None:
            problem = self.output_problem(run_id, job, attempt, output)
            if problem is None:
                self._succeeded(run_id, job, attempt, output)
                return None
            error = (INVALID_OUTPUT, problem)
        self.failed(run_id, job, attempt, error[0], error[1])
        return {"type": short_text(clean_text(error[0]), 200), "message": short_text(clean_text(error[1]))}

    def heartbeat(self, run_id: str, job: str, attempt: int) -> bool:
        """The attempt is alive: push its heartbeat deadline forward (``@job(heartbeat=...)``).

        True if the job is ``running`` at ``attempt``; False (nothing written) once it is not, e.g.
        after it timed out: a body that sees False may stop, its outcome would be rejected anyway.
        """
        return self.store.heartbeat(run_id, job, attempt, at=self.store.now())

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


def _check_job(run_id: str, job: str, status: str) -> None:
    """A job name becomes part of a MongoDB path: refuse one that breaks the naming rule first."""
    if not is_valid_name(job):
        raise RejectedReport(
            f"cannot report {status!r}: {short_text(repr(job), 100)} is not a job name "
            "(letters, digits, '_' and '-' only)",
            run_id=run_id,
        )


def _event_size(status: Mapping[str, Any]) -> int:
    """Bytes of the EventBridge entry the trigger makes of ``status`` (canonical Extended JSON, the largest)."""
    from bson import json_util
    from bson.json_util import CANONICAL_JSON_OPTIONS

    detail = {"operationType": "insert", "fullDocument": status}
    return len(json_util.dumps(detail, json_options=CANONICAL_JSON_OPTIONS).encode()) + _ENVELOPE_ROOM


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
    run_id, job, attempt = event["run_id"], event["job"], event["attempt"]
    if not isinstance(run_id, str) or not isinstance(job, str):
        raise RejectedReport("the event is not a flowkit job payload: run_id and job are strings")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise RejectedReport(
            f"the event is not a flowkit job payload: attempt is a whole number >= 1, got {short_text(repr(attempt), 60)}",
            run_id=run_id,
            job=job,
        )
    return run_id, job, attempt


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
            if not client.started(run_id, job, attempt):
                # This attempt started elsewhere (a repeated invocation): its body runs once only.
                logger.warning(
                    "job %s attempt %d of run %s has already started elsewhere; not running it again",
                    job,
                    attempt,
                    run_id,
                )
                return {"status": ALREADY_STARTED, "reason": f"attempt {attempt} has already started"}
            try:
                output = func(event, context)
            except BaseException as exc:
                # Every exit of the body is reported, sys.exit() and KeyboardInterrupt included:
                # a job left 'running' would hold its run until a deadline.
                logger.exception("job %s of run %s failed", job, run_id)
                error = client.finish(run_id, job, attempt, error=(type(exc).__name__, str(exc)))
                if reraise or not isinstance(exc, Exception):
                    raise
                return {"status": EventStatus.FAILED.value, "error": error}
            error = client.finish(run_id, job, attempt, output=output)
            if error is not None:
                logger.error("job %s of run %s: %s", job, run_id, error["message"])
                return {"status": EventStatus.FAILED.value, "error": error}
            return output

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate
