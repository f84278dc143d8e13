"""Durable timers: every due time lives in the run document; ``fire_run`` fires the due ones.

A run holds at most one timer per job (``jobs.<name>.due`` + ``jobs.<name>.timer``) and its own
``deadline``; ``next_due_ms`` (indexed) is a lower bound of all of them, so the sweep
``{"next_due_ms": {"$lte": now}}`` reads only runs that have something due. The rules are rule 12 of
``docs/architecture.md``:

- a ``retry`` timer (the job is ``waiting``) fires by claiming the next attempt (``waiting`` at n ->
  ``dispatched`` at n+1, a compare-and-set) and dispatching it;
- an ``attempt`` timer (the job is ``dispatched``/``running``) fires by inserting a ``timed_out``
  status event for that attempt, unless the attempt sent a heartbeat meanwhile (then the timer moves
  forward). The event is recorded like a ``failed`` outcome by the statemachine and orchestrator
  handlers, so retries, failure handling and the run's end follow the usual path, and a timed-out
  attempt's own late outcome is rejected as stale;
- the run's ``deadline`` (``redrive_deadline`` after a redrive) ends the run ``timed_out`` (a
  compare-and-set on ``status: running`` and on the ``redrive_count`` it was read with).

Firing twice, late, or racing the job's own outcome is harmless: every step is a compare-and-set on
the job's state and attempt, and status events are idempotent by key.

``Waker`` is the precise wake-up: the handler that sets a due time arms it (best effort; the schedule
that sweeps every minute is the backstop). ``SqsWaker`` sends a message with a delay of up to 15
minutes to the timer queue; the timer handler re-queues messages whose due time is further away.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from flowkit.vocab import OPEN_STATES, ErrorType, EventStatus, JobState, RunStatus, TimerKind

if TYPE_CHECKING:
    from flowkit.runtime.documents import ErrorDoc, RunDoc
    from flowkit.runtime.handlers import Runtime

__all__ = [
    "MAX_SQS_DELAY",
    "SWEEP_FIELDS",
    "SqsWaker",
    "Waker",
    "as_datetime",
    "attempt_due",
    "fire_run",
    "mapped_next_due",
    "next_due",
    "parse_wake",
    "sweep",
]

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
MAX_SQS_DELAY: Final = 900
"""SQS's longest ``DelaySeconds`` (15 minutes); a due time further away is re-queued when it arrives."""


