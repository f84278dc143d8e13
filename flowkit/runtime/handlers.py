"""The Lambda handlers: ``statemachine_job``, ``orchestrator_job``, ``notifications_job``, ``timer_job``.

Each takes the EventBridge envelope of one inserted status document (Atlas trigger -> EventBridge)
and is idempotent: EventBridge may deliver an event twice, late, to the three handlers in any order,
and concurrently with other jobs' events. How that stays exactly-once is written down, rule by rule,
in ``docs/architecture.md``; the rule numbers in the comments below refer to it.

``Runtime`` holds the collaborators (store, dispatcher, notifier) and is what tests and the local
runner use. The module-level functions are the Lambda entry points
(``flowkit.runtime.handlers.orchestrator_job``): they share one ``Runtime`` per container, built on
first use from ``Settings.from_env()``.

Cold start: this module imports pymongo and the small pure modules only. The event parser and the
notifier are imported on first use.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from flowkit.conditions import evaluate
from flowkit.errors import (
    ConditionError,
    DispatchError,
    DispatchUncertain,
    LimitExceeded,
    RunError,
    RunReplaced,
    UnknownRun,
)
from flowkit.runtime import engine
from flowkit.runtime.dispatch import DEFAULT_PAYLOAD_LIMIT, Dispatcher, build_payload, copy_data
from flowkit.runtime.documents import ErrorDoc, RunDoc, StatusDoc
from flowkit.runtime.limits import clean_text, output_size_problem, short_text, value_problem
from flowkit.runtime.store import (
    RunCache,
    Store,
    end_event,
    make_status,
    nested,
    project,
    unrunnable_done,
)
from flowkit.vocab import FAILED_STATES, OPEN_STATES, EventStatus, JobState, RunStatus, is_valid_name

if TYPE_CHECKING:
    from flowkit.runtime.config import Settings
    from flowkit.runtime.notify import Notifier
    from flowkit.runtime.timers import Waker

__all__ = [
    "Runtime",
    "default_runtime",
    "destinations_job",
    "job_router",
    "notifications_job",
    "orchestrator_job",
    "starter_job",
    "statemachine_job",
    "timer_job",
]

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
"""A cache entry or a projected snapshot of a run (the counted path's own shapes)."""
Answer = dict[str, Any]
"""What a handler returns (logged by Lambda): ``{"run_id": ..., "action": ...}``."""
_OUTCOMES: Final[dict[str, JobState]] = {
    EventStatus.SUCCESS: JobState.SUCCEEDED,
    EventStatus.FAILED: JobState.FAILED,
    EventStatus.TIMED_OUT: JobState.TIMED_OUT,
}
# After a dispatch of a retry raised, how long until the retry is tried again (seconds).
_REDISPATCH_DELAY: Final = 1.0

# Error types of the failures flowkit records on its own (rule 8): the payload cannot be sent, the
# condition cannot be evaluated, the reported output cannot be stored or passed on unchanged.
DISPATCH_ERROR = "DispatchError"
CONDITION_ERROR = "ConditionError"
INVALID_OUTPUT = "InvalidOutput"
# Jobs of an ended run that can never run any more: cancelled when the run ends (rule 5).
_UNRUNNABLE = frozenset({JobState.PENDING.value, JobState.WAITING.value})


def status_from_event(
    event: Mapping[str, Any], *, database: str | None = None, collection: str | None = None
) -> StatusDoc:
    """The status document carried by an EventBridge envelope, as a plain dict (``EventError`` if bad).

    ``database`` / ``collection``, when given, must be the namespace the event says it comes from.
    """
    from flowkit.runtime.events import parse_event

    return parse_event(dict(event), database=database, collection=collection).as_document()


def _outcome_of(status: Mapping[str, Any]) -> tuple[JobState, Any, ErrorDoc | None, StatusDoc | None]:
    """``(state, output, error, owed event)`` to record for an outcome event.

    A ``success`` whose output cannot be stored or passed on unchanged (reported by something other
    than flowkit's job side: NaN, ``$`` keys, too deep) is recorded ``failed`` with ``InvalidOutput``
    instead of failing every delivery (rule 8); ``owed`` is then flowkit's ``failed`` event for it.
    """
    state = _OUTCOMES[status["status"]]
    if state != JobState.SUCCEEDED:
        return state, None, status["error"], None
    problem = value_problem(status["output"], "output")
    if problem is None:
        problem = output_size_problem(status["job"], status["output"])
        if problem is None:
            return state, status["output"], None, None
        return _failure(status, problem)
    message = f"the output reported for job {status['job']!r} cannot be stored unchanged: {problem}"
    return _failure(status, short_text(message))


def _refused(
    status: Mapping[str, Any], exc: LimitExceeded
) -> tuple[JobState, Any, ErrorDoc | None, StatusDoc | None]:
    """What to record when MongoDB refused the outcome: the run document would pass its limits."""
    return _failure(status, short_text(clean_text(exc.message)))


def _failure(
    status: Mapping[str, Any], message: str
) -> tuple[JobState, Any, ErrorDoc | None, StatusDoc | None]:
    error: ErrorDoc = {"type": INVALID_OUTPUT, "message": message}
    owed = make_status(
        status["run_id"],
        status["workflow"],
        status["job"],
        status["attempt"],
        EventStatus.FAILED,
        error=error,
        time=status.get("time"),  # the reported outcome's time (the job side's clock)
    )
    return JobState.FAILED, None, error, owed


def _payload_problem(exc: Exception, name: str, run_id: str) -> str:
    """Why the payload of a claimed job can never be sent: over the limit, or not JSON."""
    if isinstance(exc, DispatchError):
        return exc.message
    return (
        f"the payload of job {name!r} of run {run_id!r} cannot be encoded as JSON: "
        f"{type(exc).__name__}: {clean_text(exc)}"
    )


class Runtime:
    """The handlers' logic with explicit collaborators.

    ``notifier`` (or ``notifier_factory``, called once on the first notification) sends messages;
    without either, ``notifications_job`` logs and does nothing. ``payload_limit`` defaults to the
    dispatcher's ``payload_limit`` attribute, else 1 MiB. ``rejections`` counts refused outcomes by
    reason (logged as warnings too).

    ``waker`` (optional) is armed with every due time a transition sets: the precise wake-up of the
    timer handler (``flowkit.runtime.timers``); without one, the timer sweep schedule finds them.

    ``run_cache`` keeps the fixed part of up to ``cache_runs`` runs (their ``config``, ``input`` and
    ``workflow``): the first round trip for a run reads it whole, every later one only the fields that
    change (see ``RunCache``). ``cache_runs=0`` reads whole documents every time.
    """

    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        notifier: Notifier | None = None,
        *,
        notifier_factory: Callable[[], Notifier | None] | None = None,
        payload_limit: int | None = None,
        cache_runs: int = 128,
        waker: Waker | None = None,
    ) -> None:
        self.store = store
        self.waker = waker
        self.run_cache = RunCache(cache_runs)
        self.dispatcher = dispatcher
        self._notifier = notifier
        self._notifier_factory = notifier_factory
        self.payload_limit: int = payload_limit or int(
            getattr(dispatcher, "payload_limit", DEFAULT_PAYLOAD_LIMIT)
        )
        self.rejections: Counter[str] = Counter()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ entry points

    def statemachine_job(self, event: Mapping[str, Any], context: Any = None) -> Answer:
        """Record a job's ``success``/``failed``/``timed_out`` outcome, advance the phase, end the run if over."""
        status = self._parse(event)
        if status["job"] is None or status["status"] not in _OUTCOMES:
            return self._ignored(status, "statemachine_job handles job-level outcomes only")
        entry = self._counted(status["run_id"])
        if entry is not None:
            recorded = self._record_counted(status, entry)
            if recorded is None:
                return {"run_id": status["run_id"], "action": "rejected"}
            ended = self._settle_counted(*recorded)
            return {"run_id": status["run_id"], "action": "recorded", "ended": ended}
        run = self._record(status)
        if run is None:
            return {"run_id": status["run_id"], "action": "rejected"}
        ended = self._settle(run)
        return {"run_id": status["run_id"], "action": "recorded", "ended": ended}

    def orchestrator_job(self, event: Mapping[str, Any], context: Any = None) -> Answer:
        """On the run's ``started`` event and on job outcomes: skip and dispatch every ready job."""
        status = self._parse(event)
        if status["job"] is None:
            if status["status"] != EventStatus.STARTED:
                return self._ignored(status, "workflow-level end events need no orchestration")
            entry = self._counted(status["run_id"])
            if entry is not None:
                return self._orchestrate_counted(status, entry)
            run_id = status["run_id"]
            run = self._read(run_id, lambda projection: self.store.get_run(run_id, projection=projection))
            if run is None:
                raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
        elif status["status"] in _OUTCOMES:
            entry = self._counted(status["run_id"])
            if entry is not None:
                return self._orchestrate_counted(status, entry)
            # Rule 2: record the outcome first, so the decision below sees it (and every earlier one).
            run = self._record(status)
            if run is None:
                return {"run_id": status["run_id"], "action": "rejected"}
        else:
            return self._ignored(status, "a job's started event needs no orchestration")
        run, claimed, skipped = self._schedule(run)
        ended = self._settle(run)
        return {
            "run_id": status["run_id"],
            "action": "scheduled",
            "dispatched": claimed,
            "skipped": skipped,
            "ended": ended,
        }

    def _orchestrate_counted(self, status: Mapping[str, Any], entry: Doc) -> Doc:
        """``orchestrator_job`` on the counters: only the finished job's dependents are looked at."""
        if status["job"] is None:
            # The first start looks at the root jobs; a redrive's start (attempt = redrive count) at
            # every job, since the jobs it set back to pending can be anywhere in the workflow.
            plan: engine.Plan = entry["plan"]
            candidates: Sequence[str] = plan.roots if not status["attempt"] else tuple(plan.specs)
            entry, snapshot = self._started_counted(status["run_id"], entry, candidates)
            if status["attempt"]:
                candidates = tuple(entry["plan"].specs)
        else:
            # Rule 2: record the outcome first, so the decision below sees it (and every earlier one).
            recorded = self._record_counted(status, entry)
            if recorded is None:
                return {"run_id": status["run_id"], "action": "rejected"}
            entry, snapshot = recorded
            candidates = entry["plan"].dependents[status["job"]]
        snapshot, claimed, skipped = self._schedule_counted(entry, snapshot, candidates)
        ended = self._settle_counted(entry, snapshot)
        return {
            "run_id": status["run_id"],
            "action": "scheduled",
            "dispatched": claimed,
            "skipped": skipped,
            "ended": ended,
        }

    def notifications_job(self, event: Mapping[str, Any], context: Any = None) -> Doc:
        """Send the event to the configured channel if the run's notification settings ask for it."""
        from flowkit.runtime.events import parse_event

        status = parse_event(dict(event), **self._namespace())
        notifier = self._get_notifier()
        if notifier is None:
            logger.info("no notifier configured; %s not sent", status.key)
            return {"run_id": status.run_id, "action": "ignored", "sent": False}
        run: RunDoc | None = None
        if status.status is EventStatus.FAILED:
            # A failure: the whole run, to tell a handled failure from a paging one and to name the
            # jobs that failed a run (one read, on failures only).
            run = self.store.get_run(status.run_id)
            config = None if run is None else dict(run["config"].get("notifications") or {})
            if run is not None:
                run = self._notified_values(run)
        else:
            config = self.store.read_notifications(status.run_id)
        if config is None:
            raise UnknownRun(f"run {status.run_id!r} does not exist", run_id=status.run_id)
        from flowkit.runtime.notify import NotifySettings, notify_event

        settings = NotifySettings.from_config(config, run_id=status.run_id)
        sent = notify_event(status, settings, notifier, run=run)
        return {"run_id": status.run_id, "action": "notified", "sent": sent}

    # ------------------------------------------------------------------ steps

    def timer_job(self, event: Mapping[str, Any], context: Any = None) -> Doc:
        """Fire due timers: of the runs named by SQS wake-up messages, else (a schedule) of every run."""
        from flowkit.runtime import timers

        now = self.store.now()
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not records:
            fired = timers.sweep(self, now)
            return {"action": "swept", "runs": len(fired), "fired": fired}
        results = []
        for record in records:
            wake = timers.parse_wake(record)
            if wake is None:
                continue
            run_id, due = wake
            if due is not None and due > now:
                self._arm(run_id, due)  # further away than one SQS delay: wait again
                continue
            run = self.store.get_run(run_id, projection=dict.fromkeys(timers.SWEEP_FIELDS, 1))
            if run is not None:
                results.append(timers.fire_run(self, run, now))
        return {"action": "woken", "runs": len(results), "fired": results}

    # ------------------------------------------------------------------ steps

    def _retry_at(
        self,
        spec: Mapping[str, Any],
        state: str,
        attempt: int,
        error: Mapping[str, Any] | None,
        base: int = 0,
    ) -> datetime | None:
        """Rule 12: when the next attempt may start, if this outcome is a failure the policy retries.

        The attempt count is checked by the update itself (against the job's ``attempt_base``, which a
        redrive moves): here only whether the policy retries this error type at all. The backoff counts
        the attempts since ``base`` (the job's ``attempt_base``: a redrive's attempts start again at 1).
        """
        if state not in FAILED_STATES:
            return None
        if not engine.retryable(spec, 1, (error or {}).get("type")):
            return None
        return self.store.now() + timedelta(seconds=engine.retry_delay(spec, attempt - base))

    def _rebase_retry(
        self,
        run_id: str,
        job: str,
        spec: Mapping[str, Any],
        state: str,
        attempt: int,
        error: Mapping[str, Any] | None,
        after: Mapping[str, Any],
        retry_at: datetime,
    ) -> datetime:
        """The retry due time of a job just sent to ``waiting``, counted from its redrive.

        The update that recorded the failure computed the backoff from the attempt number alone (the
        job's ``attempt_base`` is only known once it is read back, in ``after``). For a job redriven
        (``attempt_base`` > 0) the due time is moved to the backoff of its attempt since the redrive,
        one compare-and-set on the job still waiting at ``attempt``; otherwise it stays.
        """
        entry = (nested(after).get("jobs") or {}).get(job)
        base = int(entry.get("attempt_base") or 0) if isinstance(entry, Mapping) else 0
        if base <= 0:
            return retry_at
        due = self._retry_at(spec, state, attempt, error, base=base)
        if due is None or not self.store.move_retry(run_id, job, attempt, to=due):
            return retry_at
        return due

    def _retrying(
        self,
        run_id: str,
        workflow: str,
        job: str,
        attempt: int,
        error: ErrorDoc | None,
        retry_at: datetime,
    ) -> None:
        """After the update that sent a job to ``waiting``: its ``retrying`` event, the wake-up armed.

        Only the caller that inserted the event arms the wake-up, so a repeated delivery that finds the
        event already there sends no second SQS message."""
        inserted = self.store.insert_status(
            make_status(
                run_id,
                workflow,
                job,
                attempt,
                EventStatus.RETRYING,
                output={"not_before": retry_at.isoformat(), "next_attempt": attempt + 1},
                error=error,
                time=self.store.now(),
            )
        )
        if inserted:
            self._arm(run_id, retry_at)

    def _reemit_retrying(
        self, run_id: str, workflow: str, job: str, attempt: int, current: Mapping[str, Any]
    ) -> None:
        """A repeated outcome that finds its attempt waiting for a retry inserts the ``retrying`` event
        again: the handler that recorded it may have died before inserting it (rule 8: every event
        flowkit owes is re-inserted by a later delivery; the unique key makes the repeat harmless)."""
        if current.get("state") != JobState.WAITING or current.get("attempt") != attempt:
            return
        due = current.get("due")
        if not isinstance(due, datetime):
            return  # a projection without the due time: the sweep's retry still happens
        history = (current.get("attempts") or {}).get(str(attempt))
        if isinstance(history, Mapping) and history.get("error_ref"):  # a big error: in the results
            resolved = self.store.resolve(run_id, {job: current}, errors=(job,), history=True)
            history = resolved[job]["attempts"][str(attempt)]
        error = history.get("error") if isinstance(history, Mapping) else None
        self._retrying(run_id, workflow, job, attempt, error, due)

    def _notified_values(self, run: RunDoc) -> RunDoc:
        """A failed run as a failure notification reads it: every job's error, and the outputs the
        failure paths' conditions read, fetched from the results collection where they are big."""
        jobs = run.get("jobs")
        if not isinstance(jobs, dict) or not isinstance(run.get("config"), Mapping):
            return run
        reads = {name for names in engine.Plan.of(run["config"]).reads.values() for name in names}
        resolved = self.store.resolve(run["_id"], jobs, outputs=reads, errors=None)
        return run if resolved is jobs else cast(RunDoc, {**run, "jobs": resolved})

    def _get_run(self, run_id: str, projection: Mapping[str, Any] | None) -> RunDoc | None:
        return self.store.get_run(run_id, projection=projection)

    def _arm(self, run_id: str, due: datetime) -> None:
        """Arm the precise wake-up for ``due`` (best effort: the sweep schedule is the backstop)."""
        if self.waker is None:
            return
        try:
            self.waker.arm(run_id, due)
        except Exception:
            logger.exception(
                "could not arm the wake-up of run %s at %s; the timer sweep will fire it", run_id, due
            )

    def _spec(self, run_id: str, job: str) -> Mapping[str, Any] | None:
        """The job's spec from the run's configuration (cached per container; one read otherwise)."""
        cached: Mapping[str, Any] | None = self.run_cache.get(run_id)
        if cached is None:
            fixed = self.store.read_fixed(run_id)
            if fixed is None:
                return None
            cached = self.run_cache.put(fixed) or fixed
        for spec in cached.get("config", {}).get("jobs", ()):
            if spec.get("name") == job:
                return spec  # type: ignore[no-any-return]
        return None

    def _namespace(self) -> dict[str, str]:
        return {"database": self.store.database.name, "collection": self.store.statuses.name}

    def _parse(self, event: Mapping[str, Any]) -> StatusDoc:
        return status_from_event(event, **self._namespace())

    def _ignored(self, status: StatusDoc, why: str) -> Answer:
        logger.debug("ignoring %s: %s", status["key"], why)
        return {"run_id": status["run_id"], "action": "ignored"}

    def _reject(self, status: Mapping[str, Any], reason: str, detail: str) -> None:
        with self._lock:
            self.rejections[reason] += 1
        logger.warning("rejected %s: %s", status["key"], detail)

    def _read(self, run_id: str, read: Callable[[dict[str, int] | None], RunDoc | None]) -> RunDoc | None:
        """One round trip ``read(projection)``, its result completed with the run's cached fixed fields.

        A run this container has not seen yet is read whole (and its fixed fields cached); a cached one
        only with ``LIVE_FIELDS``. The fixed fields never change during a run, so the completed document
        is the same snapshot as a whole read at that moment.
        """
        cached, projection = self.run_cache.projection(run_id)
        run = read(projection)
        if run is None:
            return None
        if cached is None:
            self.run_cache.put(run)
            return run
        if not RunCache.matches(cached, run):
            # The id names another run than the one cached (deleted and started again): read anew.
            self.run_cache.discard(run_id)
            fixed = self.store.read_fixed(run_id)
            if fixed is None or not RunCache.matches(fixed, run):
                raise RunReplaced(f"run {run_id!r} was replaced while being read; retry", run_id=run_id)
            cached = self.run_cache.put(fixed) or cast("dict[str, Any]", fixed)
        run.update(cast(RunDoc, cached))
        return run

    def _record(self, status: StatusDoc) -> RunDoc | None:
        """Rule 1: record the outcome (or find it already recorded); None when it is rejected."""
        run_id, job, attempt = status["run_id"], status["job"], status["attempt"]
        if job is None:
            return None  # a workflow-level event records no job outcome (the callers never send one)
        if not is_valid_name(job):
            # The name becomes part of a MongoDB path: 'a.output' would write into job a's output.
            self._reject(status, "invalid_job", f"{short_text(repr(job), 100)} is not a job name")
            return None
        state, output, error, owed = _outcome_of(status)
        try:
            run = self._record_outcome(run_id, job, attempt, state, output, error, status.get("time"))
        except LimitExceeded as exc:
            # The run document would pass MongoDB's limits with this output (rule 8).
            state, output, error, owed = _refused(status, exc)
            run = self._record_outcome(run_id, job, attempt, state, output, error, status.get("time"))
        if run is not None:
            self._emit_owed(owed)
            return run
        run = self._read(run_id, lambda projection: self.store.get_run(run_id, projection=projection))
        if run is None:
            raise UnknownRun(
                f"run {run_id!r} does not exist (event {status['key']!r})", run_id=run_id, job=job
            )
        current = run["jobs"].get(job)
        if current is None:
            self._reject(status, "unknown_job", f"run {run_id!r} has no job {job!r}")
            return None
        if _already_recorded(current, state, attempt):
            self._emit_owed(owed)
            self._reemit_retrying(run_id, run["workflow"], job, attempt, current)
            return run  # a duplicate delivery, or the other handler recorded it first
        self._reject(
            status,
            _rejection(current, attempt),
            f"job {job!r} of run {run_id!r} is {current['state']!r} at attempt {current['attempt']}, "
            f"so a {status['status']!r} for attempt {attempt} cannot be recorded",
        )
        return None

    def _emit_owed(self, owed: StatusDoc | None) -> None:
        """Insert flowkit's own event for a failure it recorded instead of the outcome reported.

        Every delivery of that outcome inserts it again (the unique key makes the repeat harmless),
        so a crash between recording the failure and inserting its event loses nothing (rule 8).
        """
        if owed is not None:
            self.store.insert_status(owed)

    def _record_outcome(
        self,
        run_id: str,
        job: str,
        attempt: int,
        state: str,
        output: Any,
        error: ErrorDoc | None,
        at: Any,
    ) -> RunDoc | None:
        """Rules 1 and 10: a failure the job's retry policy retries sends it to ``waiting`` (while the
        run is running and attempts are left); the handler whose update did it inserts the
        ``retrying`` event and arms the wake-up."""
        spec = self._spec(run_id, job) if state in FAILED_STATES else None
        retry_at = self._retry_at(spec, state, attempt, error) if spec is not None else None
        max_attempts = int((spec or {}).get("retry", {}).get("max_attempts", 1))

        def record(retry: datetime | None) -> RunDoc | None:
            return self._read(
                run_id,
                lambda projection: self.store.record_outcome(
                    run_id,
                    job,
                    attempt,
                    state=state,
                    output=output,
                    error=error,
                    at=at,
                    retry_at=retry,
                    max_attempts=max_attempts,
                    projection=projection,
                ),
            )

        run = record(retry_at)
        if run is None and retry_at is not None:
            run = record(None)  # not running any more, or no attempt left: the failure is final
        elif run is not None and retry_at is not None and spec is not None:
            retry_at = self._rebase_retry(run_id, job, spec, state, attempt, error, run, retry_at)
            self._retrying(run_id, run["workflow"], job, attempt, error, retry_at)
        return run

    def _schedule(self, run: RunDoc) -> tuple[RunDoc, list[str], list[str]]:
        """Rules 3 and 4: claim and dispatch ready jobs, skip false-condition ones, until nothing changes."""
        from flowkit.runtime.timers import attempt_due

        claimed: list[str] = []
        skipped: list[str] = []
        seen: set[str] = set()
        while run.get("status") == RunStatus.RUNNING:
            decision = engine.decide(self._with_read_values(run))
            if decision.drain:
                # Rule 9: failing, with always jobs left: nothing else may start from now on.
                run = self._drain(run["_id"], _redrive(run))
                continue
            specs = {spec["name"]: spec for spec in engine.job_specs(run)}
            progressed = False
            # Claim every ready job before starting any: the jobs made ready by one snapshot are all
            # claimed whatever the first of them does as soon as it starts (e.g. fail the run).
            won = []
            for name in decision.claim:
                if name in seen:
                    continue
                seen.add(name)
                attempt = run["jobs"][name]["attempt"]
                at = self.store.now()
                due, _ = attempt_due(specs[name], {"dispatched_at": at})
                if self.store.claim(
                    run["_id"],
                    name,
                    attempt,
                    at=at,
                    always=engine.is_always(specs[name]),
                    due=due,
                    redrive=_redrive(run),
                ):
                    won.append((name, attempt + 1))
                    if due is not None:
                        self._arm(run["_id"], due)
            for i, (name, attempt) in enumerate(won):
                try:
                    after = self._dispatch_claimed(run, specs[name], attempt)
                except Exception:
                    # This one's claim is released; so are those not started yet (rule 8).
                    for rest, rest_attempt in won[i + 1 :]:
                        self.store.release(run["_id"], rest, rest_attempt)
                    raise
                if after is not None:  # claimed, but its payload could not be sent: recorded failed
                    run, progressed = after, True
                else:
                    claimed.append(name)
            for name, why in decision.broken.items():
                if name in seen:
                    continue
                seen.add(name)
                attempt = run["jobs"][name]["attempt"] + 1
                if self.store.claim(
                    run["_id"], name, attempt - 1, always=engine.is_always(specs[name]), redrive=_redrive(run)
                ):
                    logger.error("run %s: %s", run["_id"], why)
                    run, progressed = self._fail_claimed(run, name, attempt, CONDITION_ERROR, why), True
            for name in decision.skip:
                if name in seen:
                    continue
                seen.add(name)
                after = self._skip(run["_id"], name, run["jobs"][name]["attempt"], _redrive(run))
                if after is not None:
                    # The run *after* our skip: it holds every transition made before it (rule 5).
                    run, progressed = after, True
                    skipped.append(name)
            if not progressed:
                break
        return run, claimed, skipped

    def _with_read_values(self, run: RunDoc) -> RunDoc:
        """``run`` with the big outputs and errors its conditions read fetched from the results collection."""
        entry = self.run_cache.get(run["_id"])
        plan = entry.get("plan") if entry is not None else None
        if plan is None:
            plan = engine.Plan.of(run["config"])
        reads = {name for names in plan.reads.values() for name in names}
        if not reads:
            return run
        jobs = self.store.resolve(run["_id"], run["jobs"], outputs=reads, errors=reads)
        return run if jobs is run["jobs"] else cast(RunDoc, {**run, "jobs": jobs})

    def _drain(self, run_id: str, redrive: int) -> RunDoc:
        """Mark the run draining; the run after (or as it is, if it ended or was redriven meanwhile)."""
        after = self._read(
            run_id,
            lambda projection: self.store.start_draining(run_id, projection=projection, redrive=redrive),
        ) or self._read(run_id, lambda projection: self.store.get_run(run_id, projection=projection))
        if after is None:
            raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
        return after

    def _skip(self, run_id: str, name: str, attempt: int, redrive: int) -> RunDoc | None:
        return self._read(
            run_id,
            lambda projection: self.store.skip(run_id, name, attempt, projection=projection, redrive=redrive),
        )

    def _dispatch_claimed(self, run: RunDoc, spec: Mapping[str, Any], attempt: int) -> RunDoc | None:
        """Start a job this handler claimed at ``attempt``; the run after a recorded failure, else None.

        Nothing may raise between a claim and its release or recorded failure (rule 8): a payload
        that can never be sent (over the limit, not JSON) fails the job; a dispatcher error releases
        the claim and is re-raised, unless the request may have reached the target
        (``DispatchUncertain``), when the claim is kept.
        """
        run_id, name = run["_id"], spec["name"]
        prepared = self._prepare(run, spec, attempt)
        if isinstance(prepared, str):
            return self._fail_claimed(run, name, attempt, DISPATCH_ERROR, prepared)
        self._send(run_id, name, attempt, *prepared)
        return None

    def _prepare(
        self, run: Mapping[str, Any], spec: Mapping[str, Any], attempt: int
    ) -> tuple[Any, Doc] | str:
        """What to hand the dispatcher for a claimed job, ``(spec, payload)``, or why it can never be sent.

        A payload that cannot be sent (over the limit, not JSON) makes the job fail like a job that
        failed itself, so failure handling, the run's end and notifications follow the usual path.
        """
        try:
            needs = [need for need in spec.get("needs", ()) if need in run["jobs"]]
            # big outputs of the needs live in the results collection: fetched in one query
            jobs = self.store.resolve(run["_id"], run["jobs"], outputs=needs)
            if jobs is not run["jobs"]:
                run = {**run, "jobs": jobs}
            payload = build_payload(run, spec, attempt, limit=self.payload_limit)
            # Copies: the run's config and input are shared with the run cache, and a dispatcher that
            # hands them to code in this process (the local runner) must not be able to change them.
            return copy_data(spec), copy_data(payload)
        except Exception as exc:
            message = _payload_problem(exc, spec["name"], run["_id"])
            logger.error("%s", message)
            return message

    def _send(
        self,
        run_id: str,
        name: str,
        attempt: int,
        spec: Mapping[str, Any],
        payload: Doc,
        inc: Mapping[str, int] | None = None,
    ) -> None:
        """Hand a claimed job to the dispatcher (rule 8 for its errors); ``inc``: what a release of the
        claim moves back (the counters its claim moved)."""
        try:
            self.dispatcher.dispatch(spec, payload)
        except DispatchUncertain:
            # Sent, then no answer: the job may be running. Sending it again could run it twice, so
            # the claim stays; the job's deadline recovers it if the request was in fact lost.
            logger.exception(
                "dispatch of %s/%s attempt %s may have reached its target", run_id, name, attempt
            )
        except Exception:
            # Not started: give the claim back so the redelivered event (we re-raise) claims it again.
            released = self.store.release(run_id, name, attempt, inc=inc)
            logger.exception("dispatch of %s/%s failed (claim released: %s)", run_id, name, released)
            raise

    def _fail_claimed(self, run: RunDoc, name: str, attempt: int, error_type: str, message: str) -> RunDoc:
        """Record a claimed job ``failed`` on flowkit's own account; the run after it.

        The ``failed`` status event is inserted first: once the failure is recorded its event exists,
        so it cannot be lost by a crash in between (a crash before the insert leaves the job
        ``dispatched``, like a crash before an invoke).
        """
        run_id = run["_id"]
        error: ErrorDoc = {"type": error_type, "message": short_text(clean_text(message))}
        status = make_status(
            run_id, run["workflow"], name, attempt, EventStatus.FAILED, error=error, time=self.store.now()
        )
        self.store.insert_status(status)
        after = self._record_outcome(run_id, name, attempt, JobState.FAILED, None, error, status["time"])
        if after is None:  # recorded meanwhile by a handler of the event just inserted
            after = self._read(run_id, lambda projection: self.store.get_run(run_id, projection=projection))
        if after is None:
            raise UnknownRun(f"run {run_id!r} disappeared", run_id=run_id, job=name)
        return after

    def _claim_retry(
        self, run: RunDoc, spec: Mapping[str, Any], attempt: int, now: datetime, *, lean: bool = False
    ) -> RunDoc | None:
        """Rule 12: a due retry: claim attempt ``attempt + 1`` of a waiting job and dispatch it.

        Returns the run after the claim (None if someone else claimed it). A payload that can never
        be sent fails the job (rule 8); a dispatch that raises puts the job back to ``waiting`` with
        its retry due again a little later (the claim is kept if the request may have arrived).
        ``lean``: on a run decided on its counters, the claim reads back only the needs' outputs (what
        the payload takes), and the run returned holds only those jobs.
        """
        from flowkit.runtime.timers import attempt_due

        run_id, name = run["_id"], spec["name"]
        due, _ = attempt_due(spec, {"dispatched_at": now})
        entry = self.run_cache.get(run_id) if lean else None
        after: RunDoc | None
        if entry is not None and entry.get("plan") is not None and _decided_on_counters(entry):
            plan: engine.Plan = entry["plan"]
            needs = [need for need in dict.fromkeys(spec.get("needs", ())) if need in plan.specs]
            claimed = self.store.claim_retry(
                run_id,
                name,
                attempt,
                at=now,
                due=due,
                projection=project(fields={need: ("output", "output_ref") for need in needs}),
            )
            if claimed is None:
                return None
            if not RunCache.matches(entry, claimed):
                self.run_cache.discard(run_id)
                raise RunReplaced(f"run {run_id!r} was replaced while being read; retry", run_id=run_id)
            after = cast(
                "RunDoc",
                {
                    **claimed,
                    "workflow": entry["workflow"],
                    "input": entry.get("input"),
                    "jobs": nested(claimed).get("jobs", {}),
                },
            )
        else:
            after = self._read(
                run_id,
                lambda projection: self.store.claim_retry(
                    run_id, name, attempt, at=now, due=due, projection=projection
                ),
            )
        if after is None:
            return None
        attempt += 1
        if due is not None:
            self._arm(run_id, due)
        prepared = self._prepare(after, spec, attempt)
        if isinstance(prepared, str):
            message = prepared
            entry = self.run_cache.get(run_id)
            if entry is not None and entry.get("plan") is not None and _decided_on_counters(entry):
                self._fail_claimed_counted(entry, run_id, name, attempt, DISPATCH_ERROR, message)
                return after
            failed = self._fail_claimed(after, name, attempt, DISPATCH_ERROR, message)
            self._settle(failed)
            return failed
        try:
            self.dispatcher.dispatch(*prepared)
        except DispatchUncertain:
            logger.exception("dispatch of retry %s/%s attempt %s may have arrived", run_id, name, attempt)
        except Exception:
            retry_at = now + timedelta(seconds=_REDISPATCH_DELAY)
            released = self.store.release(run_id, name, attempt, retry_at=retry_at)
            logger.exception("dispatch of retry %s/%s failed (back to waiting: %s)", run_id, name, released)
            if released:
                self._arm(run_id, retry_at)
            return None
        return after

    def _settle(self, run: RunDoc) -> str | None:
        """Rules 5 and 6: end the run if this snapshot shows it is over, else move the phase forward."""
        run_id = run["_id"]
        if run.get("status") != RunStatus.RUNNING:
            # Already ended: finish what the end owes (cancels, the end event); repeats are harmless.
            self._cancel_unrunnable(run)
            self._insert_end_event(run, run["status"])
            return None
        result = engine.outcome(run)
        if result is not None:
            phases = len(run["config"]["phases"])
            if self.store.end_run(run_id, result, phase_index=phases, redrive=_redrive(run)):
                logger.info("run %s %s", run_id, result)
                self._cancel_unrunnable(run)
                self._insert_end_event(run, result)
                return result
            return None
        index, phase = engine.current_phase(run)
        if index > run.get("phase_index", 0):
            self.store.advance_phase(run_id, index, phase)
        return None

    def _cancel_unrunnable(self, run: Mapping[str, Any]) -> list[str]:
        """Jobs of an ended run that can never run (pending, waiting) -> ``cancelled`` (rule 5)."""
        names = [name for name, job in run["jobs"].items() if job.get("state") in _UNRUNNABLE]
        return self.store.cancel_jobs(run["_id"], names) if names else []

    # ------------------------------------------------------------------ counted workflows (rules on counters)

    def _counted(self, run_id: str) -> Doc | None:
        """The run's cached fixed part if it is decided on its counters (``engine.Plan.counted``), else
        None: decided on whole reads."""
        entry = self._fixed(run_id)
        return entry if _decided_on_counters(entry) else None

    def _fixed(self, run_id: str) -> Doc:
        """The run's fixed fields and plan: from the cache, else one read (``UnknownRun`` if none)."""
        entry = self.run_cache.get(run_id)
        if entry is None:
            run = self.store.read_fixed(run_id)
            if run is None:
                raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
            entry = self.run_cache.put(run) or {}
            if "plan" not in entry:
                raise RunError(f"run {run_id!r} has no configuration", run_id=run_id)
        return entry

    def _snapshot(self, run_id: str, entry: Doc, doc: Mapping[str, Any] | None) -> Doc | None:
        """A projected read or update result, nested, checked to be the run ``entry`` describes.

        None when it is another run started under the same id (the cache entry is dropped: read again).
        """
        if doc is None:
            return None
        snapshot = nested(doc)
        if not RunCache.matches(entry, snapshot):
            self.run_cache.discard(run_id)
            return None
        if "remaining" not in snapshot:
            raise RunError(
                f"run {run_id!r} has no job counters: it was started by an older flowkit; "
                "finish it with that version or start it again",
                run_id=run_id,
            )
        return snapshot

    def _record_counted(self, status: Mapping[str, Any], entry: Doc) -> tuple[Doc, Doc] | None:
        """Rule 1: record the outcome (or find it already recorded); None when it is rejected.

        Returns the run's cached fixed fields and a snapshot taken at or after the outcome was recorded,
        holding the counters, the job and its dependents' ``READY_FIELDS``.
        """
        run_id, job, attempt = status["run_id"], status["job"], status["attempt"]
        if not is_valid_name(job):
            # The name becomes part of a MongoDB path: 'a.output' would write into job a's output.
            self._reject(status, "invalid_job", f"{short_text(repr(job), 100)} is not a job name")
            return None
        state, output, error, owed = _outcome_of(status)
        for retry in range(2):
            if retry:
                entry = self._fixed(run_id)
            plan: engine.Plan = entry["plan"]
            if job not in plan.specs:
                self._reject(status, "unknown_job", f"run {run_id!r} has no job {job!r}")
                return None
            projection = _ready_projection(plan, plan.dependents[job], whole=(job,))
            version = entry.get("version")
            try:
                after = self._record_on_counters(status, state, output, error, plan, version, projection)
            except LimitExceeded as exc:
                # The run document would pass MongoDB's limits with this output (rule 8).
                state, output, error, owed = _refused(status, exc)
                after = self._record_on_counters(status, state, output, error, plan, version, projection)
            snapshot = self._snapshot(run_id, entry, after)
            if snapshot is not None:
                self._emit_owed(owed)
                return entry, snapshot
            if after is not None:
                continue  # recorded on a run started again under this id: its own input is read next
            read = self.store.get_run(run_id, projection=projection)
            if read is None:
                raise UnknownRun(
                    f"run {run_id!r} does not exist (event {status['key']!r})", run_id=run_id, job=job
                )
            snapshot = self._snapshot(run_id, entry, read)
            if snapshot is None:
                continue  # another run under this id: read its configuration and try again
            current = snapshot.get("jobs", {}).get(job)
            if current is None:
                self._reject(status, "unknown_job", f"run {run_id!r} has no job {job!r}")
                return None
            if _already_recorded(current, state, attempt):
                self._emit_owed(owed)
                self._reemit_retrying(run_id, str(status["workflow"]), job, attempt, current)
                return entry, snapshot  # a duplicate delivery, or the other handler recorded it first
            self._reject(
                status,
                _rejection(current, attempt),
                f"job {job!r} of run {run_id!r} is {current['state']!r} at attempt {current['attempt']}, "
                f"so a {status['status']!r} for attempt {attempt} cannot be recorded",
            )
            return None
        raise RunReplaced(f"run {run_id!r} was replaced while being read; retry", run_id=run_id)

    def _record_on_counters(
        self,
        status: Mapping[str, Any],
        state: JobState,
        output: Any,
        error: ErrorDoc | None,
        inc_plan: engine.Plan,
        version: Any,
        projection: Mapping[str, Any],
    ) -> RunDoc | None:
        job, run_id, attempt = status["job"], status["run_id"], status["attempt"]
        spec = inc_plan.specs[job]
        retry_at = self._retry_at(spec, state, attempt, error)

        def record(retry: datetime | None) -> RunDoc | None:
            return _on_paths_left(
                inc_plan,
                job,
                state,
                lambda inc, require: self.store.record_outcome(
                    run_id,
                    job,
                    attempt,
                    state=state,
                    output=output,
                    error=error,
                    at=status.get("time"),
                    inc=inc,
                    version=version,
                    retry_at=retry,
                    max_attempts=int(spec.get("retry", {}).get("max_attempts", 1)),
                    projection=projection,
                    require=require,
                ),
            )

        after = record(retry_at)
        if after is None and retry_at is not None:
            after = record(None)  # not running any more, or no attempt left: the failure is final
        elif after is not None and retry_at is not None:
            retry_at = self._rebase_retry(run_id, job, spec, state, attempt, error, after, retry_at)
            self._retrying(run_id, str(status["workflow"]), job, attempt, error, retry_at)
        return after

    def _started_counted(self, run_id: str, entry: Doc, candidates: Sequence[str]) -> tuple[Doc, Doc]:
        """The fixed fields and a snapshot of the ``candidates`` jobs, for a ``started`` event."""
        for retry in range(2):
            if retry:
                entry = self._fixed(run_id)
            read = self.store.get_run(run_id, projection=_ready_projection(entry["plan"], candidates))
            if read is None:
                raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
            snapshot = self._snapshot(run_id, entry, read)
            if snapshot is not None:
                return entry, snapshot
        raise RunReplaced(f"run {run_id!r} was replaced while being read; retry", run_id=run_id)

    def _schedule_counted(
        self, entry: Doc, snapshot: Doc, candidates: Sequence[str]
    ) -> tuple[Doc, list[str], list[str]]:
        """Rules 3 and 4: claim and dispatch the ``candidates`` that are ready, skip false-condition ones.

        A skip (or a claimed job whose dispatch failed) may make its own dependents ready: they are
        taken in turn, from the document returned by that update. A candidate found already skipped
        (by an invocation that may have died before claiming what its skip made ready: skips have no
        event of their own) has its dependents looked at too. ``snapshot`` becomes the latest run
        document held (for rule 5).
        """
        plan: engine.Plan = entry["plan"]
        run_id = snapshot["_id"]
        claimed: list[str] = []
        skipped: list[str] = []
        queue: deque[tuple[str, int]] = deque()
        drained = False

        def drain(snapshot: Doc) -> Doc:
            """Rule 9: a snapshot showing the run failing with always jobs left: mark it draining (once)
            and take the always jobs that are ready on the document returned."""
            nonlocal drained
            if drained or not engine.draining(snapshot):
                return snapshot
            drained = True
            snapshot = self._drain_counted(entry, run_id, snapshot)
            jobs = snapshot.get("jobs", {})
            queue.extend((name, jobs[name]["attempt"]) for name in engine.ready(snapshot, plan.always, plan))
            return snapshot

        snapshot = drain(snapshot)
        queue.extend(self._ready_beyond_skips(entry, run_id, snapshot, candidates))
        seen: set[str] = set()
        # Claimed jobs are started once every ready job is claimed: what the first one does as soon as
        # it starts (fail the run) cannot keep the jobs made ready with it from starting.
        to_start: list[tuple[Mapping[str, Any], int, Doc]] = []
        while queue:
            name, attempt = queue.popleft()
            if name in seen:
                continue
            seen.add(name)
            if engine.ended(snapshot) is not None or snapshot.get("status") != RunStatus.RUNNING:
                break
            spec = plan.specs[name]
            after: Doc | None = None
            claimed_doc: Doc | None = None
            read: Doc = {}
            try:
                holds = True
                if spec.get("condition") is not None:
                    holds, read = self._holds(entry, run_id, spec)
            except ConditionError as exc:  # a stored condition this runtime cannot evaluate
                claimed_doc = self._claim_only(entry, run_id, spec, attempt, _redrive(snapshot))
                if claimed_doc is not None:
                    logger.error("run %s: %s", run_id, exc)
                    after = self._fail_claimed_counted(
                        entry, run_id, name, attempt + 1, CONDITION_ERROR, str(exc)
                    )
            else:
                if not holds:
                    after = self._skip_counted(entry, run_id, name, attempt, _redrive(snapshot), read)
                    if after is not None:
                        skipped.append(name)
                else:
                    claimed_doc = self._claim_only(entry, run_id, spec, attempt, _redrive(snapshot))
                    if claimed_doc is not None:
                        to_start.append((spec, attempt + 1, claimed_doc))
            if claimed_doc is not None and name in plan.handles:
                # A failure path claimed: the jobs its failed jobs gate may go ahead now (rule 3).
                taken = nested(claimed_doc)
                gated = _gated_by(plan, name)
                queue.extend((d, taken["jobs"][d]["attempt"]) for d in engine.ready(taken, gated, plan))
            if after is not None:
                # The run *after* our transition: it holds every transition made before it (rule 5).
                snapshot = drain(after)
                ready = engine.ready(after, plan.dependents[name], plan)
                queue.extend((dependent, after["jobs"][dependent]["attempt"]) for dependent in ready)
        for i, (spec, attempt, claimed_doc) in enumerate(to_start):
            try:
                after = self._start_counted(entry, run_id, spec, attempt, claimed_doc)
            except Exception:
                # This one's claim is released; so are those not started yet (rule 8).
                for rest, rest_attempt, _ in to_start[i + 1 :]:
                    self.store.release(
                        run_id,
                        rest["name"],
                        rest_attempt,
                        inc=engine.claim_increments(plan, rest["name"], claimed=False),
                    )
                raise
            if after is None:
                claimed.append(spec["name"])
            else:  # claimed, but its payload could not be sent: recorded failed
                snapshot = after
        return snapshot, claimed, skipped

    def _drain_counted(self, entry: Doc, run_id: str, snapshot: Doc) -> Doc:
        """Mark the run draining (unless the snapshot shows it is); the run after, with the ``always``
        jobs' ``READY_FIELDS`` and ``waits`` (read again if it ended or was redriven meanwhile)."""
        plan: engine.Plan = entry["plan"]
        projection = _ready_projection(plan, plan.always)
        after = None
        if not snapshot.get("draining"):
            after = self.store.start_draining(run_id, projection=projection, redrive=_redrive(snapshot))
        if after is None:
            after = self.store.get_run(run_id, projection=projection)
        return self._snapshot(run_id, entry, after) or snapshot

    def _ready_beyond_skips(
        self, entry: Doc, run_id: str, snapshot: Doc, candidates: Sequence[str]
    ) -> list[tuple[str, int]]:
        """``(job, attempt)`` of the ready candidates, and of the ready jobs behind skipped ones."""
        plan: engine.Plan = entry["plan"]
        found: list[tuple[str, int]] = []
        visited: set[str] = set()
        while candidates:
            jobs = snapshot.get("jobs", {})
            found += [(name, jobs[name]["attempt"]) for name in engine.ready(snapshot, candidates, plan)]
            visited.update(candidates)
            behind = [
                dependent
                for name in candidates
                if jobs.get(name, {}).get("state") == JobState.SKIPPED
                for dependent in plan.dependents[name]
                if dependent not in visited
            ]
            # A failure path found claimed (by an invocation that may have died before looking further):
            # the jobs gated by the failures it handles.
            behind += [
                dependent
                for name in candidates
                if name in plan.handles and jobs.get(name, {}).get("state") not in _NOT_CLAIMED
                for dependent in _gated_by(plan, name)
                if dependent not in visited
            ]
            if not behind:
                break
            read = self._snapshot(
                run_id, entry, self.store.get_run(run_id, projection=_ready_projection(plan, behind))
            )
            if read is None:
                break
            snapshot, candidates = read, list(dict.fromkeys(behind))
        return found

    def _holds(self, entry: Doc, run_id: str, spec: Mapping[str, Any]) -> tuple[bool, Doc]:
        """Evaluate a job's condition on the run input and the jobs it reads (one projected read).

        Returns the verdict and what was read: for a failure path, that includes the ``state`` and
        ``paths`` entry of every job it handles (terminal, so final: what its skip is decided on).
        """
        plan: engine.Plan = entry["plan"]
        reads = plan.reads.get(spec["name"], ())
        handles = plan.handles.get(spec["name"], ())
        doc: Doc = {}
        if reads or handles:
            fields: dict[str, tuple[str, ...]] = {
                name: ("state", "output", "error", "output_ref", "error_ref") for name in reads
            }
            for name in handles:
                fields.setdefault(name, ("state",))
            found = self.store.get_run(run_id, projection=project(fields=fields, paths=handles))
            if found is None:
                raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
            doc = nested(found)
        jobs = {name: job for name, job in doc.get("jobs", {}).items() if name in reads}
        # big outputs and errors live in the results collection: fetched in one query
        jobs = dict(self.store.resolve(run_id, jobs, outputs=reads, errors=reads))
        context = engine.condition_context({"input": entry.get("input"), "jobs": jobs})
        try:
            return bool(evaluate(spec["condition"], context)), doc
        except Exception as exc:  # a condition this runtime cannot evaluate: fail the job, never loop
            raise ConditionError(engine.condition_problem(spec["name"], spec["condition"], exc)) from exc

    def _skip_counted(
        self, entry: Doc, run_id: str, name: str, attempt: int, redrive: int, read: Doc
    ) -> Doc | None:
        """Skip a job whose condition is false; the run after the skip, or None if it lost.

        A skipped failure path takes one off ``paths.<job>.left`` of each job it handles; the skip that
        leaves a failed job no failure path adds one to ``unhandled`` (rule 3). Which one that is, is a
        compare-and-set on ``left`` of the failed jobs: tried on the values ``read`` (with the condition),
        read again when another failure path was skipped meanwhile.
        """
        plan: engine.Plan = entry["plan"]
        handled = plan.handles.get(name, ())
        projection = _ready_projection(plan, plan.dependents[name])
        for _ in range(2 * len(handled) + 2):
            jobs, paths = read.get("jobs", {}), read.get("paths") or {}
            failed = [n for n in handled if jobs.get(n, {}).get("state") in FAILED_STATES]
            last = [n for n in failed if (paths.get(n) or {}).get("left") == 1]
            require: dict[str, Any] = {f"paths.{n}.left": 1 if n in last else {"$gt": 1} for n in failed}
            # a handled job not failed as read must still not be: its failure, recorded meanwhile,
            # counted on the ``left`` this skip has not taken yet (``_on_paths_left``)
            require.update(
                {f"jobs.{n}.state": {"$nin": list(FAILED_STATES)} for n in handled if n not in failed}
            )
            after = self._snapshot(
                run_id,
                entry,
                self.store.skip(
                    run_id,
                    name,
                    attempt,
                    redrive=redrive,
                    inc=engine.increments(plan, name, JobState.SKIPPED, doomed=len(last)),
                    phase=plan.phase_of.get(name),
                    projection=projection,
                    require=require,
                ),
            )
            if after is not None or not handled:
                return after
            # Lost: the job was decided meanwhile, another failure path of a failed job was skipped, or
            # a job it handles failed.
            found = self.store.get_run(
                run_id,
                projection=project(
                    fields={name: ("state", "attempt"), **{n: ("state",) for n in handled}}, paths=handled
                ),
            )
            read = nested(found) if found is not None else {}
            job = read.get("jobs", {}).get(name, {})
            if (
                read.get("status") != RunStatus.RUNNING
                or _redrive(read) != redrive
                or job.get("state") != JobState.PENDING
                or job.get("attempt") != attempt
            ):
                return None
        raise RunError(f"run {run_id!r} kept changing while job {name!r} was skipped; retry", run_id=run_id)

    def _claim_only(
        self, entry: Doc, run_id: str, spec: Mapping[str, Any], attempt: int, redrive: int
    ) -> Doc | None:
        """Claim one job; the run after the claim with its needs' outputs (terminal, so final), or None."""
        from flowkit.runtime.timers import attempt_due

        plan: engine.Plan = entry["plan"]
        name = spec["name"]
        needs = [need for need in dict.fromkeys(spec.get("needs", ())) if need in plan.specs]
        at = self.store.now()
        due, _ = attempt_due(spec, {"dispatched_at": at})
        projection = project(fields={need: ("output", "output_ref") for need in needs})
        if name in plan.handles:  # a failure path: what it lets go ahead, read by the same update
            projection = {**projection, **_ready_projection(plan, _gated_by(plan, name))}
        claimed = self.store.claim_and_read(
            run_id,
            name,
            attempt,
            projection=projection,
            phase=plan.phase_of.get(name),
            at=at,
            due=due,
            redrive=redrive,
            sets=engine.claim_sets(plan, name),
            inc=engine.claim_increments(plan, name),
            always=name in plan.always,
        )
        if claimed is not None and due is not None:
            self._arm(run_id, due)
        return claimed

    def _start_counted(
        self, entry: Doc, run_id: str, spec: Mapping[str, Any], attempt: int, claimed: Doc
    ) -> Doc | None:
        """Start a job claimed at ``attempt``: None, or the run after its recorded failure (rule 8)."""
        name = spec["name"]
        view = {
            "_id": run_id,
            "workflow": entry["workflow"],
            "input": entry.get("input"),
            "jobs": nested(claimed).get("jobs", {}),
        }
        prepared = self._prepare(view, spec, attempt)
        if isinstance(prepared, str):
            return self._fail_claimed_counted(entry, run_id, name, attempt, DISPATCH_ERROR, prepared)
        self._send(
            run_id, name, attempt, *prepared, inc=engine.claim_increments(entry["plan"], name, claimed=False)
        )
        return None

    def _fail_claimed_counted(
        self, entry: Doc, run_id: str, name: str, attempt: int, error_type: str, message: str
    ) -> Doc | None:
        """``_fail_claimed`` on the counters: the failed event first, then the failure (rule 8)."""
        plan: engine.Plan = entry["plan"]
        error: ErrorDoc = {"type": error_type, "message": short_text(clean_text(message))}
        status = make_status(
            run_id, entry["workflow"], name, attempt, EventStatus.FAILED, error=error, time=self.store.now()
        )
        self.store.insert_status(status)
        projection = _ready_projection(plan, plan.dependents[name])
        after = _on_paths_left(
            plan,
            name,
            JobState.FAILED,
            lambda inc, require: self.store.record_outcome(
                run_id,
                name,
                attempt,
                state=JobState.FAILED,
                error=error,
                at=status["time"],
                inc=inc,
                version=entry.get("version"),
                projection=projection,
                require=require,
            ),
        )
        if after is None:  # recorded meanwhile by a handler of the event just inserted
            after = self.store.get_run(run_id, projection=projection)
        return self._snapshot(run_id, entry, after)

    def _settle_counted(self, entry: Doc, snapshot: Doc) -> str | None:
        """Rule 5: end the run if the latest snapshot shows it is over (the counters say so)."""
        run_id = snapshot["_id"]
        run = {"_id": run_id, "workflow": entry["workflow"], "redrive_count": snapshot.get("redrive_count")}
        plan: engine.Plan = entry["plan"]
        if snapshot.get("status") != RunStatus.RUNNING:
            # Already ended: finish what the end owes (cancels, the end event); repeats are harmless.
            self._cancel_unrunnable_counted(run_id, plan, snapshot)
            self._insert_end_event(run, snapshot["status"])
            return None
        result = engine.ended(snapshot)
        if result is None:
            return None
        if self.store.end_run(run_id, result, phase_index=plan.phases, redrive=_redrive(snapshot)):
            logger.info("run %s %s", run_id, result)
            self._cancel_unrunnable_counted(run_id, plan)
            self._insert_end_event(run, result)
            return result
        return None

    def _cancel_unrunnable_counted(
        self, run_id: str, plan: engine.Plan, snapshot: Mapping[str, Any] | None = None
    ) -> list[str]:
        """``_cancel_unrunnable`` for a run decided on counters: one read of every job's state, once.

        The read is skipped when ``snapshot`` (or that read) shows the cancels already done for the
        run's current redrive and release count (``unrunnable_done``); after cancelling, the run is
        marked so (a compare-and-set on what the read saw), so the handlers of the outcomes still
        arriving on an ended run read only their own jobs.
        """
        if snapshot is not None and unrunnable_done(snapshot):
            return []
        doc = self.store.get_run(run_id, projection=project(fields={name: ("state",) for name in plan.specs}))
        if doc is None or unrunnable_done(doc):
            return []
        jobs = nested(doc).get("jobs", {})
        names = [
            name for name, job in jobs.items() if isinstance(job, dict) and job.get("state") in _UNRUNNABLE
        ]
        cancelled = self.store.cancel_jobs(run_id, names) if names else []
        if doc.get("status") not in (None, RunStatus.RUNNING):
            self.store.mark_unrunnable_done(
                run_id, redrive=int(doc.get("redrive_count") or 0), released=int(doc.get("released") or 0)
            )
        return cancelled

    def _insert_end_event(self, run: Mapping[str, Any], result: str) -> None:
        self.store.insert_status(end_event(run, result, time=self.store.now()))

    def _get_notifier(self) -> Notifier | None:
        if self._notifier is None and self._notifier_factory is not None:
            with self._lock:
                if self._notifier is None and self._notifier_factory is not None:
                    self._notifier = self._notifier_factory()
                    self._notifier_factory = None
        return self._notifier


