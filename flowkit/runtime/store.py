"""The MongoDB side of the runtime: its collections, their indexes, and the atomic transitions.

Every state change is one single-document conditional update (a compare-and-set on the job's state
and attempt, or on the run's status): never a read-modify-write of a whole document. The rules these
methods implement are in ``docs/architecture.md`` ("The rules that make it correct").

Only the portable subset of MongoDB is used, so the same code runs on MongoDB 4.4+ / Atlas, Amazon
DocumentDB and Azure Cosmos DB for MongoDB: ``insert_one``, ``find_one`` (with projection),
``find_one_and_update`` / ``update_one`` with equality and ``$in`` / ``$lt`` filters, ``$set`` and
``$inc``, and a unique index. No transactions, no aggregation-pipeline updates.

Outputs and errors beyond ``vocab.INLINE_LIMIT`` go to the results collection (``keep``, before the
compare-and-set that references them) and are fetched back only where needed (``resolve``); see
``flowkit.runtime.results``.

Documents are plain dicts here: this module is imported by the Lambda handlers and stays free of
pydantic (see the cold-start notes in ``docs/runtime.md``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DocumentTooLarge, DuplicateKeyError, OperationFailure

from flowkit import vocab
from flowkit.errors import LimitExceeded, RunError
from flowkit.runtime import results as _results
from flowkit.runtime.documents import ErrorDoc, RunDoc, StatusDoc
from flowkit.runtime.engine import Plan
from flowkit.vocab import (
    FAILED_STATES,
    RUN_END_EVENTS,
    JobState,
    RunStatus,
    TimerKind,
    is_valid_name,
    status_key,
)

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

    from flowkit.runtime.config import Settings

__all__ = [
    "COUNTERS",
    "FIXED_FIELDS",
    "IDENTITY",
    "LIVE_FIELDS",
    "OPEN_STATES",
    "READY_FIELDS",
    "RunCache",
    "Store",
    "end_event",
    "epoch_ms",
    "from_epoch_ms",
    "job_path",
    "make_status",
    "nested",
    "now",
    "project",
    "status_key",
    "unrunnable_done",
    "unrunnable_mark",
]

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
"""A document as pymongo reads and writes it; the typed shapes are in ``flowkit.runtime.documents``."""
StatusHook = Callable[[StatusDoc], None]

# A job that has been handed to its target and has not finished yet.
OPEN_STATES: Final = vocab.OPEN_STATES

# A run's fields that never change once it is inserted: the handlers read them once per container
# (``RunCache``), together with ``IDENTITY`` that tells this run from a later one with the same id.
FIXED_FIELDS: Final = ("workflow", "config", "input", "deadline", "counters")
IDENTITY: Final = ("version", "created_at")
# What a handler reads of a run it has cached: the fields that change, plus the identity check.
LIVE_FIELDS: Final = (
    "status",
    "phase_index",
    "jobs",
    "draining",
    "redrive_count",
    "redrive_deadline",
    "timer_seq",
    "next_due_ms",
    *IDENTITY,
)
# What a counted transition reads back besides the jobs it touches: enough to settle the run.
COUNTERS: Final = (
    "status",
    "remaining",
    "unhandled",
    "always_left",
    "draining",
    "redrive_count",
    "released",
    "unrunnable_done",
    *IDENTITY,
)


def now() -> datetime:
    """The current UTC time at MongoDB's precision (milliseconds), so a stored time reads back equal."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def make_status(
    run_id: str,
    workflow: str,
    job: str | None,
    attempt: int,
    status: str,
    *,
    output: Any = None,
    error: ErrorDoc | None = None,
    time: datetime | None = None,
) -> StatusDoc:
    """A document for the ``statuses`` collection (``job=None`` for workflow-level events)."""
    return {
        "key": status_key(run_id, job, attempt, status),
        "run_id": run_id,
        "workflow": workflow,
        "job": job,
        "attempt": attempt,
        "status": str(status),
        "output": output,
        "error": cast(ErrorDoc, dict(error)) if error is not None else None,
        "time": time or now(),
    }


def _same_redrive(query: Doc, redrive: int | None) -> Doc:
    """Add to ``query``: the run is still in the redrive ``redrive`` (its ``redrive_count``; None: any).

    A handler that decided on a snapshot of the run before a cancel and a redrive must not claim,
    skip or end anything in the redriven run (rule 11): the compare-and-set on the status alone would
    see ``running`` again.
    """
    if redrive is not None:
        query["redrive_count"] = redrive if redrive else {"$in": [None, 0]}
    return query


def unrunnable_mark(redrive: int, released: int) -> str:
    """The ``unrunnable_done`` value of an ended run whose unrunnable jobs were cancelled as of the
    ``redrive_count`` ``redrive`` and the ``released`` count ``released`` (``mark_unrunnable_done``)."""
    return f"{redrive}:{released}"


def unrunnable_done(run: Mapping[str, Any]) -> bool:
    """Whether ``run`` (a snapshot with ``COUNTERS``) is ended with its unrunnable jobs already cancelled:
    its mark is that of its current redrive and release count, so no job can be pending or waiting."""
    mark = run.get("unrunnable_done")
    if mark is None or run.get("status") in (None, RunStatus.RUNNING):
        return False
    return bool(mark == unrunnable_mark(int(run.get("redrive_count") or 0), int(run.get("released") or 0)))


