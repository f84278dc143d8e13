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
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

from bson import json_util
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS, JSONOptions
from bson.objectid import ObjectId
from bson.timestamp import Timestamp
from pydantic import ValidationError

from flowkit.document import EventStatus, StatusEvent, status_key
from flowkit.errors import EventError

__all__ = [
    "DETAIL_TYPE_PREFIX",
    "TRIGGER_SOURCE_PREFIX",
    "JsonFormat",
    "parse_event",
    "to_envelope",
]

TRIGGER_SOURCE_PREFIX: Final = "aws.partner/mongodb.com/stitch.trigger/"
DETAIL_TYPE_PREFIX: Final = "MongoDB Database Trigger for "

JsonFormat = Literal["relaxed", "canonical", "default"]
"""How ``detail`` is written: relaxed / canonical Extended JSON, or the trigger's default JSON."""

_DECODE_OPTIONS: Final = JSONOptions(tz_aware=True, tzinfo=UTC)
_STATUSES: Final = ", ".join(status.value for status in EventStatus)
_ROOT: Final = "event"


# --------------------------------------------------------------------------- parsing


def parse_event(
    envelope: object, *, database: str | None = None, collection: str | None = None
) -> StatusEvent:
    """The status event carried by an Atlas-trigger EventBridge ``envelope``.

    ``database`` / ``collection``, when given, must match the change event's namespace (``detail.ns``):
    handlers pass their settings so that a rule wired to the wrong trigger fails loudly.

    Raises :class:`EventError` for anything malformed; the message names the offending path, e.g.
    ``event.detail.fullDocument.status: 'done' is not one of started, success, failed``.
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
    document = _decode(_mapping(detail["fullDocument"], f"{where}.fullDocument"), f"{where}.fullDocument")
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
        decoded = json_util.loads(json.dumps(document), json_options=_DECODE_OPTIONS)
    except Exception as exc:  # json_util raises ValueError, TypeError or bson.errors.* for bad wrappers
        raise EventError(f"{_bad_field(document, where)}: invalid Extended JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise EventError(f"{where}: expected a JSON object, got {type(decoded).__name__}")
    return decoded


def _bad_field(document: Mapping[str, Any], where: str) -> str:
    """The path of the first top-level field that does not decode (for the error message)."""
    for name, value in document.items():
        try:
            json_util.loads(json.dumps(value), json_options=_DECODE_OPTIONS)
        except Exception:
            return f"{where}.{name}"
    return where


def _status_event(document: dict[str, Any], where: str) -> StatusEvent:
    fields = dict(document)
    for name in ("output", "error"):
        if name in fields:
            fields[name] = to_plain(fields[name])
    for name in ("attempt",):
        if isinstance(fields.get(name), Int64):
            fields[name] = int(fields[name])
    try:
        event = StatusEvent.model_validate(fields)
    except ValidationError as exc:
        raise EventError(
            "; ".join(_describe(error, where) for error in exc.errors(include_url=False)),
            **_context(fields),
        ) from exc
    _check_consistency(event, where)
    moment = event.time.replace(tzinfo=UTC) if event.time.tzinfo is None else event.time.astimezone(UTC)
    return event.model_copy(update={"time": moment})


def _context(fields: Mapping[str, Any]) -> dict[str, str | None]:
    """What is known of the event's run, for ``EventError``'s attributes (only well-typed values)."""

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) else None

    return {"run_id": text("run_id"), "workflow": text("workflow"), "job": text("job")}


def _describe(error: Any, where: str) -> str:
    path = ".".join([where, *(str(part) for part in error["loc"])])
    value = error.get("input")
    if error["type"] == "missing":
        return f"{path}: missing"
    if error["type"] == "enum":
        return f"{path}: {_short(value)} is not one of {_STATUSES}"
    return f"{path}: {error['msg'].lower()} (got {_short(value)})"


def _check_consistency(event: StatusEvent, where: str) -> None:
    context = {"run_id": event.run_id, "workflow": event.workflow, "job": event.job}
    problem: str | None = None
    if event.job is None:
        if event.attempt != 0:
            problem = f"{where}.attempt: a workflow-level event (job null) has attempt 0, got {event.attempt}"
    elif not event.job:
        problem = f"{where}.job: empty job name (use null for a workflow-level event)"
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
    else:
        options = RELAXED_JSON_OPTIONS if json_format == "relaxed" else CANONICAL_JSON_OPTIONS
        detail_json = json.loads(json_util.dumps(detail, json_options=options))
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


def _resume_token(cluster_time: Timestamp, document_id: object) -> str:
    """A resume-token-shaped ``_data`` string (opaque to flowkit, only kept for realism)."""
    key = document_id.binary.hex() if isinstance(document_id, ObjectId) else str(document_id).encode().hex()
    return f"82{cluster_time.time:08X}{cluster_time.inc:08X}2B022C0100296E5A1004{key.upper()}0004"
