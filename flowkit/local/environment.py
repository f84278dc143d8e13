"""A reusable local environment: one store, event bus, dispatcher and runtime, many runs through it.

    with LocalEnvironment() as env:                      # an embedded store, or mongo_uri=... / database=...
        first = env.run(nightly_etl, {"date": "2026-11-27"})
        second = env.run(order_pipeline, {"order_id": "o-1"}, mocks={"charge": failure("CardDeclined")})

The environment wires the production pieces together in one process: a store whose ``on_status`` hook
feeds the in-process event bus (where the Atlas trigger would fire), the three runtime handlers behind
the bus, and the local dispatcher that runs job bodies in a thread pool and reports through the
job-side ``Reporter``. ``run`` starts a run (``start_config``) and waits until it has ended and nothing
is left in flight, then returns the finished run. Runs go through one at a time (``run`` holds a
lock); each gets its own run id, bodies and mocks, and its own events.

A run can be cancelled while it goes: ``env.cancel(run_id)`` from another thread (the CLI does it on
Ctrl-C), or ``run(..., cancel_after=SECONDS)`` on the run's own clock (so a virtual clock jumps to it
like to any timer). Both go through ``flowkit.runtime.control.cancel_run``, as ``flowkit cancel`` does,
and ``run`` returns the cancelled run once the jobs that were already running have reported.
``env.start(...)`` runs in the background and returns a ``LocalRunHandle`` (``cancel``, ``wait``).

``env.redrive(workflow, run_id)`` takes a run of this environment's store that ended failed, timed out
or cancelled back to running (``flowkit.runtime.control.redrive_run``, Step Functions' semantics) and
carries it to its new end, with new mocks if given; a mock's outcomes per attempt count from the
redrive (its first attempt is outcome #1), like the job's retry budget.

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from flowkit.document import Run, StatusEvent
from flowkit.errors import BadArgument, ConfigError, RunError, StoreUnavailable
from flowkit.local._activity import Activity
from flowkit.local._target import check_runnable, resolve
from flowkit.local.bus import DeadLetter, EventBus
from flowkit.local.clock import Clock, ClockName, make_clock
from flowkit.local.dispatcher import LocalDispatcher
from flowkit.local.mocks import Mocks, mocks_from
from flowkit.local.result import LocalRun, RunLocation
from flowkit.local.timers import Scheduled, TimerLoop
from flowkit.runtime._uri import one_line, redact
from flowkit.runtime.config import Settings
from flowkit.vocab import JOB_TERMINAL_STATES, EventStatus, RunStatus

if TYPE_CHECKING:
    from flowkit.runtime.documents import RunDoc, StatusDoc

__all__ = ["LocalEnvironment", "LocalRunHandle"]

logger = logging.getLogger(__name__)

# how many unfinished jobs an error message names before it only counts the rest
_SHOWN = 10


@dataclass
class _Request:
    """A run of this environment being prepared: a cancel asked for before its document exists waits here."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False
    cancel: list[str | None] = field(default_factory=list)

    def defer(self, reason: str | None) -> bool:
        """Keep a cancel for when the run has started; False if it has (cancel it in the store)."""
        with self.lock:
            if self.started:
                return False
            self.cancel.append(reason)
            return True

    def begin(self) -> list[str | None]:
        """The run's document exists: the cancels asked for until now."""
        with self.lock:
            self.started = True
            return list(self.cancel)


