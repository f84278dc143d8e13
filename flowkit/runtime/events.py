"""EventBridge / Atlas-trigger envelope <-> status document.

An insert into the ``statuses`` collection reaches the Lambda handlers as an EventBridge event sent by
the MongoDB Atlas Database Trigger's partner event source::

    {"version": "0", "id": "...", "detail-type": "MongoDB Database Trigger for flowkit.statuses",
     "source": "aws.partner/mongodb.com/stitch.trigger/<trigger id>", "account": "...", "time": "...",
     "region": "...", "resources": ["arn:aws:events:...:event-source/aws.partner/..."],
     "detail": {"_id": {"_data": "<resume token>"}, "operationType": "insert",
                "clusterTime": ..., "fullDocument": {<status document>},
                "ns": {"db": "flowkit", "coll": "statuses"}, "documentKey": {"_id": ...}}}

The trigger writes ``detail`` in one of three JSON forms, all accepted by :func:`parse_event`:

- its *default JSON* (BSON types flattened: ObjectId as a hex string, dates as ISO-8601 strings,
  cluster time as ``{"T": ..., "I": ...}``),
- *relaxed Extended JSON* (``{"$oid": ...}``, ``{"$date": "<ISO-8601>"}``, plain numbers),
- *canonical Extended JSON* (``{"$date": {"$numberLong": "<ms>"}}``, ``{"$numberInt": "1"}``, ...).

:func:`to_envelope` builds the same envelope from a status document; the local runner's in-process bus
emits it in relaxed Extended JSON (what ``bson.json_util`` writes by default, and what the trigger sends
with "Enable Extended JSON"), so local runs exercise the production parsing path.

A malformed event raises :class:`~flowkit.errors.EventError` naming what is wrong and where; nothing is
read or written before parsing succeeds, so AWS retries the event and then sends it to the dead-letter
queue.

:func:`parse_event` returns a :class:`Status`, a frozen dataclass validated by hand: this module is on
the Lambda's first-event path and stays free of pydantic (importing it and building the schema cost
~200 ms of a cold start). ``flowkit.document.StatusEvent`` remains the published schema of a
``statuses`` document; ``tests/runtime/test_events.py`` checks that the two agree field by field.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from bson import json_util
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS, JSONOptions
from bson.objectid import ObjectId
from bson.timestamp import Timestamp

from flowkit.errors import EventError
from flowkit.runtime.documents import ErrorDoc, StatusDoc
from flowkit.status import EventStatus, status_key
from flowkit.vocab import JOB_ONLY_STATUSES, WORKFLOW_ONLY_STATUSES

__all__ = [
    "DETAIL_TYPE_PREFIX",
    "STATUS_VALUES",
    "TRIGGER_SOURCE_PREFIX",
    "ErrorInfo",
    "EventStatus",
    "JsonFormat",
    "Status",
    "decode_data",
    "parse_event",
    "to_envelope",
]

TRIGGER_SOURCE_PREFIX: Final = "aws.partner/mongodb.com/stitch.trigger/"
DETAIL_TYPE_PREFIX: Final = "MongoDB Database Trigger for "

JsonFormat = Literal["relaxed", "canonical", "default"]
"""How ``detail`` is written: relaxed / canonical Extended JSON, or the trigger's default JSON."""


STATUS_VALUES: Final = tuple(status.value for status in EventStatus)

_DECODE_OPTIONS: Final = JSONOptions(tz_aware=True, tzinfo=UTC)
_STATUSES: Final = ", ".join(STATUS_VALUES)
_ROOT: Final = "event"
# Like pydantic: a number above this is epoch milliseconds, below it epoch seconds.
_MS_THRESHOLD: Final = 2e10


