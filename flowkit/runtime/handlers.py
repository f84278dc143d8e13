"""The three Lambda handlers: ``statemachine_job``, ``orchestrator_job``, ``notifications_job``.

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

import copy
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from flowkit.conditions import evaluate
from flowkit.errors import DispatchError, RunError, RunReplaced, UnknownRun
from flowkit.runtime import engine
from flowkit.runtime.dispatch import DEFAULT_PAYLOAD_LIMIT, Dispatcher, build_payload
from flowkit.runtime.documents import ErrorDoc, RunDoc, StatusDoc
from flowkit.runtime.store import RunCache, Store, end_event, make_status, nested, project
from flowkit.vocab import EventStatus, JobState, RunStatus

if TYPE_CHECKING:
    from flowkit.runtime.config import Settings
    from flowkit.runtime.notify import Notifier

__all__ = [
    "Runtime",
    "default_runtime",
    "destinations_job",
    "job_router",
    "notifications_job",
    "orchestrator_job",
    "starter_job",
    "statemachine_job",
]

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
"""A cache entry or a projected snapshot of a run (the counted path's own shapes)."""
Answer = dict[str, Any]
"""What a handler returns (logged by Lambda): ``{"run_id": ..., "action": ...}``."""
_OUTCOMES: Final[dict[str, JobState]] = {
    EventStatus.SUCCESS: JobState.SUCCEEDED,
    EventStatus.FAILED: JobState.FAILED,
}


def status_from_event(
    event: Mapping[str, Any], *, database: str | None = None, collection: str | None = None
) -> StatusDoc:
    """The status document carried by an EventBridge envelope, as a plain dict (``EventError`` if bad).

    ``database`` / ``collection``, when given, must be the namespace the event says it comes from.
    """
    from flowkit.runtime.events import parse_event

    return parse_event(dict(event), database=database, collection=collection).as_document()


class Runtime:
    """The handlers' logic with explicit collaborators.

    ``notifier`` (or ``notifier_factory``, called once on the first notification) sends messages;
    without either, ``notifications_job`` logs and does nothing. ``payload_limit`` defaults to the
    dispatcher's ``payload_limit`` attribute, else 1 MiB. ``rejections`` counts refused outcomes by
    reason (logged as warnings too).

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
    ) -> None:
        self.store = store
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
        """Record a job's ``success``/``failed`` outcome, advance the phase, end the run if it is over."""
        status = self._parse(event)
        if status["job"] is None or status["status"] not in _OUTCOMES:
            return self._ignored(status, "statemachine_job handles job-level success/failed only")
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
        else:
            config = self.store.read_notifications(status.run_id)
        if config is None:
            raise UnknownRun(f"run {status.run_id!r} does not exist", run_id=status.run_id)
        from flowkit.runtime.notify import NotifySettings, notify_event

        settings = NotifySettings.from_config(config, run_id=status.run_id)
        sent = notify_event(status, settings, notifier, run=run)
        return {"run_id": status.run_id, "action": "notified", "sent": sent}

    # ------------------------------------------------------------------ steps

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
        state = _OUTCOMES[status["status"]]
        run = self._read(
            run_id,
            lambda projection: self.store.record_outcome(
                run_id,
                job,
                attempt,
                state=state,
                output=status["output"] if state == JobState.SUCCEEDED else None,
                error=status["error"] if state == JobState.FAILED else None,
                at=status.get("time"),
                projection=projection,
            ),
        )
        if run is not None:
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
        if current["state"] == state and current["attempt"] == attempt:
            return run  # a duplicate delivery, or the other handler recorded it first
        self._reject(
            status,
            "state_mismatch",
            f"job {job!r} of run {run_id!r} is {current['state']!r} at attempt {current['attempt']}, "
            f"so a {status['status']!r} for attempt {attempt} cannot be recorded",
        )
        return None

    def _schedule(self, run: RunDoc) -> tuple[RunDoc, list[str], list[str]]:
        """Rules 3 and 4: claim and dispatch ready jobs, skip false-condition ones, until nothing changes."""
        claimed: list[str] = []
        skipped: list[str] = []
        seen: set[str] = set()
        while run.get("status") == RunStatus.RUNNING:
            decision = engine.decide(run)
            if decision.drain:
                # Rule 9: failing, with always jobs left: nothing else may start from now on.
                run = self._drain(run["_id"])
                continue
            specs = {spec["name"]: spec for spec in engine.job_specs(run)}
            progressed = False
            for name in decision.claim:
                if name in seen:
                    continue
                seen.add(name)
                won, after = self._claim_and_dispatch(run, specs[name])
                if after is not None:  # claimed, but its payload could not be sent: recorded failed
                    run, progressed = after, True
                elif won:
                    claimed.append(name)
            for name in decision.skip:
                if name in seen:
                    continue
                seen.add(name)
                after = self._skip(run["_id"], name, run["jobs"][name]["attempt"])
                if after is not None:
                    # The run *after* our skip: it holds every transition made before it (rule 5).
                    run, progressed = after, True
                    skipped.append(name)
            if not progressed:
                break
        return run, claimed, skipped

    def _drain(self, run_id: str) -> RunDoc:
        """Mark the run draining; the run after (or as it is, if it ended meanwhile)."""
        after = self._read(
            run_id, lambda projection: self.store.start_draining(run_id, projection=projection)
        ) or self._read(run_id, lambda projection: self.store.get_run(run_id, projection=projection))
        if after is None:
            raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
        return after

    def _skip(self, run_id: str, name: str, attempt: int) -> RunDoc | None:
        return self._read(
            run_id, lambda projection: self.store.skip(run_id, name, attempt, projection=projection)
        )

    def _claim_and_dispatch(self, run: RunDoc, spec: Mapping[str, Any]) -> tuple[bool, RunDoc | None]:
        """Claim one job and start it: ``(claimed, run after a recorded dispatch failure or None)``."""
        run_id, name = run["_id"], spec["name"]
        attempt = run["jobs"][name]["attempt"] + 1
        if not self.store.claim(run_id, name, attempt - 1, always=engine.is_always(spec)):
            return False, None  # someone else claimed it, or the run has ended
        try:
            payload = build_payload(run, spec, attempt, limit=self.payload_limit)
        except DispatchError as exc:
            # The job can never start with this payload: it fails like a job that failed itself,
            # so failure handling, the run's end and notifications all follow the usual path.
            logger.error("%s", exc)
            error: ErrorDoc = {"type": "DispatchError", "message": exc.message}
            after = self._read(
                run_id,
                lambda projection: self.store.record_outcome(
                    run_id, name, attempt, state=JobState.FAILED, error=error, projection=projection
                ),
            )
            self.store.insert_status(
                make_status(run_id, run["workflow"], name, attempt, EventStatus.FAILED, error=error)
            )
            return True, after
        try:
            # Copies: the run's config and input are shared with the run cache, and a dispatcher that
            # hands them to code in this process (the local runner) must not be able to change them.
            self.dispatcher.dispatch(copy.deepcopy(spec), copy.deepcopy(payload))
        except Exception:
            # Not started: give the claim back so the redelivered event (we re-raise) claims it again.
            released = self.store.release(run_id, name, attempt)
            logger.exception("dispatch of %s/%s failed (claim released: %s)", run_id, name, released)
            raise
        return True, None

    def _settle(self, run: RunDoc) -> str | None:
        """Rules 5 and 6: end the run if this snapshot shows it is over, else move the phase forward."""
        run_id = run["_id"]
        if run.get("status") != RunStatus.RUNNING:
            # Already ended: (re-)insert the end event; the unique key makes it harmless (rule 5).
            self._insert_end_event(run, run["status"])
            return None
        result = engine.outcome(run)
        if result is not None:
            phases = len(run["config"]["phases"])
            if self.store.end_run(run_id, result, phase_index=phases):
                logger.info("run %s %s", run_id, result)
                self._insert_end_event(run, result)
                return result
            return None
        index, phase = engine.current_phase(run)
        if index > run.get("phase_index", 0):
            self.store.advance_phase(run_id, index, phase)
        return None

    # ------------------------------------------------------------------ counted workflows (rules on counters)

    def _counted(self, run_id: str) -> Doc | None:
        """The run's cached fixed part if it is decided on its counters (``engine.Plan.counted``), else
        None: decided on whole reads."""
        entry = self._fixed(run_id)
        return entry if entry["plan"].counted else None

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
        state = _OUTCOMES[status["status"]]
        for retry in range(2):
            if retry:
                entry = self._fixed(run_id)
            plan: engine.Plan = entry["plan"]
            if job not in plan.specs:
                self._reject(status, "unknown_job", f"run {run_id!r} has no job {job!r}")
                return None
            projection = project(whole=(job,), ready=plan.dependents[job])
            after = self.store.record_outcome(
                run_id,
                job,
                attempt,
                state=state,
                output=status["output"] if state == JobState.SUCCEEDED else None,
                error=status["error"] if state == JobState.FAILED else None,
                at=status.get("time"),
                inc=engine.increments(plan, job, state),
                version=entry.get("version"),
                projection=projection,
            )
            snapshot = self._snapshot(run_id, entry, after)
            if snapshot is not None:
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
            if current["state"] == state and current["attempt"] == attempt:
                return entry, snapshot  # a duplicate delivery, or the other handler recorded it first
            self._reject(
                status,
                "state_mismatch",
                f"job {job!r} of run {run_id!r} is {current['state']!r} at attempt {current['attempt']}, "
                f"so a {status['status']!r} for attempt {attempt} cannot be recorded",
            )
            return None
        raise RunReplaced(f"run {run_id!r} was replaced while being read; retry", run_id=run_id)

    def _started_counted(self, run_id: str, entry: Doc, candidates: Sequence[str]) -> tuple[Doc, Doc]:
        """The fixed fields and a snapshot of the ``candidates`` jobs, for a ``started`` event."""
        for retry in range(2):
            if retry:
                entry = self._fixed(run_id)
            read = self.store.get_run(run_id, projection=project(ready=candidates))
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
        queue = deque(self._ready_beyond_skips(entry, run_id, snapshot, candidates))
        seen: set[str] = set()
        while queue:
            name, attempt = queue.popleft()
            if name in seen:
                continue
            seen.add(name)
            if engine.ended(snapshot) is not None or snapshot.get("status") != RunStatus.RUNNING:
                break
            spec = plan.specs[name]
            after: Doc | None = None
            if spec.get("condition") is not None and not self._holds(entry, run_id, spec):
                after = self._snapshot(
                    run_id,
                    entry,
                    self.store.skip(
                        run_id,
                        name,
                        attempt,
                        inc=engine.increments(plan, name, JobState.SKIPPED),
                        phase=plan.phase_of.get(name),
                        projection=project(ready=plan.dependents[name]),
                    ),
                )
                if after is not None:
                    skipped.append(name)
            else:
                won, after = self._claim_counted(entry, run_id, spec, attempt)
                if won and after is None:
                    claimed.append(name)
            if after is not None:
                # The run *after* our transition: it holds every transition made before it (rule 5).
                snapshot = after
                ready = engine.ready(after, plan.dependents[name])
                queue.extend((dependent, after["jobs"][dependent]["attempt"]) for dependent in ready)
        return snapshot, claimed, skipped

    def _ready_beyond_skips(
        self, entry: Doc, run_id: str, snapshot: Doc, candidates: Sequence[str]
    ) -> list[tuple[str, int]]:
        """``(job, attempt)`` of the ready candidates, and of the ready jobs behind skipped ones."""
        plan: engine.Plan = entry["plan"]
        found: list[tuple[str, int]] = []
        visited: set[str] = set()
        while candidates:
            jobs = snapshot.get("jobs", {})
            found += [(name, jobs[name]["attempt"]) for name in engine.ready(snapshot, candidates)]
            visited.update(candidates)
            behind = [
                dependent
                for name in candidates
                if jobs.get(name, {}).get("state") == JobState.SKIPPED
                for dependent in plan.dependents[name]
                if dependent not in visited
            ]
            if not behind:
                break
            read = self._snapshot(run_id, entry, self.store.get_run(run_id, projection=project(ready=behind)))
            if read is None:
                break
            snapshot, candidates = read, list(dict.fromkeys(behind))
        return found

    def _holds(self, entry: Doc, run_id: str, spec: Mapping[str, Any]) -> bool:
        """Evaluate a job's condition on the run input and the jobs it reads (one projected read)."""
        plan: engine.Plan = entry["plan"]
        reads = plan.reads.get(spec["name"], ())
        jobs: Doc = {}
        if reads:
            doc = self.store.get_run(
                run_id, projection=project(fields={name: ("state", "output", "error") for name in reads})
            )
            if doc is None:
                raise UnknownRun(f"run {run_id!r} does not exist", run_id=run_id)
            jobs = nested(doc).get("jobs", {})
        context = engine.condition_context({"input": entry.get("input"), "jobs": jobs})
        return bool(evaluate(spec["condition"], context))

    def _claim_counted(
        self, entry: Doc, run_id: str, spec: Mapping[str, Any], attempt: int
    ) -> tuple[bool, Doc | None]:
        """Claim one job and start it: ``(claimed, run after a recorded dispatch failure or None)``.

        The claim returns the outputs of the job's needs (terminal, so final) for its payload.
        """
        plan: engine.Plan = entry["plan"]
        name = spec["name"]
        needs = [need for need in dict.fromkeys(spec.get("needs", ())) if need in plan.specs]
        claimed = self.store.claim_and_read(
            run_id,
            name,
            attempt,
            projection=project(fields={need: ("output",) for need in needs}),
            phase=plan.phase_of.get(name),
        )
        if claimed is None:
            return False, None  # someone else claimed it, or the run has ended
        attempt += 1
        view = {
            "_id": run_id,
            "workflow": entry["workflow"],
            "input": entry.get("input"),
            "jobs": nested(claimed).get("jobs", {}),
        }
        try:
            payload = build_payload(view, spec, attempt, limit=self.payload_limit)
        except DispatchError as exc:
            # The job can never start with this payload: it fails like a job that failed itself,
            # so failure handling, the run's end and notifications all follow the usual path.
            logger.error("%s", exc)
            error: ErrorDoc = {"type": "DispatchError", "message": exc.message}
            after = self._snapshot(
                run_id,
                entry,
                self.store.record_outcome(
                    run_id,
                    name,
                    attempt,
                    state=JobState.FAILED,
                    error=error,
                    inc=engine.increments(plan, name, JobState.FAILED),
                    version=entry.get("version"),
                    projection=project(ready=plan.dependents[name]),
                ),
            )
            self.store.insert_status(
                make_status(run_id, entry["workflow"], name, attempt, EventStatus.FAILED, error=error)
            )
            return True, after
        try:
            # Copies: the run's config and input are shared with the run cache, and a dispatcher that
            # hands them to code in this process (the local runner) must not be able to change them.
            self.dispatcher.dispatch(copy.deepcopy(spec), copy.deepcopy(payload))
        except Exception:
            # Not started: give the claim back so the redelivered event (we re-raise) claims it again.
            released = self.store.release(run_id, name, attempt)
            logger.exception("dispatch of %s/%s failed (claim released: %s)", run_id, name, released)
            raise
        return True, None

    def _settle_counted(self, entry: Doc, snapshot: Doc) -> str | None:
        """Rule 5: end the run if the latest snapshot shows it is over (the counters say so)."""
        run_id = snapshot["_id"]
        run = {"_id": run_id, "workflow": entry["workflow"], "redrive_count": snapshot.get("redrive_count")}
        if snapshot.get("status") != RunStatus.RUNNING:
            # Already ended: (re-)insert the end event; the unique key makes it harmless (rule 5).
            self._insert_end_event(run, snapshot["status"])
            return None
        result = engine.ended(snapshot)
        if result is None:
            return None
        plan: engine.Plan = entry["plan"]
        if self.store.end_run(run_id, result, phase_index=plan.phases):
            logger.info("run %s %s", run_id, result)
            self._insert_end_event(run, result)
            return result
        return None

    def _insert_end_event(self, run: Mapping[str, Any], result: str) -> None:
        self.store.insert_status(end_event(run, result))

    def _get_notifier(self) -> Notifier | None:
        if self._notifier is None and self._notifier_factory is not None:
            with self._lock:
                if self._notifier is None and self._notifier_factory is not None:
                    self._notifier = self._notifier_factory()
                    self._notifier_factory = None
        return self._notifier


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

                _default = Runtime(
                    Store.from_settings(settings),
                    LambdaDispatcher(
                        payload_limit=settings.payload_limit_bytes, endpoint_url=settings.lambda_endpoint_url
                    ),
                    notifier_factory=notifier,
                )
    return _default


def statemachine_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    return default_runtime().statemachine_job(event, context)


def orchestrator_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    return default_runtime().orchestrator_job(event, context)


def notifications_job(event: Mapping[str, Any], context: Any = None) -> Answer:
    return default_runtime().notifications_job(event, context)


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