def as_datetime(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (None stays None).

    MongoDB returns dates as datetimes. The nx-27017 stand-in returns a date written by an update as
    its text (``2026-01-01 00:00:00.123000``); reading both keeps the timers on MongoDB's semantics
    while the over-the-wire tests still run against the stand-in.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    from flowkit.errors import StoreError

    raise StoreError(f"not a stored time: {value!r}")


def attempt_due(spec: Mapping[str, Any], job: Mapping[str, Any]) -> tuple[datetime | None, str | None]:
    """``(when the open attempt of ``job`` expires, error type then)``, or ``(None, None)``.

    The timeout counts from the attempt's dispatch; the heartbeat from the latest sign of life
    (dispatch, start, heartbeat), so a job lost before it starts also times out.
    """
    dispatched = as_datetime(job.get("dispatched_at"))
    if dispatched is None:
        return None, None
    candidates: list[tuple[datetime, str]] = []
    timeout = spec.get("timeout_seconds")
    if timeout is not None:
        candidates.append((dispatched + timedelta(seconds=float(timeout)), ErrorType.TIMEOUT.value))
    heartbeat = spec.get("heartbeat_seconds")
    if heartbeat is not None:
        signs = [as_datetime(job.get(f)) for f in ("dispatched_at", "started_at", "heartbeat_at")]
        beat = max(t for t in signs if t is not None)
        candidates.append((beat + timedelta(seconds=float(heartbeat)), ErrorType.HEARTBEAT_TIMEOUT.value))
    if not candidates:
        return None, None
    return min(candidates)


def next_due(run: Mapping[str, Any], *, fired: frozenset[tuple[str, int]] = frozenset()) -> datetime | None:
    """The earliest due time of a running run: its jobs' timers and its deadline.

    ``fired``: ``(job, attempt)`` whose deadline timer just fired (its ``timed_out`` event is in);
    such a timer is left out while the job is still open at that attempt.
    """
    if run.get("status") != RunStatus.RUNNING:
        return None
    dues = [as_datetime(run.get("redrive_deadline") or run.get("deadline"))]
    for name, job in run["jobs"].items():
        done = (name, job.get("attempt")) in fired and job.get("timer") == TimerKind.ATTEMPT
        if not done:
            dues.append(as_datetime(job.get("due")))
    present = [due for due in dues if due is not None]
    return min(present) if present else None


class Waker(Protocol):
    def arm(self, run_id: str, due: datetime) -> None:
        """Make the timer handler look at ``run_id`` at ``due`` (best effort)."""


def _specs(run: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {spec["name"]: spec for spec in run["config"]["jobs"]}


SWEEP_FIELDS: Final = (
    "workflow",
    "status",
    "timer_seq",
    "redrive_count",
    "deadline",
    "redrive_deadline",
    "timers",
    "counters",
    "version",
    "created_at",
)
"""What the sweep reads of a due run: its own fields and its ``timers`` map, never its jobs or config."""
TIMERS_VERSION: Final = 4
"""The ``counters`` value from which a run's ``timers`` map holds every due time (``engine``)."""
_JOB_TIMER_FIELDS: Final = (
    "state",
    "attempt",
    "timer",
    "due",
    "dispatched_at",
    "started_at",
    "heartbeat_at",
)


def _on_map(run: Mapping[str, Any]) -> bool:
    """Whether ``run``'s due jobs can be found from its ``timers`` map (a run started before it cannot)."""
    return isinstance(run.get("timers"), Mapping) and int(run.get("counters") or 0) >= TIMERS_VERSION


def fire_run(runtime: Runtime, run: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Fire every timer of ``run`` that is due at ``now``.

    ``run`` is read just before: with ``SWEEP_FIELDS`` (or whole). A running run with a ``timers`` map
    whose deadline is not due is fired reading only its due jobs (``_fire_mapped``); any other run
    (ended, its deadline due, or started before the map) is read whole first, as it always was.
    """
    run_id = run["_id"]
    deadline = as_datetime(run.get("redrive_deadline") or run.get("deadline"))
    ends = deadline is not None and deadline <= now
    if _on_map(run) and run.get("status") == RunStatus.RUNNING and not ends:
        return _fire_mapped(runtime, run, now)
    if "jobs" not in run or "config" not in run:
        whole = runtime.store.get_run(run_id)
        if whole is None:
            return {"run_id": run_id, "expired": [], "retried": [], "moved": [], "ended": None}
        runtime.run_cache.put(whole)
        run = whole
    return _fire_whole(runtime, run, now)


def _fire_whole(runtime: Runtime, run: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """``fire_run`` on a whole run document."""

    run_id = run["_id"]
    fired: dict[str, Any] = {"run_id": run_id, "expired": [], "retried": [], "moved": [], "ended": None}
    store = runtime.store
    if run.get("status") != RunStatus.RUNNING:
        # Ended: its timers are void. A timer-driven end may not have finished its work yet.
        if run.get("status") is not None:
            runtime._cancel_unrunnable(run)
            runtime._insert_end_event(run, run["status"])
        store.set_next_due(run_id, int(run.get("timer_seq", 0)), None)
        return fired
    deadline = as_datetime(run.get("redrive_deadline") or run.get("deadline"))
    if deadline is not None and deadline <= now:
        phases = len(run["config"]["phases"])
        # The end compare-and-set of rule 5 on the redrive this deadline belongs to: a sweep holding a
        # snapshot from before a cancel and a redrive cannot end the redriven run with the old deadline.
        redrive = int(run.get("redrive_count") or 0)
        if store.end_run(
            run_id, RunStatus.TIMED_OUT, phase_index=phases, at=now, keep_due=True, redrive=redrive
        ):
            logger.info("run %s timed out", run_id)
            fired["ended"] = RunStatus.TIMED_OUT.value
        latest = store.get_run(
            run_id, projection={"status": 1, "timer_seq": 1, "redrive_count": 1, "jobs": 1}
        )
        if latest is not None and latest.get("status") not in (None, RunStatus.RUNNING):
            runtime._cancel_unrunnable({"_id": run_id, "jobs": latest.get("jobs") or {}})  # rule 5
            ended = {"_id": run_id, "workflow": run["workflow"], "redrive_count": latest.get("redrive_count")}
            runtime._insert_end_event(ended, latest["status"])
            store.set_next_due(run_id, int(latest.get("timer_seq", 0)), None)
        return fired
    specs = _specs(run)
    latest_seq = int(run.get("timer_seq", 0))
    base: Doc = {**run, "jobs": dict(run["jobs"])}  # the freshest snapshot held, for the next due time
    handled: set[tuple[str, int]] = set()
    for name, job in run["jobs"].items():
        due = as_datetime(job.get("due"))
        if due is None or due > now or name not in specs:
            continue
        done = _fire_job(runtime, run_id, run["workflow"], name, job, specs[name], now, lean=False)
        if done is None:
            continue
        kind, after, expires = done
        fired[kind].append(name)
        if kind == "moved":
            latest_seq = max(latest_seq, int(after.get("timer_seq", latest_seq)))
            base["jobs"][name] = {**base["jobs"][name], "due": expires}
        elif kind == "expired":
            handled.add((name, int(job["attempt"])))
        else:
            base = {**after, "jobs": dict(after["jobs"])}
            latest_seq = max(latest_seq, int(after.get("timer_seq", latest_seq)))
    # The new lower bound, from the freshest snapshot held; refused if a timer was set since (seq).
    remaining = next_due(base, fired=frozenset(handled))
    store.set_next_due(run_id, latest_seq, remaining)
    return fired


def _fire_mapped(runtime: Runtime, run: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """``fire_run`` on a running run read with ``SWEEP_FIELDS``: the due jobs come from its ``timers``
    map, their specs from the handler's run cache, and only those jobs are read (one projected read).

    Every step is the same compare-and-set as on a whole read. The new ``next_due_ms`` is computed
    from the map as read (with this fire's moves, without its expired attempts), or after a retry was
    claimed from one more read of the map, and stored only if no timer was set since the ``timer_seq``
    it goes with (``set_next_due``).
    """
    from flowkit.runtime.store import RunCache, job_path, nested

    run_id = run["_id"]
    fired: dict[str, Any] = {"run_id": run_id, "expired": [], "retried": [], "moved": [], "ended": None}
    store = runtime.store
    timers: Mapping[str, Any] = run["timers"]
    names = sorted(name for name, due in timers.items() if (at := as_datetime(due)) is not None and at <= now)
    handled: set[tuple[str, int]] = set()
    # The map and timer_seq as the fires leave them (a move bumps timer_seq by one; more means a timer
    # was set by someone else meanwhile, and the stale seq makes set_next_due refuse, as it should).
    seq = int(run.get("timer_seq", 0))
    remaining: dict[str, Any] = dict(timers)
    retried = False
    if names:
        entry = runtime.run_cache.get(run_id)
        if entry is None or not RunCache.matches(entry, run):
            runtime.run_cache.discard(run_id)
            fixed = store.read_fixed(run_id)
            if fixed is None or not RunCache.matches(fixed, run):
                return fired  # deleted, or another run under the same id: its own sweep fires it
            entry = runtime.run_cache.put(fixed) or dict(fixed)
        specs = _specs(entry)
        projection = {f"{job_path(name)}.{field}": 1 for name in names for field in _JOB_TIMER_FIELDS}
        read = store.get_run(run_id, projection={**projection, "status": 1})
        jobs: Mapping[str, Any] = nested(read).get("jobs") or {} if read is not None else {}
        for name in names:
            job = jobs.get(name)
            due = as_datetime(job.get("due")) if job is not None else None
            if job is None or due is None or due > now or name not in specs:
                continue
            done = _fire_job(runtime, run_id, run["workflow"], name, job, specs[name], now, lean=True)
            if done is None:
                continue
            kind, after, expires = done
            fired[kind].append(name)
            if kind == "moved":
                if int(after.get("timer_seq", 0)) == seq + 1:
                    seq += 1
                    remaining[name] = expires
            elif kind == "expired":
                handled.add((name, int(job["attempt"])))
            else:
                retried = True
    if not retried:
        # The new lower bound, from the map as read and moved; refused if a timer was set since (seq).
        held = {"status": run["status"], "timers": remaining, "deadline": run.get("deadline")}
        held["redrive_deadline"] = run.get("redrive_deadline")
        held["jobs"] = {name: {"attempt": attempt, "timer": TimerKind.ATTEMPT} for name, attempt in handled}
        store.set_next_due(run_id, seq, mapped_next_due(held, handled))
        return fired
    # A retry claimed sets the new attempt's timer: the new lower bound from the map as it is now.
    after_fields = {"status": 1, "timer_seq": 1, "timers": 1, "deadline": 1, "redrive_deadline": 1}
    for name, _ in handled:
        after_fields.update({f"{job_path(name)}.attempt": 1, f"{job_path(name)}.timer": 1})
    latest = store.get_run(run_id, projection=after_fields)
    if latest is None:
        return fired
    latest = cast("RunDoc", nested(latest))
    store.set_next_due(run_id, int(latest.get("timer_seq", 0)), mapped_next_due(latest, handled))
    return fired


def mapped_next_due(
    run: Mapping[str, Any], fired: set[tuple[str, int]] | frozenset[tuple[str, int]]
) -> datetime | None:
    """``next_due`` from the run's ``timers`` map; ``run`` holds the attempt and timer of the jobs in
    ``fired`` (left out while still at that attempt with its deadline timer)."""
    if run.get("status") != RunStatus.RUNNING:
        return None
    jobs: Mapping[str, Any] = run.get("jobs") or {}
    dues = [as_datetime(run.get("redrive_deadline") or run.get("deadline"))]
    for name, due in (run.get("timers") or {}).items():
        job = jobs.get(name) or {}
        if (name, job.get("attempt")) in fired and job.get("timer") == TimerKind.ATTEMPT:
            continue
        dues.append(as_datetime(due))
    present = [due for due in dues if due is not None]
    return min(present) if present else None


def _fire_job(
    runtime: Runtime,
    run_id: str,
    workflow: str,
    name: str,
    job: Mapping[str, Any],
    spec: Mapping[str, Any],
    now: datetime,
    *,
    lean: bool,
) -> tuple[str, Mapping[str, Any], datetime | None] | None:
    """Fire the due timer of one job, the same compare-and-sets whatever was read of the run.

    An attempt past its deadline moves to a later one (a heartbeat came since) or times out (its
    ``timed_out`` event is inserted); a due retry is claimed and dispatched (``lean``: reading back
    only what the payload takes). Returns ``(kind, document, new due)``, ``kind`` being the ``fired``
    list it goes in: ``moved`` (the move's result and the new due time), ``expired``, ``retried`` (the
    run after the claim); None when nothing changed (another fire or the job's outcome came first).
    """
    from flowkit.runtime.store import make_status

    attempt = int(job["attempt"])
    if job.get("timer") == TimerKind.ATTEMPT and job.get("state") in OPEN_STATES:
        expires, error_type = attempt_due(spec, job)
        if expires is not None and expires > now:
            moved = runtime.store.move_timer(run_id, name, attempt, to=expires)
            if moved is None:
                return None
            runtime._arm(run_id, expires)
            return "moved", moved, expires
        error: ErrorDoc = {
            "type": error_type or ErrorType.TIMEOUT.value,
            "message": _timeout_message(spec, error_type),
        }
        runtime.store.insert_status(
            make_status(run_id, workflow, name, attempt, EventStatus.TIMED_OUT, error=error, time=now)
        )
        return "expired", {}, None
    if job.get("timer") == TimerKind.RETRY and job.get("state") == JobState.WAITING:
        after = runtime._claim_retry(cast("RunDoc", {"_id": run_id}), spec, attempt, now, lean=lean)
        return None if after is None else ("retried", after, None)
    return None


def _timeout_message(spec: Mapping[str, Any], error_type: str | None) -> str:
    if error_type == ErrorType.HEARTBEAT_TIMEOUT:
        return f"no heartbeat for {float(spec.get('heartbeat_seconds') or 0):g}s"
    return f"not finished within its timeout of {float(spec.get('timeout_seconds') or 0):g}s"


def sweep(
    runtime: Runtime, now: datetime, *, limit: int = 100, run_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """Fire the due timers of every run that has one (at most ``limit`` runs per query, until none).

    ``run_ids`` limits the sweep to those runs (the local environment's).
    """
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    while True:
        due = runtime.store.due_runs(
            now, limit=limit, run_ids=run_ids, projection=dict.fromkeys(SWEEP_FIELDS, 1)
        )
        batch = [run for run in due if run["_id"] not in seen]
        if not batch:
            return results
        for run in batch:
            seen.add(run["_id"])
            try:
                results.append(fire_run(runtime, run, now))
            except Exception:
                # One run's failure (e.g. a dispatch that raised) must not stop the others' timers;
                # its next_due stays due, so the next sweep tries again.
                logger.exception("firing the timers of run %s failed", run["_id"])
        if len(batch) < limit:
            return results


# ---------------------------------------------------------------------- the precise wake-up


class SqsWaker:
    """Arms a wake-up as an SQS message delayed until the due time (at most 15 minutes at a time).

    The message body is ``{"run_id": ..., "due": <ISO time>}``; the timer handler reads it from the
    queue's event source mapping, fires the run's due timers, and sends it again (delayed) while the
    due time is more than 15 minutes away.
    """

    def __init__(
        self,
        queue_url: str,
        client: Any = None,
        *,
        endpoint_url: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.queue_url = queue_url
        self._client = client
        self.endpoint_url = endpoint_url
        self.clock = clock or (lambda: datetime.now(UTC))

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs", endpoint_url=self.endpoint_url)
        return self._client

    def arm(self, run_id: str, due: datetime) -> None:
        delay = (due - self.clock()).total_seconds()
        body = json.dumps({"run_id": run_id, "due": due.isoformat()})
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            DelaySeconds=max(0, min(MAX_SQS_DELAY, int(delay + 0.999))),
        )


def parse_wake(record: Mapping[str, Any]) -> tuple[str, datetime | None] | None:
    """``(run_id, due)`` of an SQS wake-up record, or None (logged) when it is not one."""
    try:
        body = json.loads(record["body"])
        run_id = body["run_id"]
        due = as_datetime(body.get("due"))
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("ignoring a timer queue message that is not a wake-up: %s", exc)
        return None
    if not isinstance(run_id, str) or not run_id:
        logger.warning("ignoring a wake-up without a run id: %r", record.get("body"))
        return None
    return run_id, due