_NOT_CLAIMED: Final = frozenset({JobState.PENDING, JobState.SKIPPED, JobState.CANCELLED, None})
"""States of a failure path that was not (or not yet) claimed."""


def _decided_on_counters(entry: Mapping[str, Any]) -> bool:
    """Whether a cached run is decided on its counters: its plan allows it, and a run of a workflow
    with failure paths carries their counters (a run started by an older flowkit does not)."""
    plan: engine.Plan = entry["plan"]
    if not plan.counted:
        return False
    version = int(entry.get("counters") or 0)
    return (not plan.paths or version >= 2) and (not plan.always or version >= 3)


def _on_paths_left(
    plan: engine.Plan,
    job: str,
    state: str,
    record: Callable[[Mapping[str, int], Mapping[str, Any] | None], RunDoc | None],
) -> RunDoc | None:
    """Rule 1 on counters: ``record(inc, require)`` the outcome of ``job``; the run after, or None.

    A failure of a job with failure paths is unhandled if every one of them was skipped before it
    (``paths.<job>.left`` is 0: possible on a draining run, see ``engine.increments``): which of the two
    it is, is a compare-and-set on ``left``, tried with some left first (the usual case). A skip of its
    last failure path that races it requires the job not failed (``_skip_counted``), so exactly one of
    the two counts it.
    """
    if state not in FAILED_STATES or job not in plan.paths:
        return record(engine.increments(plan, job, state), None)
    after = record(engine.increments(plan, job, state), {f"paths.{job}.left": {"$gt": 0}})
    if after is None:
        after = record(engine.increments(plan, job, state, pathless=True), {f"paths.{job}.left": 0})
    return after


