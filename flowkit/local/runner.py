"""Run a workflow to completion on this machine, through the real runtime.

``run_workflow`` wires the production pieces together in one process: a store (embedded, or MongoDB
with ``mongo_uri``) whose ``on_status`` hook feeds the in-process event bus (where the Atlas trigger
would fire), the three runtime handlers behind the bus, and the local dispatcher that runs job bodies
in a thread pool and reports through the job-side ``Reporter``. It starts the run with ``start_run``
and waits until the run has ended and nothing is left in flight, then returns the finished run.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowkit.document import JobRun, Run, StatusEvent
from flowkit.errors import ConfigError, RunError, StoreUnavailable
from flowkit.local._activity import Activity
from flowkit.local._target import Runnable, check_runnable, resolve
from flowkit.local.bus import DeadLetter, EventBus
from flowkit.local.dispatcher import LocalDispatcher
from flowkit.local.mocks import Mocks, mocks_from
from flowkit.runtime._uri import one_line, redact
from flowkit.runtime.config import Settings
from flowkit.vocab import JOB_TERMINAL_STATES, EventStatus, RunStatus

__all__ = ["LocalRun", "RunLocation", "Runnable", "check_runnable", "resolve", "run_workflow"]

logger = logging.getLogger(__name__)

# how many unfinished jobs an error message names before it only counts the rest
_SHOWN = 10


@dataclass(frozen=True)
class RunLocation:
    """Where the run document is stored."""

    database: str
    collection: str
    run_id: str
    uri: str | None = None

    def __str__(self) -> str:
        where = f"MongoDB {self.uri}" if self.uri else "embedded in-process store"
        return f"{where}, database '{self.database}', collection '{self.collection}', _id '{self.run_id}'"


@dataclass(frozen=True)
class LocalRun:
    """A finished local run: the stored run, every status event, dead letters, wall time."""

    run: Run
    document: dict[str, Any]
    events: tuple[StatusEvent, ...]
    dead_letters: tuple[DeadLetter, ...]
    elapsed: float
    location: RunLocation
    deliveries: int = 0
    """Handler invocations the bus made (chaos duplicates and retries included)."""

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def status(self) -> str:
        return self.run.status.value

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    @property
    def jobs(self) -> Mapping[str, JobRun]:
        """Job name -> ``JobRun`` (``state``, ``attempt``, ``output``, ``error``, timestamps)."""
        return self.run.jobs

    def to_json(self) -> str:
        """The final run document as JSON (dates as ISO-8601 strings)."""
        return json.dumps(self.run.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True)


# --------------------------------------------------------------------------- the run


def _new_run_id(workflow: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{workflow}-{stamp}-{uuid.uuid4().hex[:8]}"


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


def _open_database(
    database: Any, mongo_uri: str | None, settings: Settings, run_id: str
) -> tuple[Any, Any, RunLocation]:
    """``(database, client to close or None, location)``: the given one, MongoDB, or a new embedded one."""
    client: Any = None
    if database is None and mongo_uri:
        import pymongo

        options: dict[str, Any] = {"tz_aware": True}
        if "serverselectiontimeoutms" not in mongo_uri.lower():
            options["serverSelectionTimeoutMS"] = 5000
        try:
            client = pymongo.MongoClient(mongo_uri, **options)
        except (pymongo.errors.PyMongoError, ValueError) as exc:
            raise ConfigError(f"--mongo-uri {redact(mongo_uri)}: {exc}") from exc
        database = client[settings.database]
    elif database is None:
        from flowkit.local.embedded import embedded_database

        database = embedded_database(settings.database)
    location = RunLocation(
        database=str(getattr(database, "name", settings.database)),
        collection=settings.runs_collection,
        run_id=run_id,
        uri=redact(mongo_uri) if mongo_uri and client is not None else None,
    )
    return database, client, location


def run_workflow(
    workflow_or_document: Any,
    input: Mapping[str, Any] | None = None,
    *,
    mocks: Mocks | Mapping[str, Any] | None = None,
    chaos: int | None = None,
    database: Any = None,
    mongo_uri: str | None = None,
    timeout: float = 60,
    display: bool | None = None,
    settings: Settings | None = None,
    run_id: str | None = None,
    workers: int = 16,
    console: Any = None,
) -> LocalRun:
    """Run a workflow locally to completion and return the finished run.

    ``mocks`` replaces job outcomes (see ``flowkit.local.mocks``); ``chaos=SEED`` makes the bus
    duplicate, reorder and delay deliveries. The store is ``database`` (a pymongo ``Database``) if
    given, else MongoDB at ``mongo_uri``, else a fresh embedded store. Collection names come from
    ``settings`` (default: the environment). ``display=True`` shows the live table on stdout (or on ``console``, a rich ``Console``).

    Raises ``InvalidMock`` before starting if a job has neither a body nor a mock, ``RunError`` if
    the run has not ended after ``timeout`` seconds or stalls (naming the unfinished jobs).
    """
    from flowkit.runtime.handlers import Runtime
    from flowkit.runtime.report import Reporter
    from flowkit.runtime.start import start_run
    from flowkit.runtime.store import Store

    runnable = resolve(workflow_or_document)
    document, bodies = runnable.document, runnable.bodies
    mocks = mocks_from(mocks)
    check_runnable(document, bodies, mocks)
    if input is not None and not isinstance(input, Mapping):
        raise RunError(f"the run input must be a JSON object, got {type(input).__name__}")
    settings = settings or Settings.from_env()
    run_id = run_id or _new_run_id(document.name)

    database, client, location = _open_database(database, mongo_uri, settings, run_id)
    activity = Activity()
    ended = threading.Event()

    def on_event(doc: dict[str, Any]) -> None:
        if (
            doc.get("job") is None
            and doc.get("run_id") == run_id
            and doc.get("status") != EventStatus.STARTED
        ):
            ended.set()

    bus: EventBus | None = None

    def on_status(doc: dict[str, Any]) -> None:
        if bus is not None:
            bus.publish(doc)

    store = Store(
        database, runs=settings.runs_collection, statuses=settings.statuses_collection, on_status=on_status
    )
    try:
        store.ensure_indexes()
    except Exception as exc:  # pymongo.errors.PyMongoError, without importing pymongo for the embedded store
        if client is not None:
            client.close()
        reason = one_line(exc, mongo_uri or "")
        raise StoreUnavailable(f"cannot use the store at {location}: {reason}") from exc
    dispatcher = LocalDispatcher(Reporter(store), bodies, mocks, workers=workers, activity=activity)
    runtime = Runtime(store, dispatcher)
    envelope = functools.partial(
        _envelope, database=location.database, collection=settings.statuses_collection
    )
    bus = EventBus(
        {
            "statemachine_job": runtime.statemachine_job,
            "orchestrator_job": runtime.orchestrator_job,
            "notifications_job": runtime.notifications_job,
        },
        envelope,
        chaos=chaos,
        on_event=on_event,
        activity=activity,
    )
    runs = database[settings.runs_collection]

    def fetch() -> dict[str, Any] | None:
        found: dict[str, Any] | None = runs.find_one({"_id": run_id})
        return found

    def progress() -> dict[str, Any] | None:
        # what the live table shows, without the embedded configuration (the bulk of a run document)
        found: dict[str, Any] | None = runs.find_one({"_id": run_id}, {"workflow": 1, "status": 1, "jobs": 1})
        return found

    live = None
    if display:
        from flowkit.local.display import LiveDisplay

        live = LiveDisplay(progress, console=console)
    began = time.monotonic()
    try:
        if live is not None:
            live.__enter__()
        try:
            start_run(store, document, dict(input or {}), run_id=run_id)
            _wait(ended, activity, run_id, timeout, began, fetch, lambda: bus.dead_letters if bus else [])
        finally:
            if live is not None:
                live.__exit__(None, None, None)
        elapsed = time.monotonic() - began
        final = fetch()
        if final is None:  # pragma: no cover - start_run wrote it
            raise RunError(f"run '{run_id}' disappeared from the store", run_id=run_id)
        events = tuple(StatusEvent.model_validate(doc) for doc in bus.events if doc.get("run_id") == run_id)
        return LocalRun(
            run=Run.model_validate(final),
            document=final,
            events=events,
            dead_letters=tuple(bus.dead_letters),
            elapsed=elapsed,
            location=location,
            deliveries=bus.deliveries,
        )
    finally:
        bus.close()
        dispatcher.close(wait=activity.idle)
        if client is not None:
            client.close()


def _envelope(doc: dict[str, Any], *, database: str, collection: str) -> dict[str, Any]:
    from flowkit.runtime.events import to_envelope

    # A random UUID without os.urandom (uuid4's default): that syscall, one per event, releases and
    # re-acquires the GIL and was a third of a 1,000-job run's samples.
    event_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
    return to_envelope(doc, database=database, collection=collection, event_id=event_id)


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
                raise RunError(
                    f"run '{run_id}' stalled: nothing is running or queued but the run has not ended; "
                    f"{_unfinished(document)}{_dead(dead_letters())}",
                    run_id=run_id,
                )