def _run(doc: Doc | None) -> RunDoc | None:
    """A run document as read by pymongo, typed (pymongo's collections are untyped dicts)."""
    return cast("RunDoc | None", doc)


def end_event(
    run: Mapping[str, Any], status: str, *, output: Any = None, time: datetime | None = None
) -> StatusDoc:
    """The workflow-level event of a run ending as ``status`` (a ``RunStatus``), at ``time``.

    Its attempt is the run's ``redrive_count``, so each redrive of a run ends with an event of its own
    (``r-1/*/0/failed``, then ``r-1/*/1/success``), and ending the same time twice inserts once.
    Callers pass their store's clock (``Store.now``), so a run on a virtual clock ends on that clock.
    """
    return make_status(
        run["_id"],
        run["workflow"],
        None,
        int(run.get("redrive_count") or 0),
        RUN_END_EVENTS[RunStatus(status)],
        output=output,
        time=time,
    )


# MongoDB's error codes for a write over its limits: nesting depth (Overflow), document size.
_LIMIT_CODES: Final = frozenset({15, 10334, 17419, 17420})


def job_path(job: str) -> str:
    """``jobs.<job>``: the MongoDB path of a job; ``RunError`` for a name that is not a job name.

    A name with ``.`` or ``$`` would address another field (``a.output`` is job ``a``'s output), so
    every name is checked before it becomes part of a path.
    """
    if not is_valid_name(job):
        shown = repr(job) if len(repr(job)) <= 100 else repr(job)[:97] + "..."
        raise RunError(f"{shown} is not a job name (letters, digits, '_' and '-' only)")
    return f"jobs.{job}"


def _over_limit(exc: Exception) -> bool:
    """Whether MongoDB (or pymongo, before sending) refused a write for its size or nesting depth."""
    return isinstance(exc, DocumentTooLarge) or (
        isinstance(exc, OperationFailure) and exc.code in _LIMIT_CODES
    )


def _set_timer(update: Doc, prefix: str, due: datetime, kind: str) -> None:
    """Add to ``update``: the job's timer (``due``, ``timer`` kind), and keep ``next_due_ms`` a lower bound.

    ``$min`` keeps the run's ``next_due_ms`` at or before every due time it holds; ``timer_seq`` tells a
    sweep computing a new ``next_due_ms`` that a timer was set meanwhile (``set_next_due``). The run's
    ``timers`` map (job -> due) mirrors every job's due time, so a sweep finds the due jobs without
    reading the jobs; every write that clears a due time unsets its entry (``_clear_timer``).
    """
    job = prefix.removeprefix("jobs.")
    update.setdefault("$set", {}).update(
        {f"{prefix}.due": due, f"{prefix}.timer": kind, f"timers.{job}": due}
    )
    update.setdefault("$min", {})["next_due_ms"] = epoch_ms(due)
    update.setdefault("$inc", {})["timer_seq"] = 1


def _clear_timer(update: Doc, prefix: str) -> None:
    """Add to ``update``: the job has no timer (``due``/``timer`` None, its ``timers`` entry unset)."""
    update.setdefault("$set", {}).update({f"{prefix}.due": None, f"{prefix}.timer": None})
    update.setdefault("$unset", {})[f"timers.{prefix.removeprefix('jobs.')}"] = ""