@dataclass
class _Watch:
    """A run being waited for: set when the end event of redrive ``redrive`` (or a later one) arrives."""

    ended: threading.Event
    redrive: int = 0


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
            results=self.settings.results_collection,
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
        self._ended: dict[str, _Watch] = {}
        self._requests: dict[str, _Request] = {}
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
            watch = self._ended.get(str(doc.get("run_id")))
            # the end of the redrive being watched (a redrive re-inserts the end event of the one before)
            if watch is not None and int(doc.get("attempt") or 0) >= watch.redrive:
                watch.ended.set()

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
        cancel_after: float | timedelta | None = None,
    ) -> LocalRun:
        """Run ``workflow`` (a DSL workflow, a ``WorkflowDocument`` or a CLI target) to completion.

        ``mocks`` replaces job outcomes (see ``flowkit.local.mocks``); ``chaos`` overrides the
        environment's seed for this run. ``cancel_after`` (seconds or a ``timedelta``) cancels the run
        that long after it started, on the environment's clock (virtual time on a virtual clock), unless
        it ended before; ``cancel(run_id)`` cancels it from another thread. Raises ``InvalidMock``
        before starting if a job has neither a body nor a mock, ``RunError`` if the run has not ended
        after ``timeout`` seconds (wall clock) or stalls (naming the unfinished jobs).
        """
        prepared = self._prepare(workflow, input, mocks, cancel_after, run_id)
        return self._run_prepared(prepared, chaos, timeout, display, console)

    def start(
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
        cancel_after: float | timedelta | None = None,
    ) -> LocalRunHandle:
        """``run`` in a background thread: returns at once a handle to ``cancel`` the run and ``wait``.

        Bad input (an unknown target, a bad mock, a bad ``cancel_after``) raises here, before anything
        starts; errors of the run itself (a timeout, a stall) are raised by ``wait``.
        """
        prepared = self._prepare(workflow, input, mocks, cancel_after, run_id)
        handle = LocalRunHandle(self, prepared.run_id)
        handle._start(lambda: self._run_prepared(prepared, chaos, timeout, display, console))
        return handle

    def cancel(self, run_id: str, *, reason: str | None = None) -> bool:
        """Cancel a run, e.g. from another thread while ``run`` waits for it; True if this call did.

        The runtime's cancel (``flowkit.runtime.control.cancel_run``): the run ends ``cancelled`` once,
        pending and waiting jobs are cancelled, jobs already running finish and their outcomes are
        recorded and change nothing else; one ``cancelled`` event (notification ``run.cancelled``). A
        run of this environment that has not stored its document yet is cancelled as soon as it has.
        False: it was already cancelled. ``RunError`` if it ended otherwise, ``UnknownRun`` if no
        such run exists.
        """
        from flowkit.runtime.control import cancel_run

        if reason is not None and not isinstance(reason, str):
            raise RunError(f"a cancel reason is a string, got {reason!r}", run_id=run_id)
        request = self._requests.get(run_id)
        if request is not None and request.defer(reason):
            return True
        return cancel_run(self.store, run_id, reason=reason)

    def _prepare(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None,
        mocks: Mocks | Mapping[str, Any] | None,
        cancel_after: float | timedelta | None,
        run_id: str | None,
    ) -> _Prepared:
        runnable = resolve(workflow)
        document, bodies = runnable.document, runnable.bodies
        checked = mocks_from(mocks)
        check_runnable(document, bodies, checked)
        if input is not None and not isinstance(input, Mapping):
            raise RunError(f"the run input must be a JSON object, got {type(input).__name__}")
        delay = _cancel_after(cancel_after)
        run_id = run_id or new_run_id(document.name)
        return _Prepared(document, bodies, checked, dict(input or {}), run_id, delay)

    def _run_prepared(
        self,
        prepared: _Prepared,
        chaos: int | None,
        timeout: float,
        display: bool | None,
        console: Any,
        *,
        redrive: int = 0,
    ) -> LocalRun:
        run_id = prepared.run_id
        request = self._requests.setdefault(run_id, _Request())
        try:
            with self._lock:
                if self._closed:
                    raise RunError("this local environment is closed", run_id=run_id)
                machinery = self._assemble()
                machinery.bus.chaos = self.chaos if chaos is None else chaos
                machinery.dispatcher.register(
                    run_id, prepared.bodies, prepared.mocks, count_from_redrive=redrive > 0
                )
                watch = self._ended[run_id] = _Watch(threading.Event(), redrive)
                ended = watch.ended
                try:
                    return self._run(machinery, prepared, ended, request, timeout, display, console)
                finally:
                    del self._ended[run_id]
                    machinery.dispatcher.forget(run_id)
                    if not machinery.activity.idle:
                        # Work of this run is still in flight (a stuck job): the next run gets fresh pieces.
                        self._machinery = None
                        machinery.close()
        finally:
            self._requests.pop(run_id, None)

    def redrive(
        self,
        workflow: Any,
        run_id: str,
        *,
        mocks: Mocks | Mapping[str, Any] | None = None,
        chaos: int | None = None,
        timeout: float = 60,
        display: bool | None = None,
        console: Any = None,
        cancel_after: float | timedelta | None = None,
    ) -> LocalRun:
        """Redrive run ``run_id`` of this environment's store (it ended failed, timed out or cancelled)
        and carry it to its new end; returns the run as it then is.

        ``flowkit.runtime.control.redrive_run``: the jobs whose failure ended the run, the cancelled and
        unfinished ones, and the jobs decided on their outcome run again with a fresh attempt budget;
        succeeded jobs keep their outputs. ``workflow`` gives the job bodies: it must be the workflow
        the run was started with (same name and version), else ``RunError``. ``mocks`` replace the
        outcomes of this redrive, per attempt counted from the redrive. ``events`` of the result are
        the events this redrive inserted (its ``started``, at attempt = the new redrive count, to its end). ``RunError`` if the run
        cannot be redriven (it succeeded, or is running), ``UnknownRun`` for an unknown id.
        """
        from flowkit.runtime.control import REDRIVABLE, redrive_run

        prepared = self._prepare(workflow, None, mocks, cancel_after, run_id)
        stored = self.store.get_run(
            run_id, projection={"workflow": 1, "version": 1, "status": 1, "redrive_count": 1}
        )
        if stored is None:
            from flowkit.errors import UnknownRun

            raise UnknownRun(f"run {run_id!r} does not exist in {self._where()}", run_id=run_id)
        document = prepared.document
        if (stored.get("workflow"), stored.get("version")) != (document.name, document.version):
            raise RunError(
                f"run {run_id!r} is of workflow {stored.get('workflow')!r} version {stored.get('version')!r}; "
                f"the workflow given is {document.name!r} version {document.version!r}: redrive a run with "
                "the workflow it was started with",
                run_id=run_id,
                workflow=document.name,
            )
        status = stored.get("status")
        if status not in REDRIVABLE:
            raise RunError(
                f"run {run_id!r} is {status!r}: only a failed, timed-out or cancelled run can be redriven",
                run_id=run_id,
                workflow=document.name,
            )
        count = int(stored.get("redrive_count") or 0)
        again = replace(prepared, redrive=functools.partial(redrive_run, self.store, run_id))
        return self._run_prepared(again, chaos, timeout, display, console, redrive=count + 1)

    def _where(self) -> str:
        where = f"MongoDB {self._uri}" if self._uri else "the embedded in-process store"
        return f"{where}, database '{self._database_name}', collection '{self.settings.runs_collection}'"

    def _cancel_due(self, run_id: str, reason: str) -> None:
        """``cancel_after`` has come (on the timer loop's thread): cancel, unless the run ended first."""
        try:
            self.cancel(run_id, reason=reason)
        except RunError as exc:
            logger.debug("cancel_after of run %s: %s", run_id, exc)

    def _run(
        self,
        machinery: _Machinery,
        prepared: _Prepared,
        ended: threading.Event,
        request: _Request,
        timeout: float,
        display: bool | None,
        console: Any,
    ) -> LocalRun:
        from flowkit.runtime.control import cancel_run
        from flowkit.runtime.start import start_config

        document, input, run_id = prepared.document, prepared.input, prepared.run_id
        runs = self.database[self.settings.runs_collection]

        def fetch() -> dict[str, Any] | None:
            found: dict[str, Any] | None = runs.find_one({"_id": run_id})
            return found

        def final_run() -> dict[str, Any] | None:
            # the finished run with its big outputs and errors read back from the results collection
            found = fetch()
            return None if found is None else dict(self.store.resolve_run(cast("RunDoc", found)))

        def progress() -> dict[str, Any] | None:
            # what the live table shows, without the embedded configuration (the bulk of a run document)
            found: dict[str, Any] | None = runs.find_one(
                {"_id": run_id}, {"workflow": 1, "status": 1, "jobs": 1}
            )
            return found

        live = None
        if self.display if display is None else display:
            from flowkit.local.display import LiveDisplay

            live = LiveDisplay(progress, console=console or self.console, clock=self.clock)
        bus = machinery.bus
        delivered = bus.deliveries
        began = time.monotonic()
        scheduled: Scheduled | None = None
        try:
            if live is not None:
                live.__enter__()
            try:
                # Held busy until the run has started, so a virtual clock cannot move in between: the
                # run starts at the very time cancel_after counts from.
                machinery.activity.add()
                try:
                    if prepared.cancel_after is not None:
                        seconds = prepared.cancel_after
                        scheduled = machinery.timers.at(
                            self.clock() + timedelta(seconds=seconds),
                            functools.partial(self._cancel_due, run_id, f"cancel_after {seconds:g}s"),
                        )
                    if prepared.redrive is None:
                        # start_run without reading back the stored run as a model (the final read does)
                        start_config(self.store, document.model_dump(mode="json"), input, run_id=run_id)
                    else:
                        prepared.redrive()
                    asked = request.begin()
                    if asked:  # cancelled before its document existed
                        try:
                            cancel_run(self.store, run_id, reason=asked[0])
                        except RunError as exc:  # it ended already
                            logger.debug("cancel of run %s: %s", run_id, exc)
                finally:
                    machinery.activity.done()
                _wait(
                    ended,
                    machinery.activity,
                    run_id,
                    timeout,
                    began,
                    fetch,
                    lambda: bus.dead_letters,
                    lambda: scheduled is not None and scheduled.pending,
                )
            finally:
                if live is not None:
                    live.__exit__(None, None, None)
            elapsed = time.monotonic() - began
            final = final_run()
            if final is None:  # pragma: no cover - start_config wrote it
                raise RunError(f"run '{run_id}' disappeared from the store", run_id=run_id)
        finally:
            if scheduled is not None:
                scheduled.withdraw()
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