def _gated_by(plan: engine.Plan, path: str) -> list[str]:
    """The jobs gated by the jobs whose failure ``path`` handles (they wait for a failure path)."""
    return list(
        dict.fromkeys(d for handled in plan.handles.get(path, ()) for d in plan.gated.get(handled, ()))
    )


def _ready_projection(
    plan: engine.Plan, candidates: Sequence[str], *, whole: Sequence[str] = ()
) -> dict[str, int]:
    """``project(ready=candidates)``, plus the ``state`` and ``paths`` entry of their gates and the
    ``waits`` of the ``always`` ones."""
    gates = list(dict.fromkeys(need for name in candidates for need in plan.gates.get(name, ())))
    return project(
        whole=whole,
        ready=candidates,
        fields={need: ("state",) for need in gates},
        paths=gates,
        waits=[name for name in candidates if name in plan.always],
    )


def _redrive(run: Mapping[str, Any]) -> int:
    """The redrive a snapshot of the run belongs to (its ``redrive_count``; 0 before any)."""
    return int(run.get("redrive_count") or 0)


# ---------------------------------------------------------------------- Lambda entry points

_default: Runtime | None = None
_default_settings: Settings | None = None
_default_lock = threading.Lock()


def default_settings() -> Settings:
    """The settings the container's ``Runtime`` was built from (secrets already read)."""
    default_runtime()
    if _default_settings is None:  # pragma: no cover - set together with _default
        raise RuntimeError("the default runtime has no settings")
    return _default_settings


