"""Atlas-trigger EventBridge envelopes -> Status (the runtime's pydantic-free StatusEvent), and back."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from _events import event_names, load_event
from bson import Int64, ObjectId, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.document import EventStatus as SchemaStatus
from flowkit.document import JobError, StatusEvent, status_key
from flowkit.errors import EventError
from flowkit.runtime.events import (
    STATUS_VALUES,
    ErrorInfo,
    EventStatus,
    Status,
    parse_event,
    to_envelope,
    to_plain,
)

RUN = "nightly-etl-2026-11-27"


def at(second: int, millis: int) -> datetime:
    return datetime(2026, 11, 27, 2, 0, second, millis * 1000, tzinfo=UTC)


# What each well-formed fixture carries, written out by hand from the JSON files.
EXPECTED: dict[str, dict[str, Any]] = {
    "run_started_default": dict(job=None, attempt=0, status="started", time=at(3, 120)),
    "job_started_relaxed": dict(job="extract", attempt=1, status="started", time=at(4, 532)),
    "job_success_relaxed": dict(
        job="extract",
        attempt=1,
        status="success",
        time=at(19, 7),
        output={
            "rows": 18234,
            "files": [
                "s3://etl-raw/2026-11-27/part-0000.parquet",
                "s3://etl-raw/2026-11-27/part-0001.parquet",
            ],
            "exported_at": "2026-11-27T02:00:18.950Z",
        },
    ),
    "job_success_canonical": dict(
        job="transform",
        attempt=1,
        status="success",
        time=at(29, 411),
        output={"rows": 18230, "dropped": 4, "ratio": 0.99978},
    ),
    "job_success_default": dict(
        job="transform",
        attempt=1,
        status="success",
        time=at(30, 2),
        output={"rows": 18230, "batch": "67466fa5e4b0c1d2a3f4ffff", "finished": "2026-11-27T02:00:29.990Z"},
    ),
    "job_failed_canonical": dict(
        job="load",
        attempt=2,
        status="failed",
        time=at(41, 880),
        error=ErrorInfo(
            type="OperationalError",
            message="could not connect to server: Connection timed out\n\tIs the server running on host "
            '"warehouse.internal" and accepting TCP/IP connections on port 5432?',
        ),
    ),
    "job_failed_relaxed": dict(
        job="load",
        attempt=1,
        status="failed",
        time=at(40, 15),
        error=ErrorInfo(type="TimeoutError", message="warehouse did not answer within 30s"),
    ),
    "run_failed_relaxed": dict(
        job=None,
        attempt=0,
        status="failed",
        time=at(42, 300),
        error=ErrorInfo(type="JobFailed", message="job 'load' failed"),
    ),
    "run_succeeded_canonical": dict(job=None, attempt=0, status="success", time=at(57, 640)),
}

MALFORMED: dict[str, str] = {
    "wrong_source": "event.source: 'aws.partner/example.com/1234/orders' is not a MongoDB Atlas trigger source",
    "wrong_detail_type": "event.detail-type: 'MongoDB Scheduled Trigger' is not a database trigger event",
    "not_insert": "event.detail.operationType: 'update' is not 'insert'",
    "missing_full_document": "event.detail.fullDocument: missing; turn on 'Full Document' in the Atlas trigger",
    "detail_not_object": "event.detail: expected a JSON object, got str",
    "bad_status": "event.detail.fullDocument.status: 'done' is not one of started, success, failed, timed_out, retrying, cancelled",
    "bad_attempt_type": "event.detail.fullDocument.attempt: input should be a valid integer",
    "missing_run_id": "event.detail.fullDocument.run_id: missing",
    "bad_date": "event.detail.fullDocument.time: invalid Extended JSON",
    "key_mismatch": "event.detail.fullDocument.key: 'nightly-etl-2026-11-27/extract/2/success' does not match",
    "wrong_collection": "event.detail.ns.coll: 'state-machines' is not 'statuses'",
}


# --------------------------------------------------------------------------- well-formed fixtures


def test_every_fixture_has_expectations() -> None:
    assert sorted(EXPECTED) == event_names()
    assert sorted(f"malformed/{name}" for name in MALFORMED) == event_names(malformed=True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_the_status_event_it_carries(name: str) -> None:
    # given
    envelope = load_event(name)
    want = EXPECTED[name]
    # when
    event = parse_event(envelope, database="flowkit", collection="statuses")
    # then
    assert event == Status(
        key=status_key(RUN, want["job"], want["attempt"], want["status"]),
        run_id=RUN,
        workflow="nightly-etl",
        job=want["job"],
        attempt=want["attempt"],
        status=EventStatus(want["status"]),
        output=want.get("output"),
        error=want.get("error"),
        time=want["time"],
    )
    assert event.time.tzinfo is UTC


# --------------------------------------------------------------------------- agreement with the schema


def as_model(status: Status) -> StatusEvent:
    """The published pydantic model of the same event (raises if the runtime type drifted from it)."""
    return StatusEvent.model_validate(status.as_document())


def test_the_runtime_type_has_the_fields_of_the_published_schema() -> None:
    assert [field.name for field in dataclasses.fields(Status)] == list(StatusEvent.model_fields)
    assert [field.name for field in dataclasses.fields(ErrorInfo)] == list(JobError.model_fields)
    assert STATUS_VALUES == tuple(EventStatus) == tuple(SchemaStatus)
    assert [(s.name, s.value) for s in EventStatus] == [(s.name, s.value) for s in SchemaStatus]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_published_schema_accepts_every_parsed_fixture_unchanged(name: str) -> None:
    # given the fixture parsed by the runtime
    status = parse_event(load_event(name))
    # when the pydantic model validates what the runtime parsed
    model = as_model(status)
    # then it holds the same values, field by field, and dumps the same JSON
    assert model.model_dump() == status.as_document()
    assert list(status.as_document()) == list(StatusEvent.model_fields)
    assert model.model_dump(mode="json") == status.as_json()
    # and the model's own parse of the raw document agrees (where the raw form is plain JSON)
    if name.endswith("_default"):
        raw = load_event(name)["detail"]["fullDocument"]
        assert StatusEvent.model_validate(raw) == model


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parsing_does_not_modify_the_event(name: str) -> None:
    envelope = load_event(name)
    before = copy.deepcopy(envelope)
    parse_event(envelope)
    assert envelope == before


def test_the_three_json_forms_of_one_document_parse_to_the_same_event() -> None:
    # given the relaxed fixture, rewritten by bson.json_util (not by flowkit) as canonical and plain JSON
    relaxed = load_event("job_success_relaxed")
    document = json_util.loads(json.dumps(relaxed["detail"]))
    canonical = {
        **relaxed,
        "detail": json.loads(json_util.dumps(document, json_options=CANONICAL_JSON_OPTIONS)),
    }
    assert canonical["detail"]["fullDocument"]["attempt"] == {"$numberInt": "1"}
    plain = copy.deepcopy(relaxed)
    plain["detail"]["fullDocument"]["_id"] = relaxed["detail"]["fullDocument"]["_id"]["$oid"]
    plain["detail"]["fullDocument"]["time"] = relaxed["detail"]["fullDocument"]["time"]["$date"]
    plain["detail"]["fullDocument"]["output"]["exported_at"] = "2026-11-27T02:00:18.950Z"
    # when / then
    assert parse_event(canonical) == parse_event(relaxed) == parse_event(plain)


def test_default_json_time_as_epoch_milliseconds_is_accepted() -> None:
    envelope = load_event("run_started_default")
    envelope["detail"]["fullDocument"]["time"] = 1795744803120
    assert parse_event(envelope).time == at(3, 120)


def test_default_json_time_without_zone_is_utc() -> None:
    envelope = load_event("run_started_default")
    envelope["detail"]["fullDocument"]["time"] = "2026-11-27T02:00:03.120"
    assert parse_event(envelope).time == at(3, 120)


def test_unknown_fields_of_the_status_document_are_ignored() -> None:
    envelope = load_event("job_started_relaxed")
    envelope["detail"]["fullDocument"]["reported_by"] = (
        "arn:aws:lambda:eu-west-1:123456789012:function:extract"
    )
    assert parse_event(envelope).job == "extract"


# --------------------------------------------------------------------------- malformed events


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_fixture_raises_a_clear_event_error(name: str) -> None:
    envelope = load_event(f"malformed/{name}")
    before = copy.deepcopy(envelope)
    with pytest.raises(EventError) as caught:
        parse_event(envelope, database="flowkit", collection="statuses")
    assert MALFORMED[name] in str(caught.value)
    assert envelope == before


def test_namespace_is_only_checked_when_asked() -> None:
    event = parse_event(load_event("malformed/wrong_collection"))
    assert event.job == "extract"


def test_wrong_database_is_named() -> None:
    with pytest.raises(EventError, match=r"event\.detail\.ns\.db: 'flowkit' is not 'prod'"):
        parse_event(load_event("job_started_relaxed"), database="prod")


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        (None, "event: missing"),
        ([], "event: expected a JSON object, got list"),
        ("{}", "event: expected a JSON object, got str"),
        ({}, "event.source: missing (is this an EventBridge event?)"),
        ({"source": 7}, "event.source: expected a string, got int"),
    ],
)
def test_not_an_eventbridge_event(envelope: object, message: str) -> None:
    with pytest.raises(EventError, match="^" + re.escape(message)):
        parse_event(envelope)


def test_the_bare_full_document_is_not_an_event() -> None:
    document = load_event("job_started_relaxed")["detail"]["fullDocument"]
    with pytest.raises(EventError, match=r"event\.source: missing"):
        parse_event(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"job": None, "attempt": -1, "key": f"{RUN}/*/-1/started"},
            "workflow-level event (job null) has attempt >= 0 (the run's redrive count), got -1",
        ),
        ({"attempt": 0, "key": f"{RUN}/extract/0/started"}, "a job event has attempt >= 1, got 0"),
        ({"job": "", "key": f"{RUN}/*/1/started"}, "empty job name"),
        (
            {"status": "cancelled", "key": f"{RUN}/extract/1/cancelled"},
            "a 'cancelled' event is workflow-level (job null), got job 'extract'",
        ),
        ({"error": {"type": "X"}}, "event.detail.fullDocument.error.message: missing"),
        ({"time": None}, "event.detail.fullDocument.time: input should be a valid datetime"),
        ({"attempt": {"$numberInt": "one"}}, "event.detail.fullDocument.attempt: invalid Extended JSON"),
        ({"_id": {"$oid": "not-hex"}}, "event.detail.fullDocument._id: invalid Extended JSON"),
    ],
)
def test_inconsistent_status_documents_are_rejected(change: dict[str, Any], message: str) -> None:
    envelope = load_event("job_started_relaxed")
    envelope["detail"]["fullDocument"].update(change)
    with pytest.raises(EventError, match=re.escape(message)):
        parse_event(envelope)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": 5}, "event.detail.fullDocument.key: input should be a valid string (got 5)"),
        ({"job": ["a"]}, "event.detail.fullDocument.job: input should be a valid string (got ['a'])"),
        ({"attempt": True}, "event.detail.fullDocument.attempt: input should be a valid integer (got True)"),
        ({"attempt": "1"}, "event.detail.fullDocument.attempt: input should be a valid integer (got '1')"),
        ({"attempt": None}, "event.detail.fullDocument.attempt: input should be a valid integer (got None)"),
        (
            {"status": None},
            "event.detail.fullDocument.status: None is not one of started, success, failed, timed_out, retrying, cancelled",
        ),
        (
            {"error": {"type": "X", "message": "m", "trace": "..."}},
            "event.detail.fullDocument.error.trace: extra inputs are not permitted",
        ),
        (
            {"error": "boom"},
            "event.detail.fullDocument.error: input should be an object with type and message",
        ),
        (
            {"error": {"type": 1, "message": "m"}},
            "event.detail.fullDocument.error.type: input should be a valid",
        ),
        (
            {"time": "yesterday"},
            "event.detail.fullDocument.time: input should be a valid datetime (got 'yesterday')",
        ),
        ({"time": True}, "event.detail.fullDocument.time: input should be a valid datetime (got True)"),
        ({"time": 1e300}, "event.detail.fullDocument.time: input should be a valid datetime"),
    ],
)
def test_wrongly_typed_fields_are_named(change: dict[str, Any], message: str) -> None:
    envelope = load_event("job_started_relaxed")
    envelope["detail"]["fullDocument"].update(change)
    with pytest.raises(EventError, match="^" + re.escape(message)):
        parse_event(envelope)


@pytest.mark.parametrize("name", ["key", "run_id", "workflow", "status", "time"])
def test_every_required_field_is_checked(name: str) -> None:
    envelope = load_event("job_started_relaxed")
    del envelope["detail"]["fullDocument"][name]
    with pytest.raises(EventError, match=f"^event\\.detail\\.fullDocument\\.{name}: missing$"):
        parse_event(envelope)


@pytest.mark.parametrize(
    "time",
    [1795744803.12, "1795744803120", "2026-11-27T03:00:03.120+01:00", "2026-11-27 02:00:03.120Z"],
)
def test_default_json_times_in_other_forms(time: object) -> None:
    envelope = load_event("run_started_default")
    envelope["detail"]["fullDocument"]["time"] = time
    parsed = parse_event(envelope).time
    assert parsed == at(3, 120) and parsed.tzinfo is UTC


def test_a_job_event_without_attempt_is_inconsistent() -> None:
    envelope = load_event("job_started_relaxed")
    del envelope["detail"]["fullDocument"]["attempt"]  # defaults to 0, as in the schema
    with pytest.raises(EventError, match="a job event has attempt >= 1, got 0"):
        parse_event(envelope)


def test_status_is_immutable() -> None:
    status = parse_event(load_event("job_started_relaxed"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.job = "other"  # type: ignore[misc]


def test_several_problems_are_reported_together() -> None:
    envelope = load_event("job_started_relaxed")
    del envelope["detail"]["fullDocument"]["workflow"]
    envelope["detail"]["fullDocument"]["status"] = "running"
    with pytest.raises(EventError) as caught:
        parse_event(envelope)
    assert str(caught.value) == (
        "event.detail.fullDocument.workflow: missing; "
        "event.detail.fullDocument.status: 'running' is not one of started, success, failed, timed_out, retrying, cancelled"
    )


# --------------------------------------------------------------------------- building envelopes


def status_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": ObjectId("67466f9ae4b0c1d2a3f40003"),
        "key": f"{RUN}/extract/1/success",
        "run_id": RUN,
        "workflow": "nightly-etl",
        "job": "extract",
        "attempt": 1,
        "status": "success",
        "output": {"rows": 3},
        "error": None,
        "time": at(19, 7),
    }
    return {**doc, **overrides}


def test_envelope_has_the_shape_of_the_atlas_trigger_event() -> None:
    envelope = to_envelope(
        status_doc(),
        database="flowkit",
        collection="statuses",
        trigger_id="6745a1c2e4b0f3a91d2c7e55",
        region="eu-west-1",
        account="123456789012",
        now=at(20, 0),
    )
    real = load_event("job_success_relaxed")
    assert list(envelope) == list(real)
    assert list(envelope["detail"]) == list(real["detail"])
    assert envelope["source"] == "aws.partner/mongodb.com/stitch.trigger/6745a1c2e4b0f3a91d2c7e55"
    assert envelope["detail-type"] == "MongoDB Database Trigger for flowkit.statuses"
    assert envelope["resources"] == [
        "arn:aws:events:eu-west-1::event-source/aws.partner/mongodb.com/stitch.trigger/6745a1c2e4b0f3a91d2c7e55"
    ]
    assert envelope["time"] == "2026-11-27T02:00:20Z"
    assert envelope["detail"]["documentKey"] == {"_id": {"$oid": "67466f9ae4b0c1d2a3f40003"}}
    assert envelope["detail"]["fullDocument"]["time"] == {"$date": "2026-11-27T02:00:19.007Z"}
    json.dumps(envelope)  # plain JSON, as EventBridge delivers it


def test_envelope_does_not_modify_the_status_document() -> None:
    doc = status_doc()
    del doc["_id"]
    before = copy.deepcopy(doc)
    envelope = to_envelope(doc, database="flowkit", collection="statuses")
    assert doc == before
    assert ObjectId.is_valid(envelope["detail"]["fullDocument"]["_id"]["$oid"])


@pytest.mark.parametrize(
    ("json_format", "attempt", "time"),
    [
        ("relaxed", 1, {"$date": "2026-11-27T02:00:19.007Z"}),
        ("canonical", {"$numberInt": "1"}, {"$date": {"$numberLong": "1795744819007"}}),
        ("default", 1, "2026-11-27T02:00:19.007Z"),
    ],
)
def test_envelope_json_formats(json_format: Any, attempt: object, time: object) -> None:
    document = to_envelope(status_doc(), database="flowkit", collection="statuses", json_format=json_format)[
        "detail"
    ]["fullDocument"]
    assert (document["attempt"], document["time"]) == (attempt, time)


def test_to_plain_flattens_bson_types() -> None:
    assert to_plain(
        {
            "id": ObjectId("67466f9ae4b0c1d2a3f40003"),
            "at": datetime(2026, 1, 2, 3, 4, 5, 678901),
            "n": [1, 2.5],
        }
    ) == {"id": "67466f9ae4b0c1d2a3f40003", "at": "2026-01-02T03:04:05.678Z", "n": [1, 2.5]}


names = st.text(st.characters(categories=["L", "N"], include_characters="-_."), min_size=1, max_size=20)
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10).filter(lambda key: not key.startswith("$")), inner, max_size=4)
    ),
    max_leaves=12,
)
times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


@st.composite
def status_docs(draw: st.DrawFn) -> dict[str, Any]:
    run_id = draw(names)
    job = draw(st.none() | names)
    attempt = 0 if job is None else draw(st.integers(min_value=1, max_value=2**31))
    status = draw(st.sampled_from(["started", "success", "failed"]))
    error = draw(st.none() | st.builds(dict, type=names, message=st.text(max_size=50)))
    return {
        "_id": ObjectId(),
        "key": status_key(run_id, job, attempt, status),
        "run_id": run_id,
        "workflow": draw(names),
        "job": job,
        "attempt": attempt,
        "status": status,
        "output": draw(json_value),
        "error": error,
        "time": draw(times),
    }


@settings(max_examples=150, deadline=None)
@given(doc=status_docs(), json_format=st.sampled_from(["relaxed", "canonical", "default"]))
def test_parse_event_round_trips_to_envelope(doc: dict[str, Any], json_format: Any) -> None:
    envelope = to_envelope(doc, database="flowkit", collection="statuses", json_format=json_format)
    envelope = json.loads(json.dumps(envelope))  # what goes over the wire is JSON text
    status = parse_event(envelope, database="flowkit", collection="statuses")
    assert as_model(status) == StatusEvent.model_validate(doc)
    assert status.as_json() == StatusEvent.model_validate(doc).model_dump(mode="json")


# --------------------------------------------------------------------------- import cost


def test_runtime_edge_modules_import_nothing_heavy() -> None:
    forbidden = ["networkx", "graphviz", "rich", "flowkit.dsl", "flowkit.cli", "slack_sdk", "boto3"]
    code = (
        "import sys, flowkit.runtime.events, flowkit.runtime.notify\n"
        f"print([name for name in {forbidden!r} if name in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("attempt", "parsed"), [(2.0, 2), (Int64(3), 3)])
def test_whole_numbers_of_any_type_are_attempts(attempt: object, parsed: int) -> None:
    envelope = load_event("job_started_relaxed")
    envelope["detail"]["fullDocument"].update(attempt=attempt, key=f"{RUN}/extract/{parsed}/started")
    if isinstance(attempt, Int64):
        envelope["detail"]["fullDocument"]["attempt"] = {"$numberLong": str(parsed)}
    assert parse_event(envelope).attempt == parsed


def test_fractional_attempt_is_rejected() -> None:
    envelope = load_event("job_started_relaxed")
    envelope["detail"]["fullDocument"]["attempt"] = 1.5
    with pytest.raises(
        EventError, match=r"event\.detail\.fullDocument\.attempt: input should be a valid integer"
    ):
        parse_event(envelope)


def test_event_errors_carry_what_is_known_of_the_run() -> None:
    with pytest.raises(EventError) as caught:
        parse_event(load_event("malformed/bad_status"))
    assert (caught.value.run_id, caught.value.workflow, caught.value.job) == (RUN, "nightly-etl", "extract")
    with pytest.raises(EventError) as caught:
        parse_event(load_event("malformed/key_mismatch"))
    assert caught.value.run_id == RUN
    with pytest.raises(EventError) as caught:
        parse_event(load_event("malformed/missing_run_id"))
    assert (caught.value.run_id, caught.value.job) == (None, "extract")


# What the trigger's JSON can hold: plain JSON values and the Extended JSON wrappers (some malformed).
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(
        [
            {"$oid": "5f0000000000000000000001"},
            {"$oid": "not hex"},
            {"$date": "2026-11-27T02:00:01.250Z"},
            {"$date": {"$numberLong": "1764208801250"}},
            {"$date": "yesterday"},
            {"$numberLong": "12"},
            {"$numberInt": "x"},
            {"$numberDouble": "NaN"},
            {"$timestamp": {"t": 5, "i": 1}},
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


def _text_round_trip(value: Any, options: Any) -> Any:
    try:
        return json_util.loads(json.dumps(value), json_options=options)
    except Exception as exc:
        return type(exc)


@given(value=st.dictionaries(st.text(max_size=5), _json_values, max_size=5))
def test_decoding_the_status_fields_without_text_matches_the_text_round_trip(value: dict[str, Any]) -> None:
    # parse_event decodes a status document's own fields in memory; json_util's text round trip is the
    # reference (anything the fast path cannot take goes through that round trip itself).
    from flowkit.runtime.events import _DECODE_OPTIONS, _NOT_PLAIN, _decode_json

    expected = _text_round_trip(value, _DECODE_OPTIONS)
    try:
        got = _decode_json(value)
    except Exception as exc:  # a bad wrapper raises as in the round trip
        assert type(exc) is expected
        return
    if got is not _NOT_PLAIN:  # else parse_event takes the round trip
        assert repr(got) == repr(expected)


_bson_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.datetimes(timezones=st.just(UTC))
    | st.datetimes()
    | st.builds(ObjectId)
    | st.builds(Int64, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(value=st.dictionaries(st.text(max_size=5), _bson_values, max_size=5))
def test_the_relaxed_envelope_is_what_json_util_writes(value: dict[str, Any]) -> None:
    from flowkit.runtime.events import _relaxed

    expected = json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
    assert json.dumps(_relaxed(value), sort_keys=True) == json.dumps(expected, sort_keys=True)
