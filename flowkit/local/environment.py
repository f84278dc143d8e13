"""A reusable local environment: one store, event bus, dispatcher and runtime, many runs through it.

    with LocalEnvironment() as env:                      # an embedded store, or mongo_uri=... / database=...
        first = env.run(nightly_etl, {"date": "2026-11-27"})
        second = env.run(order_pipeline, {"order_id": "o-1"}, mocks={"charge": failure("CardDeclined")})

The environment wires the production pieces together in one process: a store whose ``on_status`` hook
feeds the in-process event bus (where the Atlas trigger would fire), the three runtime handlers behind
the bus, and the local dispatcher that runs job bodies in a thread pool and reports through the
job-side ``Reporter``. ``run`` starts a run with ``start_run`` and waits until it has ended and nothing
is left in flight, then returns the finished run. Runs go through one at a time (``run`` holds a
lock); each gets its own run id, bodies and mocks, and its own events.

A run that returns with work still in flight (it timed out, or ended while a job was stuck) leaves
the bus and the dispatcher busy: the environment then retires them and builds fresh ones for the next
run, so a stuck job of one run never delays another. ``flowkit.local.runner.run_workflow`` is the
one-call form: a new environment for one run.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from flowkit.document import Run, StatusEvent
from flowkit.errors import ConfigError, RunError, StoreUnavailable
from flowkit.local._activity import Activity
from flowkit.local._target import check_runnable, resolve
from flowkit.local.bus import DeadLetter, EventBus
from flowkit.local.clock import Clock, ClockName, make_clock
from flowkit.local.dispatcher import LocalDispatcher
from flowkit.local.mocks import Mocks, mocks_from
from flowkit.local.result import LocalRun, RunLocation
from flowkit.local.timers import TimerLoop
from flowkit.runtime._uri import one_line, redact
from flowkit.runtime.config import Settings
from flowkit.vocab import JOB_TERMINAL_STATES, EventStatus, RunStatus

if TYPE_CHECKING:
    from flowkit.runtime.documents import StatusDoc

__all__ = ["LocalEnvironment"]

logger = logging.getLogger(__name__)

# how many unfinished jobs an error message names before it only counts the rest
_SHOWN = 10


@dataclass
class _Machinery:
    """What runs the runs: the outstanding-work counter, the dispatcher and the bus around a runtime."""

    activity: Activity
    dispatcher: LocalDispatcher
    bus: EventBus
    timers: TimerLoop

    def close(self) -> None:
        self.timers.close()
        self.bus.close()
        self.dispatcher.close(wait=self.activity.idle)


class LocalEnvironment:
    """A store, an event bus, a dispatcher and the runtime handlers, reused by many ``run`` calls.

    The store is ``database`` (a pymongo ``Database``) if given, else MongoDB at ``mongo_uri``, else a
    fresh embedded store. Collection names come from ``settings`` (default: the environment).
    ``chaos=SEED`` makes the bus duplicate, reorder and delay deliveries (every run, unless ``run``
    says otherwise); ``workers`` is the size of the job thread pool; ``display=True`` shows each run's
    live table on stdout (or on ``console``, a rich ``Console``).

    ``clock`` is ``"wall"`` (the default), ``"virtual"`` or a clock object (``flowkit.local.clock``):
    every time the runtime records and every due time comes from it. The environment's timer loop
    fires the due timers of its own runs (a retry's backoff, a job's timeout or heartbeat, a run's
    timeout); on a virtual clock it jumps to the next due time whenever nothing else is in flight.
    """

    def __init__(
        self,
        *,
        database: Any = None,
        mongo_uri: str | None = None,
        settings: Settings | None = None,
        chaos: int | None = None,
        workers: int = 16,
        display: bool = False,
        console: Any = None,
        clock: ClockName | Clock | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.clock = make_clock(clock)
        self.chaos = chaos
        self.workers = workers
        self.display = display
        self.console = console
        self._lock = threading.Lock()
        self._closed = False
        self._client: Any = None
        self._uri = redact(mongo_uri) if mongo_uri else None
        self.database = self._open(database, mongo_uri)
        from flowkit.runtime.store import Store

        self.store = Store(
            self.database,
            runs=self.settings.runs_collection,
            statuses=self.settings.statuses_collection,
            on_status=self._publish,
            clock=self.clock,
        )
        try:
            self.store.ensure_indexes()
        except (
            Exception
        ) as exc:  # pymongo.errors.PyMongoError, without importing pymongo for the embedded store
            self._close_client()
            where = f"MongoDB {self._uri}" if self._uri else "embedded in-process store"
            raise StoreUnavailable(
                f"cannot use the store at {where}, database '{self._database_name}', collection "
                f"'{self.settings.runs_collection}': {one_line(exc, mongo_uri or '')}"
            ) from exc
        self._ended: dict[str, threading.Event] = {}
        self._machinery: _Machinery | None = None

    # ------------------------------------------------------------------ the pieces

    @property
    def _database_name(self) -> str:
        return str(getattr(self.database, "name", self.settings.database))

    def _open(self, database: Any, mongo_uri: str | None) -> Any:
        if database is not None:
            return database
        if mongo_uri:
            import pymongo

            options: dict[str, Any] = {"tz_aware": True}
            if "serverselectiontimeoutms" not in mongo_uri.lower():
                options["serverSelectionTimeoutMS"] = 5000
            try:
                self._client = pymongo.MongoClient(mongo_uri, **options)
            except (pymongo.errors.PyMongoError, ValueError) as exc:
                raise ConfigError(f"--mongo-uri {redact(mongo_uri)}: {exc}") from exc
            return self._client[self.settings.database]
        from flowkit.local.embedded import embedded_database

        return embedded_database(self.settings.database)

    def _assemble(self) -> _Machinery:
        """The bus, the dispatcher and the runtime behind them (built on first use, rebuilt if retired)."""
        if self._machinery is not None:
            return self._machinery
        from flowkit.runtime.handlers import Runtime
        from flowkit.runtime.report import Reporter

        activity = Activity()
        dispatcher = LocalDispatcher(Reporter(self.store), workers=self.workers, activity=activity)
        runtime = Runtime(self.store, dispatcher)
        envelope = functools.partial(
            _envelope, database=self._database_name, collection=self.settings.statuses_collection
        )
        bus = EventBus(
            {
                "statemachine_job": runtime.statemachine_job,
                "orchestrator_job": runtime.orchestrator_job,
                "notifications_job": runtime.notifications_job,
            },
            envelope,
            chaos=self.chaos,
            on_event=self._on_event,
            activity=activity,
        )
        # The timers of this environment's runs only: a shared MongoDB may hold other runs' timers.
        timers = TimerLoop(runtime, self.clock, activity, runs=lambda: list(self._ended))
        runtime.waker = timers
        self._machinery = _Machinery(activity, dispatcher, bus, timers.start())
        return self._machinery

    def _publish(self, doc: StatusDoc) -> None:
        machinery = self._machinery
        if machinery is not None:
            machinery.bus.publish(cast("dict[str, Any]", doc))

    def _on_event(self, doc: dict[str, Any]) -> None:
        if doc.get("job") is None and doc.get("status") != EventStatus.STARTED:
            ended = self._ended.get(str(doc.get("run_id")))
            if ended is not None:
                ended.set()

    # ------------------------------------------------------------------ runs

    def run(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None = None,
        *,
        mocks: Mocks | Mapping[str, Any] | None = None,
        chaos: int | None = None,
        timeout: float = 60,
        display: bool | None = None,
        console: Any = None,
        run_id: str | None = None,
    ) -> LocalRun:
        """Run ``workflow`` (a DSL workflow, a ``WorkflowDocument`` or a CLI target) to completion.

        ``mocks`` replaces job outcomes (see ``flowkit.local.mocks``); ``chaos`` overrides the
        environment's seed for this run. Raises ``InvalidMock`` before starting if a job has neither a
        body nor a mock, ``RunError`` if the run has not ended after ``timeout`` seconds or stalls
        (naming the unfinished jobs).
        """
        runnable = resolve(workflow)
        document, bodies = runnable.document, runnable.bodies
        mocks = mocks_from(mocks)
        check_runnable(document, bodies, mocks)
        if input is not None and not isinstance(input, Mapping):
            raise RunError(f"the run input must be a JSON object, got {type(input).__name__}")
        run_id = run_id or _new_run_id(document.name)
        with self._lock:
            if self._closed:
                raise RunError("this local environment is closed", run_id=run_id)
            machinery = self._assemble()
            machinery.bus.chaos = self.chaos if chaos is None else chaos
            machinery.dispatcher.register(run_id, bodies, mocks)
            ended = self._ended[run_id] = threading.Event()
            try:
                return self._run(
                    machinery, document, dict(input or {}), run_id, ended, timeout, display, console
                )
            finally:
                del self._ended[run_id]
                machinery.dispatcher.forget(run_id)
                if not machinery.activity.idle:
                    # Work of this run is still in flight (a stuck job): the next run gets fresh pieces.
                    self._machinery = None
                    machinery.close()

    def _run(
        self,
        machinery: _Machinery,
        document: Any,
        input: dict[str, Any],
        run_id: str,
        ended: threading.Event,
        timeout: float,
        display: bool | None,
        console: Any,
    ) -> LocalRun:
        from flowkit.runtime.start import start_run

        runs = self.database[self.settings.runs_collection]

        def fetch() -> dict[str, Any] | None:
            found: dict[str, Any] | None = runs.find_one({"_id": run_id})
            return found

        def progress() -> dict[str, Any] | None:
            # what the live table shows, without the embedded configuration (the bulk of a run document)
            found: dict[str, Any] | None = runs.find_one(
                {"_id": run_id}, {"workflow": 1, "status": 1, "jobs": 1}
            )
            return found

        live = None
        if self.display if display is None else display:
            from flowkit.local.display import LiveDisplay

            live = LiveDisplay(progress, console=console or self.console)
        bus = machinery.bus
        delivered = bus.deliveries
        began = time.monotonic()
        try:
            if live is not None:
                live.__enter__()
            try:
                start_run(self.store, document, input, run_id=run_id)
                _wait(ended, machinery.activity, run_id, timeout, began, fetch, lambda: bus.dead_letters)
            finally:
                if live is not None:
                    live.__exit__(None, None, None)
            elapsed = time.monotonic() - began
            final = fetch()
            if final is None:  # pragma: no cover - start_run wrote it
                raise RunError(f"run '{run_id}' disappeared from the store", run_id=run_id)
        finally:
            events, dead = bus.pop_run(run_id)
        return LocalRun(
            run=Run.model_validate(final),
            document=final,
            events=tuple(StatusEvent.model_validate(doc) for doc in events),
            dead_letters=tuple(dead),
            elapsed=elapsed,
            location=RunLocation(
                database=self._database_name,
                collection=self.settings.runs_collection,
                run_id=run_id,
                uri=self._uri,
            ),
            deliveries=bus.deliveries - delivered,
        )

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop the bus and the job pool and close the MongoDB client (if the environment opened one)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            machinery, self._machinery = self._machinery, None
        if machinery is not None:
            machinery.close()
        self._close_client()

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> LocalEnvironment:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers


def _new_run_id(workflow: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{workflow}-{stamp}-{uuid.uuid4().hex[:8]}"


def _envelope(doc: dict[str, Any], *, database: str, collection: str) -> dict[str, Any]:
    from flowkit.runtime.events import to_envelope

    # A random UUID without os.urandom (uuid4's default): that syscall, one per event, releases and
    # re-acquires the GIL and was a third of a 1,000-job run's samples.
    event_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
    return to_envelope(doc, database=database, collection=collection, event_id=event_id)


def _unfinished(document: Mapping[str, Any] | None) -> str:
    if document is None:
        return "the run document was never written"
    jobs = document.get("jobs", {})
    open_jobs = [
        f"{name} ({job.get('state')})"
        for name, job in jobs.items()
        if job.get("state") not in JOB_TERMINAL_STATES
    ]
    if not open_jobs:
        return "jobs not finished: none"
    shown = ", ".join(open_jobs[:_SHOWN])
    more = f" and {len(open_jobs) - _SHOWN} more" if len(open_jobs) > _SHOWN else ""
    return f"jobs not finished: {shown}{more}"


def _dead(letters: list[DeadLetter]) -> str:
    if not letters:
        return ""
    count = f"{len(letters)} deliver{'y' if len(letters) == 1 else 'ies'} dead-lettered"
    shown = "; ".join(f"{d.handler} on {d.key} after {d.attempts} attempts: {d.error}" for d in letters[:5])
    return f"; {count}: {shown}"


def _wait(
    ended: threading.Event,
    activity: Activity,
    run_id: str,
    timeout: float,
    began: float,
    fetch: Callable[[], dict[str, Any] | None],
    dead_letters: Callable[[], list[DeadLetter]],
) -> None:
    """Until the run ended and nothing is in flight; ``RunError`` on timeout or stall."""
    deadline = began + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if ended.is_set():
                # The run has ended (a failure ends it at once); jobs that were already running
                # may still report. Return the ended run rather than wait for them.
                logger.warning(
                    "run %s ended; gave up waiting for jobs still in flight after %gs", run_id, timeout
                )
                return
            raise RunError(
                f"run '{run_id}' did not finish within {timeout:g}s; {_unfinished(fetch())}", run_id=run_id
            )
        if activity.wait_idle(min(remaining, 0.5)):
            if ended.is_set():
                return
            # quiescent but not ended: recheck once, the end event may be in flight on another thread
            time.sleep(0.01)
            if activity.idle and not ended.is_set():
                document = fetch()
                if document is not None and document.get("status") != RunStatus.RUNNING:
                    return
                if document is not None and document.get("next_due_ms") is not None:
                    time.sleep(0.02)  # waiting for a timer (a retry's backoff, a timeout): the loop fires it
                    continue
                raise RunError(
                    f"run '{run_id}' stalled: nothing is running or queued but the run has not ended; "
                    f"{_unfinished(document)}{_dead(dead_letters())}",
                    run_id=run_id,
                )