def default_runtime() -> Runtime:
    """The container's ``Runtime``, built once from ``Settings.from_env()`` (and ``resolve_secrets``)."""
    global _default, _default_settings
    if _default is None:
        with _default_lock:
            if _default is None:
                from flowkit.runtime.config import Settings, resolve_secrets
                from flowkit.runtime.dispatch import LambdaDispatcher

                # Secrets are read once per container (boto3 is imported only if one is configured).
                settings = _default_settings = resolve_secrets(Settings.from_env())

                def notifier() -> Notifier | None:
                    from flowkit.runtime.notify import notifier_from_settings

                    return notifier_from_settings(settings)

                waker = None
                if settings.timer_queue_url:
                    from flowkit.runtime.timers import SqsWaker

                    waker = SqsWaker(settings.timer_queue_url, endpoint_url=settings.sqs_endpoint_url)
                _default = Runtime(
                    Store.from_settings(settings),
                    LambdaDispatcher(
                        payload_limit=settings.payload_limit_bytes, endpoint_url=settings.lambda_endpoint_url
                    ),
                    notifier_factory=notifier,
                    waker=waker,
                )
    return _default


def statemachine_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    return default_runtime().statemachine_job(event, context)


def orchestrator_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    return default_runtime().orchestrator_job(event, context)