def epoch_ms(at: datetime) -> int:
    """``at`` as integer milliseconds since the epoch: the sweep key ``next_due_ms`` (rule 12)."""
    return int(at.timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _pluck(doc: Mapping[str, Any], *path: str) -> Any:
    """Read a dotted path out of a projected document.

    MongoDB returns a projection on ``a.b`` nested (``{"a": {"b": ...}}``). The nx-27017 stand-in
    returns it flattened (``{"a.b": ...}``); accepting both keeps the store on MongoDB's semantics
    while the over-the-wire tests still run against the stand-in.
    """
    value: Any = doc
    for i, key in enumerate(path):
        if isinstance(value, Mapping) and key in value:
            value = value[key]
            continue
        flat = ".".join(path[i:])
        if isinstance(value, Mapping) and flat in value:
            return value[flat]
        return None
    return value


def nested(doc: Mapping[str, Any]) -> Doc:
    """A projected document with dotted keys nested, as MongoDB returns it.

    MongoDB returns a projection on ``jobs.a.state`` nested (``{"jobs": {"a": {"state": ...}}}``); the
    nx-27017 stand-in returns it flattened (``{"jobs.a.state": ...}``). This accepts both.
    """
    out: Doc = {}
    for key, value in doc.items():
        if "." not in key:
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                _merge(out[key], value)
            else:
                out[key] = value
            continue
        *parents, last = key.split(".")
        target = out
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        if isinstance(value, dict) and isinstance(target.get(last), dict):
            _merge(target[last], value)
        else:
            target[last] = value
    return out


def _merge(into: Doc, value: Mapping[str, Any]) -> None:
    for key, item in value.items():
        if isinstance(item, dict) and isinstance(into.get(key), dict):
            _merge(into[key], item)
        else:
            into[key] = item


# What a transition reads of the jobs it may make ready: enough to tell and to claim them.
READY_FIELDS: Final = ("state", "attempt", "unmet")


def project(
    *,
    whole: Iterable[str] = (),
    ready: Iterable[str] = (),
    fields: Mapping[str, Iterable[str]] | None = None,
    paths: Iterable[str] = (),
    waits: Iterable[str] = (),
) -> dict[str, int]:
    """A projection of ``COUNTERS`` plus some jobs: ``whole`` entries, ``READY_FIELDS`` of ``ready``
    ones, and ``fields`` (job -> field names); and the ``paths`` entries of some jobs (rule 3), the
    ``waits`` of some ``always`` jobs (rule 9). A job
    asked for in several ways is read whole or with the union of its fields, never both (MongoDB
    refuses overlapping paths)."""
    wanted: dict[str, set[str] | None] = {}
    for name in whole:
        wanted[name] = None
    for name in ready:
        if name not in wanted:
            wanted[name] = set(READY_FIELDS)
        elif wanted[name] is not None:
            wanted[name] |= set(READY_FIELDS)  # type: ignore[operator]
    for name, names in (fields or {}).items():
        if name not in wanted:
            wanted[name] = set(names)
        elif wanted[name] is not None:
            wanted[name] |= set(names)  # type: ignore[operator]
    result = dict.fromkeys(COUNTERS, 1)
    for name, subset in wanted.items():
        if subset is None:
            result[f"jobs.{name}"] = 1
        else:
            result.update(dict.fromkeys((f"jobs.{name}.{field}" for field in sorted(subset)), 1))
    for name in paths:
        result[f"paths.{name}"] = 1
    for name in waits:
        result[f"waits.{name}"] = 1
    return result


class RunCache:
    """The fixed part of recently seen runs (``FIXED_FIELDS`` + ``IDENTITY``), least recently used out.

    A run's compiled ``config`` (every job's needs, condition, target, input), its ``input`` and its
    ``workflow`` never change while it runs, and ``config`` is most of a run document's bytes. The
    handlers keep them here, keyed by run id, and read every other time only ``LIVE_FIELDS``
    (``projection()``), so a round trip moves the jobs' states and outputs but not the configuration.
    The cached fields are shared, read-only dicts: never mutate a completed document's ``config`` or
    ``input``. Thread-safe.
    """

    def __init__(self, max_runs: int = 128) -> None:
        if not isinstance(max_runs, int) or isinstance(max_runs, bool) or max_runs < 0:
            raise ValueError(f"RunCache max_runs is a count of runs >= 0, got {max_runs!r}")
        self.max_runs = max_runs
        self._entries: OrderedDict[str, Doc] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._entries

    def get(self, run_id: str) -> Doc | None:
        """The cached fixed fields of ``run_id`` (marking it recently used), or None."""
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is not None:
                self._entries.move_to_end(run_id)
            return entry

    def put(self, run: Mapping[str, Any]) -> Doc | None:
        """Remember the fixed fields of a run document read whole; returns them (None without ``config``)."""
        if "config" not in run:
            return None
        entry = {name: run[name] for name in (*FIXED_FIELDS, *IDENTITY) if name in run}
        entry["plan"] = Plan.of(run["config"])
        if self.max_runs == 0:
            return entry
        with self._lock:
            self._entries[run["_id"]] = entry
            self._entries.move_to_end(run["_id"])
            while len(self._entries) > self.max_runs:
                self._entries.popitem(last=False)
        return entry

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._entries.pop(run_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def projection(self, run_id: str) -> tuple[Doc | None, dict[str, int] | None]:
        """``(cached fixed fields, projection to read with)``: the whole document when not cached."""
        entry = self.get(run_id)
        return entry, None if entry is None else dict.fromkeys(LIVE_FIELDS, 1)

    @staticmethod
    def matches(entry: Mapping[str, Any], run: Mapping[str, Any]) -> bool:
        """Whether ``run`` (read with ``LIVE_FIELDS``) is the run ``entry`` was cached from."""
        return all(entry.get(name) == run.get(name) for name in IDENTITY)


def _ensure_index(
    collection: Collection[Doc], keys: list[tuple[str, int]], *, name: str, unique: bool = False
) -> None:
    try:
        collection.create_index(keys, unique=unique, name=name)
    except OperationFailure as exc:
        # MongoDB refuses an index on the same keys under another name or with other options
        # (codes 85/86): keep an equivalent one, refuse one that is not unique where flowkit needs it.
        for info in collection.list_indexes():
            if [(field, int(direction)) for field, direction in dict(info["key"]).items()] != keys:
                continue
            if unique and not info.get("unique", False):
                from flowkit.errors import IndexConflict

                raise IndexConflict(
                    f"collection {collection.name!r} has a non-unique index {info['name']!r} on "
                    f"{', '.join(field for field, _ in keys)}; flowkit needs it unique: drop it and call "
                    "ensure_indexes() again"
                ) from exc
            return
        raise


class Store:
    """The runs (``state-machines``), status events (``statuses``) and big outputs and errors
    (``results``) collections of one database.

    ``on_status`` is called with every status document after it was inserted for the first time
    (never for a duplicate): the local runner's in-process bus hooks in here, exactly like the Atlas
    trigger fires on insert. ``clock`` gives the time every transition records (default: the system
    clock, ``now()``); the local runner passes a virtual one in tests.
    """

    def __init__(
        self,
        database: Database[Doc],
        *,
        runs: str = "state-machines",
        statuses: str = "statuses",
        results: str = "results",
        on_status: StatusHook | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.database = database
        self.runs: Collection[Doc] = database[runs]
        self.statuses: Collection[Doc] = database[statuses]
        self.results: Collection[Doc] = database[results]
        self.on_status = on_status
        self.clock: Callable[[], datetime] = clock or now

    @classmethod
    def from_settings(cls, settings: Settings, *, on_status: StatusHook | None = None) -> Store:
        """A store on a new ``MongoClient`` for ``settings.mongo_uri`` (create it once per process)."""
        from pymongo import MongoClient

        if not settings.mongo_uri:
            from flowkit.errors import ConfigError

            raise ConfigError(
                "no MongoDB URI: set FLOWKIT_MONGO_URI (or pass mongo_uri) to the connection string"
            )
        client: MongoClient[Doc] = MongoClient(settings.mongo_uri, tz_aware=True)
        return cls(
            client[settings.database],
            runs=settings.runs_collection,
            statuses=settings.statuses_collection,
            results=settings.results_collection,
            on_status=on_status,
        )

    # ------------------------------------------------------------------ setup

    def now(self) -> datetime:
        """The current time of this store's clock (``clock`` given to the constructor, else ``now()``)."""
        return self.clock()

    def ensure_indexes(self) -> None:
        """Create the indexes flowkit needs; safe to call any number of times.

        An index that already exists on the same keys under another name (e.g. one created by hand as
        ``key_1``) is kept; an existing non-unique index on the status key is an error, since it would
        let a status be recorded twice.
        """
        # The idempotency key of a status event: reporting twice inserts once.
        _ensure_index(self.statuses, [("key", ASCENDING)], name="flowkit_status_key", unique=True)
        # A run's history in order (notifications, tooling, dashboards).
        _ensure_index(self.statuses, [("run_id", ASCENDING), ("time", ASCENDING)], name="flowkit_run_time")
        # Runs by workflow and status (e.g. "every running nightly-etl").
        _ensure_index(
            self.runs, [("workflow", ASCENDING), ("status", ASCENDING)], name="flowkit_workflow_status"
        )
        # The timer sweep: runs with a due time at or before now (rule 12). Runs without a timer have
        # no ``next_due_ms`` field, so a sweep reads only the runs that have something due.
        _ensure_index(self.runs, [("next_due_ms", ASCENDING)], name="flowkit_next_due")
        # A run's big outputs and errors (results are read by _id; this finds them per run, e.g. to
        # delete them with the run).
        _ensure_index(self.results, [("run_id", ASCENDING)], name="flowkit_results_run")

    # ------------------------------------------------------------------ plain reads and inserts

    def get_run(self, run_id: str, *, projection: Mapping[str, Any] | None = None) -> RunDoc | None:
        """The run document (``projection``: only those top-level fields), or None."""
        return _run(self.runs.find_one({"_id": run_id}, projection))

    def read_fixed(self, run_id: str) -> RunDoc | None:
        """Only the fields of a run that never change (``FIXED_FIELDS`` + ``IDENTITY``), or None."""
        return _run(self.runs.find_one({"_id": run_id}, dict.fromkeys((*FIXED_FIELDS, *IDENTITY), 1)))

    def insert_run(self, doc: RunDoc) -> bool:
        """Insert a new run document; False when a run with that ``_id`` already exists."""
        try:
            self.runs.insert_one(dict(doc))
        except DuplicateKeyError:
            return False
        return True

    def read_job(self, run_id: str, job: str) -> tuple[Doc | None, Doc | None]:
        """``(run header, job)`` of one job, by projection; ``(None, None)`` for an unknown run."""
        doc = self.runs.find_one({"_id": run_id}, {"workflow": 1, "status": 1, job_path(job): 1})
        if doc is None:
            return None, None
        job_doc = _pluck(doc, "jobs", job)
        return doc, job_doc if isinstance(job_doc, dict) else None

    def read_notifications(self, run_id: str) -> Doc | None:
        """The ``config.notifications`` of a run, or None for an unknown run."""
        doc = self.runs.find_one({"_id": run_id}, {"config.notifications": 1})
        if doc is None:
            return None
        value = _pluck(doc, "config", "notifications")
        return value if isinstance(value, dict) else {}

    def insert_status(self, doc: StatusDoc) -> bool:
        """Insert a status event; False (and no hook call) when its key was already inserted."""
        stored = dict(doc)  # a copy: insert_one adds the _id to the dict it is given
        try:
            self.statuses.insert_one(stored)
        except DuplicateKeyError:
            logger.debug("status %s already recorded", doc.get("key"))
            return False
        if self.on_status is not None:
            self.on_status(cast(StatusDoc, stored))
        return True

    # ------------------------------------------------------------------ results (big outputs and errors)

    def keep(self, run_id: str, job: str, attempt: int, kind: str, value: Any) -> tuple[Any, str | None]:
        """``(inline value, reference)`` for a job attempt's output or error (``kind``).

        A value within ``INLINE_LIMIT`` stays inline; a larger one is inserted into the results
        collection under an id naming its content (a duplicate key means it is already there) and
        only its reference goes into the run. Call it *before* the compare-and-set that stores the
        reference: a run never references a missing result, and one whose compare-and-set loses is
        an orphan nobody reads. ``LimitExceeded`` if MongoDB refuses the document for its size.
        """
        inline, ref, doc = _results.place(run_id, job, attempt, kind, value, at=self.clock())
        if doc is not None:
            try:
                self.results.insert_one(doc)
            except DuplicateKeyError:
                pass  # the same content (the id is its digest), written by another delivery
            except (OperationFailure, DocumentTooLarge) as exc:
                if not _over_limit(exc):
                    raise
                raise LimitExceeded(
                    f"MongoDB refused to store the {kind} of job {job!r} of run {run_id!r}: {exc}",
                    run_id=run_id,
                    job=job,
                ) from exc
        return inline, ref

    def resolve(
        self,
        run_id: str,
        jobs: Mapping[str, Any],
        *,
        outputs: Iterable[str] | None = (),
        errors: Iterable[str] | None = (),
        history: bool = False,
    ) -> Mapping[str, Any]:
        """``jobs`` (a run's ``jobs`` map, or part of it) with the referenced values of ``outputs`` /
        ``errors`` (job names; None: every job; ``history``: the attempts' errors too) fetched in one
        query. Returns ``jobs`` itself when nothing is referenced; never mutates it. ``RunError`` if
        a referenced result is missing."""
        wanted = _results.refs(run_id, jobs, outputs=outputs, errors=errors, history=history)
        if not wanted:
            return jobs
        values = {
            doc["_id"]: doc.get("value")
            for doc in self.results.find({"_id": {"$in": list(wanted)}}, {"value": 1})
        }
        if len(values) < len(wanted):
            raise _results.missing(run_id, set(wanted) - set(values))
        return _results.with_values(run_id, jobs, values, set(wanted.values()))

    def resolve_run(self, run: RunDoc) -> RunDoc:
        """A run document with every referenced output and error in place (status views, local results)."""
        if "jobs" not in run:
            return run
        jobs = self.resolve(run["_id"], run["jobs"], outputs=None, errors=None, history=True)
        if jobs is run["jobs"]:
            return run
        return cast(RunDoc, {**run, "jobs": jobs})

    # ------------------------------------------------------------------ atomic transitions

    def record_outcome(
        self,
        run_id: str,
        job: str,
        attempt: int,
        *,
        state: str,
        output: Any = None,
        error: ErrorDoc | None = None,
        at: datetime | None = None,
        inc: Mapping[str, int] | None = None,
        version: str | None = None,
        retry_at: datetime | None = None,
        max_attempts: int = 1,
        projection: Mapping[str, Any] | None = None,
        require: Mapping[str, Any] | None = None,
    ) -> RunDoc | None:
        """Rule 1: ``dispatched|running`` at ``attempt`` -> ``state``; the run after, or None.

        ``inc`` is folded into the same update (the counters the new state moves, see
        ``engine.increments``); ``version``, when given, must be the run's (a run replaced under the
        same id is then never touched with counters computed from another configuration).
        ``require``: more conditions of the compare-and-set (a failure of a job with failure paths: the
        ``paths.<job>.left`` its ``inc`` was computed on). ``projection`` limits the returned document (the whole run if None). Raises ``LimitExceeded``
        when MongoDB refuses the write for its size or nesting (the run document would pass 16 MB):
        nothing is written then.

        A failure (``failed`` / ``timed_out``) is kept in the job's ``attempts`` history (an object
        keyed by the attempt number, so a repeated update writes the same entry again). With
        ``retry_at`` (and only while the run is running and the job has attempts left: fewer than
        ``max_attempts`` since its ``attempt_base``) the job goes to ``waiting`` instead, at the same
        attempt, with its retry timer due at ``retry_at`` (rule 12): in the same update, so the
        due time cannot be lost; ``waiting`` is not terminal, so ``inc`` is not applied. Otherwise the
        job's timer is cleared.
        """
        prefix = job_path(job)
        at = at or self.clock()
        query: Doc = {
            "_id": run_id,
            f"{prefix}.state": {"$in": list(OPEN_STATES)},
            f"{prefix}.attempt": attempt,
        }
        if version is not None:
            query["version"] = version
        query.update(require or {})
        # Big values go to the results collection first; the run keeps their references.
        output, output_ref = self.keep(run_id, job, attempt, "output", output)
        error_value, error_ref = self.keep(
            run_id, job, attempt, "error", dict(error) if error is not None else None
        )
        sets: Doc = {
            f"{prefix}.state": state,
            f"{prefix}.output": output,
            f"{prefix}.output_ref": output_ref,
            f"{prefix}.error": error_value,
            f"{prefix}.error_ref": error_ref,
            f"{prefix}.finished_at": at,
        }
        update: Doc = {"$set": sets}
        _clear_timer(update, prefix)
        if state in FAILED_STATES:
            sets[f"{prefix}.attempts.{attempt}"] = {
                "attempt": attempt,
                "state": state,
                "error": error_value,
                "error_ref": error_ref,
                "finished_at": at,
            }
        if retry_at is not None and state in FAILED_STATES:
            query["status"] = RunStatus.RUNNING
            # attempts left: ``max_attempts`` counts every try since the job's last redrive
            query[f"{prefix}.attempt_base"] = {"$gt": attempt - max_attempts}
            sets[f"{prefix}.state"] = JobState.WAITING
            del update["$unset"]
            _set_timer(update, prefix, retry_at, TimerKind.RETRY)
        elif inc:
            update["$inc"] = dict(inc)
        try:
            return _run(
                self.runs.find_one_and_update(
                    query, update, projection=projection, return_document=ReturnDocument.AFTER
                )
            )
        except (OperationFailure, DocumentTooLarge) as exc:
            if not _over_limit(exc):
                raise
            raise LimitExceeded(
                f"MongoDB refused to record job {job!r} of run {run_id!r}: {exc}", run_id=run_id, job=job
            ) from exc

    def _claim(
        self,
        run_id: str,
        job: str,
        attempt: int,
        at: datetime | None,
        phase: tuple[int, str] | None,
        always: bool,
        due: datetime | None = None,
        redrive: int | None = None,
        sets: Mapping[str, Any] | None = None,
        inc: Mapping[str, int] | None = None,
    ) -> tuple[Doc, Doc]:
        prefix = job_path(job)
        condition: Doc = {
            "_id": run_id,
            "status": RunStatus.RUNNING,
            f"{prefix}.state": JobState.PENDING,
            f"{prefix}.attempt": attempt,
        }
        if not always:
            condition["draining"] = {"$in": [None, False]}  # absent (MongoDB: null matches it) or false
        _same_redrive(condition, redrive)
        changes: Doc = {f"{prefix}.state": JobState.DISPATCHED, f"{prefix}.dispatched_at": at or self.clock()}
        if phase is not None:
            changes["phase_index"], changes["phase"] = phase
        if sets:
            changes.update(sets)
        update: Doc = {"$set": changes, "$inc": {f"{prefix}.attempt": 1, **(inc or {})}}
        if due is not None:
            _set_timer(update, prefix, due, TimerKind.ATTEMPT)
        return condition, update

    def claim(
        self,
        run_id: str,
        job: str,
        attempt: int,
        *,
        at: datetime | None = None,
        always: bool = False,
        phase: tuple[int, str] | None = None,
        due: datetime | None = None,
        redrive: int | None = None,
    ) -> bool:
        """Rule 4: ``pending`` at ``attempt`` of a running run -> ``dispatched`` at ``attempt + 1``.

        Only an ``always`` job may be claimed once the run is draining (rule 9). ``phase`` (``(index,
        name)`` of the job's phase) becomes the run's current phase in the same update (rule 6).
        ``due``: the new attempt's deadline (its timeout or heartbeat), set in the same update (rule 12).
        ``redrive``: the run's ``redrive_count`` in the snapshot the claim was decided on (rule 11).
        """
        query, update = self._claim(run_id, job, attempt, at, phase, always, due, redrive)
        return self.runs.update_one(query, update).modified_count == 1

    def claim_and_read(
        self,
        run_id: str,
        job: str,
        attempt: int,
        *,
        projection: Mapping[str, Any],
        at: datetime | None = None,
        always: bool = False,
        phase: tuple[int, str] | None = None,
        due: datetime | None = None,
        redrive: int | None = None,
        sets: Mapping[str, Any] | None = None,
        inc: Mapping[str, int] | None = None,
    ) -> Doc | None:
        """``claim`` in one round trip with a read: the run after the claim (``projection``), or None.

        ``sets`` and ``inc``: more fields set and counters moved by the same update
        (``engine.claim_sets``: a failure path taken; ``engine.claim_increments``: ``waits``)."""
        query, update = self._claim(run_id, job, attempt, at, phase, always, due, redrive, sets, inc)
        return self.runs.find_one_and_update(
            query, update, projection=projection, return_document=ReturnDocument.AFTER
        )

    def claim_retry(
        self,
        run_id: str,
        job: str,
        attempt: int,
        *,
        at: datetime,
        due: datetime | None = None,
        projection: Mapping[str, Any] | None = None,
    ) -> RunDoc | None:
        """Rule 12: ``waiting`` at ``attempt`` (its retry is due) -> ``dispatched`` at ``attempt + 1``.

        The retry timer is replaced by the new attempt's deadline ``due`` (or cleared). Returns the run
        after the claim (for the payload), or None when someone else claimed it or the run ended.
        """
        prefix = job_path(job)
        sets: Doc = {
            f"{prefix}.state": JobState.DISPATCHED,
            f"{prefix}.dispatched_at": at,
            f"{prefix}.started_at": None,
            f"{prefix}.heartbeat_at": None,
            f"{prefix}.finished_at": None,
        }
        update: Doc = {"$set": sets, "$inc": {f"{prefix}.attempt": 1}}
        if due is not None:
            _set_timer(update, prefix, due, TimerKind.ATTEMPT)
        else:
            _clear_timer(update, prefix)
        return _run(
            self.runs.find_one_and_update(
                {
                    "_id": run_id,
                    "status": RunStatus.RUNNING,
                    f"{prefix}.state": JobState.WAITING,
                    f"{prefix}.attempt": attempt,
                },
                update,
                projection=projection,
                return_document=ReturnDocument.AFTER,
            )
        )

    def release(
        self,
        run_id: str,
        job: str,
        attempt: int,
        *,
        retry_at: datetime | None = None,
        inc: Mapping[str, int] | None = None,
    ) -> bool:
        """Undo a claim whose dispatch failed: ``dispatched`` at ``attempt`` -> ``pending`` again.

        With ``retry_at`` (the claim of a retry) the job goes back to ``waiting`` at ``attempt - 1``
        with its retry due at ``retry_at`` instead. ``inc``: the counters the claim moved, moved back
        (``engine.claim_increments(..., claimed=False)``).
        """
        prefix = job_path(job)
        sets: Doc = {f"{prefix}.dispatched_at": None}
        # ``released`` counts the jobs put back to pending/waiting: a job made unrunnable again after
        # the end's cancels were done (``unrunnable_done``) is noticed by the next handler.
        update: Doc = {"$set": sets, "$inc": {f"{prefix}.attempt": -1, "released": 1, **(inc or {})}}
        if retry_at is None:
            sets[f"{prefix}.state"] = JobState.PENDING
            _clear_timer(update, prefix)
        else:
            sets[f"{prefix}.state"] = JobState.WAITING
            _set_timer(update, prefix, retry_at, TimerKind.RETRY)
        result = self.runs.update_one(
            {"_id": run_id, f"{prefix}.state": JobState.DISPATCHED, f"{prefix}.attempt": attempt}, update
        )
        return result.modified_count == 1

    def heartbeat(self, run_id: str, job: str, attempt: int, *, at: datetime | None = None) -> bool:
        """A running attempt is alive: ``jobs.J.heartbeat_at`` = now, if it is ``running`` at ``attempt``."""
        prefix = job_path(job)
        result = self.runs.update_one(
            {"_id": run_id, f"{prefix}.state": JobState.RUNNING, f"{prefix}.attempt": attempt},
            {"$set": {f"{prefix}.heartbeat_at": at or self.clock()}},
        )
        return result.matched_count == 1

    def move_timer(self, run_id: str, job: str, attempt: int, *, to: datetime) -> Doc | None:
        """Rule 12: an open attempt's timer fired but it is alive (it sent a heartbeat): move it to ``to``."""
        prefix = job_path(job)
        update: Doc = {"$set": {}}
        _set_timer(update, prefix, to, TimerKind.ATTEMPT)
        return self.runs.find_one_and_update(
            {
                "_id": run_id,
                "status": RunStatus.RUNNING,
                f"{prefix}.state": {"$in": list(OPEN_STATES)},
                f"{prefix}.attempt": attempt,
            },
            update,
            projection={"timer_seq": 1},
            return_document=ReturnDocument.AFTER,
        )

    def move_retry(self, run_id: str, job: str, attempt: int, *, to: datetime) -> bool:
        """Rule 12: the retry of a job ``waiting`` after ``attempt`` is due at ``to`` instead."""
        prefix = job_path(job)
        update: Doc = {"$set": {}}
        _set_timer(update, prefix, to, TimerKind.RETRY)
        result = self.runs.update_one(
            {"_id": run_id, f"{prefix}.state": JobState.WAITING, f"{prefix}.attempt": attempt}, update
        )
        return result.modified_count == 1

    def set_next_due(self, run_id: str, seq: int, due: datetime | None) -> bool:
        """Rule 12: store the earliest due time of a run, if no timer was set since it was computed."""
        update: Doc = (
            {"$set": {"next_due_ms": epoch_ms(due)}} if due is not None else {"$unset": {"next_due_ms": ""}}
        )
        result = self.runs.update_one({"_id": run_id, "timer_seq": seq}, update)
        return result.matched_count == 1

    def due_runs(
        self,
        at: datetime,
        *,
        limit: int = 100,
        projection: Mapping[str, Any] | None = None,
        run_ids: list[str] | None = None,
    ) -> list[Doc]:
        """Runs with a timer due at or before ``at`` (the ``flowkit_next_due`` index: only those are read).

        ``run_ids``: only among these runs.
        """
        query: Doc = {"next_due_ms": {"$lte": epoch_ms(at)}}
        if run_ids is not None:
            query["_id"] = {"$in": run_ids}
        return list(self.runs.find(query, projection).limit(limit))

    def earliest_due(self, *, run_ids: list[str] | None = None) -> datetime | None:
        """The earliest ``next_due_ms`` of all runs (or of ``run_ids``), or None: the next wake-up."""
        query: Doc = {"next_due_ms": {"$exists": True}}
        if run_ids is not None:
            query["_id"] = {"$in": run_ids}
        found = self.runs.find(query, {"next_due_ms": 1})
        for doc in found.sort("next_due_ms", 1).limit(1):
            value = doc.get("next_due_ms")
            return from_epoch_ms(value) if isinstance(value, int) else None
        return None

    def skip(
        self,
        run_id: str,
        job: str,
        attempt: int,
        *,
        at: datetime | None = None,
        inc: Mapping[str, int] | None = None,
        phase: tuple[int, str] | None = None,
        projection: Mapping[str, Any] | None = None,
        redrive: int | None = None,
        require: Mapping[str, Any] | None = None,
    ) -> RunDoc | None:
        """Rule 4: ``pending`` at ``attempt`` of a running run -> ``skipped``; the run after, or None.

        ``inc`` and ``phase`` are folded into the same update, as for ``record_outcome`` and ``claim``;
        ``redrive`` as for ``claim``. ``require``: more conditions of the compare-and-set (a skipped
        failure path: the ``left`` counters its ``inc`` was computed on).
        """
        prefix = job_path(job)
        changes: Doc = {f"{prefix}.state": JobState.SKIPPED, f"{prefix}.finished_at": at or self.clock()}
        if phase is not None:
            changes["phase_index"], changes["phase"] = phase
        update: Doc = {"$set": changes}
        if inc:
            update["$inc"] = dict(inc)
        return _run(
            self.runs.find_one_and_update(
                _same_redrive(
                    {
                        "_id": run_id,
                        "status": RunStatus.RUNNING,
                        f"{prefix}.state": JobState.PENDING,
                        f"{prefix}.attempt": attempt,
                        **(require or {}),
                    },
                    redrive,
                ),
                update,
                projection=projection,
                return_document=ReturnDocument.AFTER,
            )
        )

    def mark_running(
        self, run_id: str, job: str, attempt: int, *, at: datetime | None = None
    ) -> RunDoc | None:
        """Rule 7: ``dispatched`` at ``attempt`` -> ``running``; the run's ``workflow`` header, or None."""
        prefix = job_path(job)
        return _run(
            self.runs.find_one_and_update(
                {"_id": run_id, f"{prefix}.state": JobState.DISPATCHED, f"{prefix}.attempt": attempt},
                {"$set": {f"{prefix}.state": JobState.RUNNING, f"{prefix}.started_at": at or self.clock()}},
                projection={"workflow": 1},
                return_document=ReturnDocument.AFTER,
            )
        )

    def start_draining(
        self, run_id: str, *, projection: Mapping[str, Any] | None = None, redrive: int | None = None
    ) -> RunDoc | None:
        """Rule 9: mark a running run as failing with ``always`` jobs left; the run after, or None.

        From then on only ``always`` jobs are claimed, so the others can never start.
        """
        return _run(
            self.runs.find_one_and_update(
                _same_redrive({"_id": run_id, "status": RunStatus.RUNNING}, redrive),
                {"$set": {"draining": True}},
                projection=projection,
                return_document=ReturnDocument.AFTER,
            )
        )

    def advance_phase(self, run_id: str, index: int, phase: str | None) -> bool:
        """Rule 6: move the current phase forward to ``index`` (never backwards)."""
        result = self.runs.update_one(
            {"_id": run_id, "status": RunStatus.RUNNING, "phase_index": {"$lt": index}},
            {"$set": {"phase": phase, "phase_index": index}},
        )
        return result.modified_count == 1

    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        phase_index: int,
        at: datetime | None = None,
        reason: str | None = None,
        keep_due: bool = False,
        redrive: int | None = None,
    ) -> bool:
        """Rule 5: ``running`` -> ``status``; True only for the one caller whose update won.

        ``reason`` (a cancel's) is stored as the run's ``end_reason``. The run's timers are dropped
        (``next_due_ms`` unset): an ended run has nothing due. With ``keep_due`` (an end made by the
        timer handler, which no event redelivery would repeat) ``next_due_ms`` is set to now instead,
        so a sweep re-inserts the end event if the caller dies before it does (rule 12). ``redrive``: the
        ``redrive_count`` of the snapshot that decided the end: a handler holding a snapshot from before
        a redrive cannot end the redriven run (rule 11).
        """
        at = at or self.clock()
        sets: Doc = {"status": status, "ended_at": at, "phase": None, "phase_index": phase_index}
        if reason is not None:
            sets["end_reason"] = reason
        update: Doc = {"$set": sets}
        if keep_due:
            sets["next_due_ms"] = epoch_ms(at)
        else:
            update["$unset"] = {"next_due_ms": ""}
        query = _same_redrive({"_id": run_id, "status": RunStatus.RUNNING}, redrive)
        result = self.runs.update_one(query, update)
        return result.modified_count == 1

    def mark_unrunnable_done(self, run_id: str, *, redrive: int, released: int) -> bool:
        """Note on an ended run that its pending/waiting jobs were cancelled (rule 5), as of a read that
        saw ``redrive_count`` ``redrive`` and ``released`` ``released``: a compare-and-set on both, so a
        job released or a run redriven since that read is not covered by the mark.
        """
        query = _same_redrive({"_id": run_id, "status": {"$in": sorted(vocab.RUN_ENDED_STATUSES)}}, redrive)
        query["released"] = released if released else {"$in": [None, 0]}
        update = {"$set": {"unrunnable_done": unrunnable_mark(redrive, released)}}
        return self.runs.update_one(query, update).modified_count == 1

    def cancel_jobs(self, run_id: str, jobs: Iterable[str], *, at: datetime | None = None) -> list[str]:
        """``pending``/``waiting`` -> ``cancelled`` for each of ``jobs`` of a run that is no longer running.

        One compare-and-set per job, so it is safe against any concurrent transition: a job that was
        dispatched or is running is never touched (its outcome is still recorded when it arrives),
        and nothing is cancelled while the run is ``running`` (e.g. again, after a redrive). Returns
        the jobs this call cancelled. Used when a run ends (jobs that can never run) and by an
        explicit cancel.
        """
        moment = at or self.clock()
        cancelled: list[str] = []
        waiting = [JobState.PENDING.value, JobState.WAITING.value]
        for job in jobs:
            prefix = job_path(job)
            result = self.runs.update_one(
                {
                    "_id": run_id,
                    "status": {"$in": sorted(vocab.RUN_ENDED_STATUSES)},
                    f"{prefix}.state": {"$in": waiting},
                },
                {
                    "$set": {f"{prefix}.state": JobState.CANCELLED.value, f"{prefix}.finished_at": moment},
                    "$inc": {"remaining": -1},  # a cancelled job is terminal (rule 5's counters)
                },
            )
            if result.modified_count == 1:
                cancelled.append(job)
        return cancelled