# --------------------------------------------------------------------------- the runtime type


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a job (or run) failed: the ``error`` of a status event."""

    type: str
    message: str


@dataclass(frozen=True, slots=True)
class Status:
    """A parsed status event: the fields of ``flowkit.document.StatusEvent``, without pydantic.

    ``time`` is always timezone-aware UTC; ``output`` is plain JSON data.
    """

    key: str
    run_id: str
    workflow: str
    job: str | None
    attempt: int
    status: EventStatus
    output: Any
    error: ErrorInfo | None
    time: datetime

    def as_document(self) -> StatusDoc:
        """The fields as a ``statuses`` document (``error`` a dict, ``time`` a datetime)."""
        error: ErrorDoc | None = (
            None if self.error is None else {"type": self.error.type, "message": self.error.message}
        )
        return {
            "key": self.key,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "job": self.job,
            "attempt": self.attempt,
            "status": self.status.value,
            "output": self.output,
            "error": error,
            "time": self.time,
        }

    def as_json(self) -> dict[str, Any]:
        """The fields as JSON data, as ``StatusEvent.model_dump(mode="json")`` writes them."""
        document: dict[str, Any] = dict(self.as_document())
        iso = self.time.isoformat()
        document["time"] = iso[:-6] + "Z" if iso.endswith("+00:00") else iso
        return document


# --------------------------------------------------------------------------- parsing


def parse_event(envelope: object, *, database: str | None = None, collection: str | None = None) -> Status:
    """The status event carried by an Atlas-trigger EventBridge ``envelope``.

    ``database`` / ``collection``, when given, must match the change event's namespace (``detail.ns``):
    handlers pass their settings so that a rule wired to the wrong trigger fails loudly.

    Raises :class:`EventError` for anything malformed; the message names the offending path, e.g.
    ``event.detail.fullDocument.status: 'done' is not one of started, success, failed, timed_out, retrying, cancelled``.
    """
    env = _mapping(envelope, _ROOT)
    source = _string(env, "source", _ROOT)
    if not source.startswith(TRIGGER_SOURCE_PREFIX):
        raise EventError(
            f"{_ROOT}.source: {source!r} is not a MongoDB Atlas trigger source "
            f"(expected it to start with {TRIGGER_SOURCE_PREFIX!r})"
        )
    detail_type = _string(env, "detail-type", _ROOT)
    if not detail_type.startswith(DETAIL_TYPE_PREFIX):
        raise EventError(
            f"{_ROOT}.detail-type: {detail_type!r} is not a database trigger event "
            f"(expected it to start with {DETAIL_TYPE_PREFIX!r})"
        )
    where = f"{_ROOT}.detail"
    detail = _mapping(env.get("detail"), where)
    operation = detail.get("operationType")
    if operation != "insert":
        raise EventError(
            f"{where}.operationType: {operation!r} is not 'insert'; configure the trigger for inserts only"
        )
    _check_namespace(detail, where, database=database, collection=collection)
    if detail.get("fullDocument") is None:
        raise EventError(
            f"{where}.fullDocument: missing; turn on 'Full Document' in the Atlas trigger "
            "(and keep every status field in its project expression)"
        )
    full = _mapping(detail["fullDocument"], f"{where}.fullDocument")
    # The status document's own fields are decoded from Extended JSON; the user's data (``output``,
    # ``error``) only has the number and date wrappers undone, so it arrives exactly as reported.
    own = {name: value for name, value in full.items() if name not in _USER_DATA}
    document = _decode(own, f"{where}.fullDocument")
    document.update((name, decode_data(full[name])) for name in _USER_DATA if name in full)
    return _status_event(document, f"{where}.fullDocument")


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if value is None:
        raise EventError(f"{where}: missing (expected a JSON object)")
    raise EventError(f"{where}: expected a JSON object, got {type(value).__name__} {_short(value)}")


def _string(env: Mapping[str, Any], name: str, where: str) -> str:
    value = env.get(name)
    if isinstance(value, str):
        return value
    if value is None:
        raise EventError(f"{where}.{name}: missing (is this an EventBridge event?)")
    raise EventError(f"{where}.{name}: expected a string, got {type(value).__name__} {_short(value)}")


def _check_namespace(
    detail: Mapping[str, Any], where: str, *, database: str | None, collection: str | None
) -> None:
    if database is None and collection is None:
        return
    ns = _mapping(detail.get("ns"), f"{where}.ns")
    for field, expected in (("db", database), ("coll", collection)):
        if expected is not None and ns.get(field) != expected:
            raise EventError(
                f"{where}.ns.{field}: {ns.get(field)!r} is not {expected!r}; "
                "the trigger watches another collection than this handler reads"
            )


def _decode(document: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Undo Extended JSON wrappers (``$oid``, ``$date``, ``$numberInt``, ...); plain JSON passes through."""
    try:
        fast = _decode_json(document)
    except Exception:  # a bad wrapper: the round trip below says what
        fast = _NOT_PLAIN
    if isinstance(fast, dict):
        return fast
    try:
        decoded = json_util.loads(json.dumps(document), json_options=_DECODE_OPTIONS)
    except Exception as exc:  # json_util raises ValueError, TypeError or bson.errors.* for bad wrappers
        raise EventError(f"{_bad_field(document, where)}: invalid Extended JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise EventError(f"{where}: expected a JSON object, got {type(decoded).__name__}")
    return decoded


_NOT_PLAIN: Final = object()


def _decode_json(value: Any) -> Any:
    """``json_util.loads(json.dumps(value))`` for plain JSON data, without the text in between.

    The wrappers are undone innermost first by ``json_util.object_hook``, as ``json_util.loads``
    does (a bad wrapper raises as it does there); ``_NOT_PLAIN`` for anything that is not plain JSON
    data (the caller then takes the round trip, which reports it).
    """
    kind = type(value)
    if kind is dict:
        decoded = {}
        for key, item in value.items():
            inner = _decode_json(item)
            if type(key) is not str or inner is _NOT_PLAIN:
                return _NOT_PLAIN
            decoded[key] = inner
        return json_util.object_hook(decoded, _DECODE_OPTIONS)
    if kind is list:
        items = [_decode_json(item) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float and value == value and abs(value) != float("inf"):
        return value
    return _NOT_PLAIN


_USER_DATA: Final = ("output", "error")
# Past this depth a value is kept as it is (flowkit refuses outputs nested deeper than MongoDB allows).
_DATA_DEPTH: Final = 200
_INTEGER: Final = re.compile(r"-?[0-9]+")


def decode_data(value: Any) -> Any:
    """A user's data from an event, with the trigger's Extended JSON type wrappers undone.

    flowkit's job side refuses keys starting with ``$`` in outputs (see ``flowkit.runtime.limits``),
    so in an output a one-key object ``{"$numberInt" | "$numberLong" | "$numberDouble" |
    "$numberDecimal" | "$date" | "$oid": ...}`` can only be a wrapper the trigger wrote for a BSON
    value: it becomes that value as plain JSON (a number; a decimal, date or ObjectId as a string).
    Any other object with a ``$`` key, or a wrapper that does not decode, is kept exactly as it came:
    user data is never rewritten and never makes the event fail.
    """
    return _decode_data(value, 0)


def _decode_data(value: Any, depth: int) -> Any:
    if depth > _DATA_DEPTH:
        return value
    if isinstance(value, list):
        return [_decode_data(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    if any(isinstance(key, str) and key.startswith("$") for key in value):
        if len(value) == 1:
            ((key, inner),) = value.items()
            decoded = _unwrap(key, inner)
            if decoded is not _KEEP:
                return decoded
        return value
    return {key: _decode_data(item, depth + 1) for key, item in value.items()}


_KEEP: Final = object()


def _unwrap(key: str, inner: Any) -> Any:
    """The plain value of one Extended JSON wrapper, or ``_KEEP`` when it is not one."""
    if key in ("$numberInt", "$numberLong"):
        if isinstance(inner, str) and _INTEGER.fullmatch(inner) and len(inner) <= 20:
            return int(inner)
        return _KEEP
    if key == "$numberDouble":
        if isinstance(inner, str):
            try:
                return float(inner)
            except ValueError:
                return _KEEP
        return _KEEP
    if key == "$numberDecimal":
        return inner if isinstance(inner, str) else _KEEP
    if key == "$oid":
        return inner if isinstance(inner, str) and re.fullmatch(r"[0-9a-fA-F]{24}", inner) else _KEEP
    if key == "$date":
        try:
            decoded = json_util.loads(json.dumps({"$date": inner}), json_options=_DECODE_OPTIONS)
        except Exception:  # json_util raises ValueError, TypeError, OverflowError or bson.errors.*
            return _KEEP
        return to_plain(decoded) if isinstance(decoded, datetime | DatetimeMS) else _KEEP
    return _KEEP


def _bad_field(document: Mapping[str, Any], where: str) -> str:
    """The path of the first top-level field that does not decode (for the error message)."""
    for name, value in document.items():
        try:
            json_util.loads(json.dumps(value), json_options=_DECODE_OPTIONS)
        except Exception:
            return f"{where}.{name}"
    return where


def _status_event(document: dict[str, Any], where: str) -> Status:
    """Check every field of ``document`` (all problems are reported together), then their consistency."""
    problems: list[str] = []

    def problem(name: str, text: str, value: object) -> None:
        problems.append(f"{where}.{name}: {text} (got {_short(value)})")

    def text(name: str, *, optional: bool = False) -> str | None:
        if name not in document:
            if not optional:
                problems.append(f"{where}.{name}: missing")
            return None
        value = document[name]
        if isinstance(value, str) or (optional and value is None):
            return value
        problem(name, "input should be a valid string", value)
        return None

    key, run_id, workflow = text("key"), text("run_id"), text("workflow")
    job = text("job", optional=True)
    attempt = _attempt(document.get("attempt", 0), f"{where}.attempt", problems)
    status: EventStatus | None = None
    if "status" not in document:
        problems.append(f"{where}.status: missing")
    elif document["status"] not in STATUS_VALUES:
        problems.append(f"{where}.status: {_short(document['status'])} is not one of {_STATUSES}")
    else:
        status = EventStatus(document["status"])
    output = to_plain(document.get("output"))
    error = _error(to_plain(document.get("error")), f"{where}.error", problems)
    moment = _time(document["time"], f"{where}.time", problems) if "time" in document else None
    if "time" not in document:
        problems.append(f"{where}.time: missing")
    if (
        problems
        or key is None
        or run_id is None
        or workflow is None
        or attempt is None
        or status is None
        or moment is None
    ):
        raise EventError("; ".join(problems), **_context(document))
    event = Status(
        key=key,
        run_id=run_id,
        workflow=workflow,
        job=job,
        attempt=attempt,
        status=status,
        output=output,
        error=error,
        time=moment,
    )
    _check_consistency(event, where)
    return event


def _attempt(value: object, where: str, problems: list[str]) -> int | None:
    """A whole number (an int, an Int64, or a float without a fraction); not a bool, not a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        problems.append(
            f"{where}: input should be a valid integer, got a number with a fractional part "
            f"(got {_short(value)})"
        )
    else:
        problems.append(f"{where}: input should be a valid integer (got {_short(value)})")
    return None


def _error(value: object, where: str, problems: list[str]) -> ErrorInfo | None:
    """``None`` or ``{"type": str, "message": str}`` (nothing else: as ``flowkit.document.JobError``)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"{where}: input should be an object with type and message (got {_short(value)})")
        return None
    before = len(problems)
    fields: dict[str, str] = {}
    for name in ("type", "message"):
        if name not in value:
            problems.append(f"{where}.{name}: missing")
        elif not isinstance(value[name], str):
            problems.append(f"{where}.{name}: input should be a valid string (got {_short(value[name])})")
        else:
            fields[name] = value[name]
    problems.extend(
        f"{where}.{name}: extra inputs are not permitted (got {_short(value[name])})"
        for name in value
        if name not in ("type", "message")
    )
    if len(problems) > before:
        return None
    return ErrorInfo(type=fields["type"], message=fields["message"])


def _time(value: object, where: str, problems: list[str]) -> datetime | None:
    """A datetime, an ISO-8601 string or epoch seconds/milliseconds, as an aware UTC datetime.

    Without a zone it is UTC. Numbers follow pydantic's rule: above 2e10 they are milliseconds.
    """
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = _from_epoch(float(value))
    elif isinstance(value, str):
        try:
            moment = _from_epoch(float(value))
        except ValueError:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                moment = None
    if moment is None:
        problems.append(f"{where}: input should be a valid datetime (got {_short(value)})")
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _from_epoch(number: float) -> datetime | None:
    """``number`` seconds (or milliseconds, above 2e10) since the epoch; None if out of range."""
    if number != number:  # NaN
        return None
    seconds = number / 1000 if abs(number) > _MS_THRESHOLD else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _context(fields: Mapping[str, Any]) -> dict[str, str | None]:
    """What is known of the event's run, for ``EventError``'s attributes (only well-typed values)."""

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) else None

    return {"run_id": text("run_id"), "workflow": text("workflow"), "job": text("job")}


def _check_consistency(event: Status, where: str) -> None:
    context = {"run_id": event.run_id, "workflow": event.workflow, "job": event.job}
    problem: str | None = None
    if event.job is None:
        if event.attempt < 0:
            problem = (
                f"{where}.attempt: a workflow-level event (job null) has attempt >= 0 (the run's redrive "
                f"count), got {event.attempt}"
            )
        elif event.status in JOB_ONLY_STATUSES:
            problem = f"{where}.status: a {event.status.value!r} event is job-level (job must not be null)"
    elif not event.job:
        problem = f"{where}.job: empty job name (use null for a workflow-level event)"
    elif event.status in WORKFLOW_ONLY_STATUSES:
        problem = f"{where}.status: a {event.status.value!r} event is workflow-level (job null), got job {event.job!r}"
    elif event.attempt < 1:
        problem = f"{where}.attempt: a job event has attempt >= 1, got {event.attempt}"
    if problem is None:
        expected = status_key(event.run_id, event.job, event.attempt, event.status.value)
        if event.key != expected:
            problem = f"{where}.key: {event.key!r} does not match the event's fields (expected {expected!r})"
    if problem is not None:
        raise EventError(problem, **context)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- plain JSON


def to_plain(value: Any) -> Any:
    """A BSON value as plain JSON data, the way the trigger's default JSON flattens it.

    ObjectId -> hex string, datetime -> ISO-8601 string (UTC, milliseconds), Int64 -> int,
    Decimal128 -> string, Timestamp -> ``{"T": seconds, "I": increment}``; containers recursively.
    """
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if isinstance(value, bool | str | float) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, DatetimeMS):
        return _iso(value.as_datetime())
    if isinstance(value, Decimal128):
        return str(value)
    if isinstance(value, Timestamp):
        return {"T": value.time, "I": value.inc}
    return str(value)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- building (local bus)


def to_envelope(
    status_doc: Mapping[str, Any],
    *,
    database: str,
    collection: str,
    json_format: JsonFormat = "relaxed",
    trigger_id: str = "000000000000000000000000",
    account: str = "000000000000",
    region: str = "us-east-1",
    event_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The EventBridge event the Atlas trigger would send for inserting ``status_doc``.

    ``status_doc`` is the document as inserted into ``statuses`` (an ``_id`` ObjectId and a datetime
    ``time`` are fine; without ``_id`` a fresh ObjectId is used). Dates keep millisecond precision,
    as in MongoDB. ``json_format`` picks the trigger's output form (relaxed Extended JSON by default).
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    document = dict(status_doc)
    document_id = document.setdefault("_id", ObjectId())
    cluster_time = Timestamp(int(moment.timestamp()), 1)
    detail: dict[str, Any] = {
        "_id": {"_data": _resume_token(cluster_time, document_id)},
        "operationType": "insert",
        "clusterTime": cluster_time,
        "fullDocument": document,
        "ns": {"db": database, "coll": collection},
        "documentKey": {"_id": document_id},
    }
    if json_format == "default":
        detail_json = to_plain(detail)
    elif json_format == "relaxed":
        detail_json = _relaxed(detail)
    else:
        detail_json = json.loads(json_util.dumps(detail, json_options=CANONICAL_JSON_OPTIONS))
    source = f"{TRIGGER_SOURCE_PREFIX}{trigger_id}"
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": f"{DETAIL_TYPE_PREFIX}{database}.{collection}",
        "source": source,
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}::event-source/{source}"],
        "detail": detail_json,
    }


def _relaxed(value: Any) -> Any:
    """``json.loads(json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS))``, without the text.

    Plain JSON values are kept, every other value becomes what ``json_util.default`` writes for it;
    a value that is neither goes through the text round trip, which reports it.
    """
    kind = type(value)
    if kind is dict and all(type(key) is str for key in value):
        return {key: _relaxed(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_relaxed(item) for item in value]
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float and value == value and abs(value) != float("inf"):
        return value
    if kind is datetime or kind is ObjectId or kind is Timestamp:
        return json_util.default(value, RELAXED_JSON_OPTIONS)
    return json.loads(json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS))


def _resume_token(cluster_time: Timestamp, document_id: object) -> str:
    """A resume-token-shaped ``_data`` string (opaque to flowkit, only kept for realism)."""
    key = document_id.binary.hex() if isinstance(document_id, ObjectId) else str(document_id).encode().hex()
    return f"82{cluster_time.time:08X}{cluster_time.inc:08X}2B022C0100296E5A1004{key.upper()}0004"