def notifications_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    return default_runtime().notifications_job(event, context)


def timer_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    """Fire due timers: an EventBridge schedule sweeps every run; SQS wake-up messages name one run."""
    return default_runtime().timer_job(event, context)


def starter_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    """Start a run of a published workflow: ``{"workflow", "input"?, "run_id"?}`` (``flowkit.runtime.starter``)."""
    from flowkit.runtime.starter import start_published

    return start_published(default_runtime().store, event, collection=default_settings().workflows_collection)


def destinations_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    """Turn a Lambda asynchronous-invocation result (destination record) into the job's status event."""
    from flowkit.runtime.destinations import handle_result

    return handle_result(default_runtime().store, event)


def job_router(event: Mapping[str, Any], context: Any = None) -> Any:
    """Run the ``@job`` body the payload names, reporting for it (``flowkit.runtime.router``)."""
    from flowkit.runtime.router import route

    return route(event, context, settings=default_settings)


def _rejection(job: Mapping[str, Any], attempt: int) -> str:
    """``stale``: an outcome for an attempt that is over (timed out, retried, finished); else a mismatch."""
    current = int(job.get("attempt", 0))
    if current > attempt or (current == attempt and job.get("state") not in OPEN_STATES):
        return "stale"
    return "state_mismatch"


def _already_recorded(job: Mapping[str, Any], state: str, attempt: int) -> bool:
    """Whether ``state`` at ``attempt`` is what the job already holds (a repeated outcome)."""
    if job.get("attempt") != attempt:
        return False
    if job.get("state") == state:
        return True
    if job.get("state") == JobState.WAITING:  # the failure was recorded and is being retried
        entry = (job.get("attempts") or {}).get(str(attempt))
        return isinstance(entry, Mapping) and entry.get("state") == state
    return False