# --------------------------------------------------------------------------- handles


class LocalRunHandle:
    """A run started by ``LocalEnvironment.start``: ``cancel`` it, ``wait`` for its ``LocalRun``."""

    def __init__(self, environment: LocalEnvironment, run_id: str) -> None:
        self.environment = environment
        self.run_id = run_id
        self._result: LocalRun | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _start(self, work: Callable[[], LocalRun]) -> None:
        def body() -> None:
            try:
                self._result = work()
            except BaseException as exc:  # handed to wait()
                self._error = exc

        # registered now, so a cancel made before the thread gets going waits for the run's start
        self.environment._requests.setdefault(self.run_id, _Request())
        self._thread = threading.Thread(target=body, name=f"flowkit-run-{self.run_id}", daemon=True)
        self._thread.start()

    def cancel(self, reason: str | None = None) -> bool:
        """``LocalEnvironment.cancel`` of this run (also before it has stored its document)."""
        return self.environment.cancel(self.run_id, reason=reason)

    def done(self) -> bool:
        """Whether the run has returned (ended, or failed to)."""
        return self._thread is not None and not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> LocalRun:
        """The finished run (or the error the run raised); ``RunError`` if still going after ``timeout``."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RunError(f"run '{self.run_id}' is still going after {timeout:g}s", run_id=self.run_id)
        if self._error is not None:
            raise self._error
        if self._result is None:  # pragma: no cover - _start runs before the handle is handed out
            raise RunError(f"run '{self.run_id}' was never started", run_id=self.run_id)
        return self._result


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Prepared:
    """A run checked and ready to start: what ``run`` and ``start`` hand to the environment."""

    document: Any
    bodies: Mapping[str, Any]
    mocks: Mocks
    input: dict[str, Any]
    run_id: str
    cancel_after: float | None
    redrive: Callable[[], Any] | None = None
    """What starts the run again instead of ``start_config`` (``LocalEnvironment.redrive``)."""


def _cancel_after(value: float | timedelta | None) -> float | None:
    """``cancel_after`` in seconds: a number or a ``timedelta``, more than 0; None stays None."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise BadArgument(f"cancel_after must be seconds (a number) or a timedelta, got {value!r}")
    if not 0 < seconds < float("inf"):
        raise BadArgument(f"cancel_after must be a positive, finite number of seconds, got {value!r}")
    return seconds


def new_run_id(workflow: str) -> str:
    """A new run id: the workflow's name, the UTC time and 8 random hex digits."""
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
    scheduled: Callable[[], bool] = lambda: False,
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
                if document is not None and (document.get("next_due_ms") is not None or scheduled()):
                    time.sleep(0.02)  # waiting for a timer (a retry's backoff, a timeout): the loop fires it
                    continue
                raise RunError(
                    f"run '{run_id}' stalled: nothing is running or queued but the run has not ended; "
                    f"{_unfinished(document)}{_dead(dead_letters())}",
                    run_id=run_id,
                )
