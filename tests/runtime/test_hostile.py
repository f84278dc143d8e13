"""Hostile input on purpose: whatever arrives, a run progresses or ends with a clear error, no job body
runs twice for one attempt, and stored user data is exactly what the user produced.

Each test feeds one kind of bad input found by an adversarial pass (values JSON cannot carry, Extended
JSON look-alikes in users' data, repeated invocations, job names that are paths, conditions this
runtime cannot evaluate, sizes over the services' limits, events flowkit owes) to the real store,
handlers and Reporter.
"""

from __future__ import annotations

import math
from typing import Any

import bson
import pytest
from _harness import RUNS, STATUSES, World, document, job, status_is

from flowkit.errors import DispatchUncertain, RejectedReport, RunError
from flowkit.runtime.events import decode_data, parse_event, to_envelope
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.report import Reporter, reported
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store, job_path, make_status

A_THEN_B = document("wf", [job("a"), job("b", "a")])


@pytest.fixture(autouse=True, params=["counted", "whole"])
def decisions(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test on both decision paths: on counters (most workflows), and on whole run documents
    (workflows with failure paths or always jobs), forced here for any workflow."""
    if request.param == "whole":
        monkeypatch.setattr(Runtime, "_counted", lambda self, run_id: None)
    return str(request.param)


def _stand_in(request: pytest.FixtureRequest) -> bool:
    """Whether this test talks to the nx-27017 stand-in (not the embedded store, not a real MongoDB)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("any_database") != "wire":
        return False
    return bool(request.getfixturevalue("wire_server").stand_in)


def drain(world: World) -> None:
    """Deliver every event and run every dispatched job (FIFO) until nothing is left."""
    world.drain()


def run_of(world: World, run_id: str = "r") -> dict[str, Any]:
    """The stored run, with its outputs and errors too big to keep inline read from the results."""
    run = world.store.get_run(run_id)
    assert run is not None
    return dict(world.store.resolve_run(run))


def statuses(world: World, run_id: str = "r") -> list[str]:
    return sorted(doc["key"] for doc in world.store.statuses.find({"run_id": run_id}))


# ---------------------------------------------------------------------- 1. claim, then raise


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_a_payload_json_cannot_carry_fails_the_claimed_job_instead_of_sticking_it(
    any_database: Any, bad: Any, request: pytest.FixtureRequest
) -> None:
    if _stand_in(request):
        pytest.skip("nx-27017 cannot store NaN or infinity (MongoDB can: set FLOWKIT_TEST_MONGO_URI)")
    # Given a stored run whose input JSON cannot carry (a document edited by hand or by other code)
    world = World(any_database)
    start_run(world.store, A_THEN_B, {}, run_id="r")
    world.store.runs.update_one({"_id": "r"}, {"$set": {"input": {"v": bad}}})
    # When the orchestrator claims a, whose payload carries the input
    result = world.runtime.orchestrator_job(world.deliveries.pop(0).envelope)
    # Then a is not left dispatched: it failed with a DispatchError naming the problem, and its event exists
    a = run_of(world)["jobs"]["a"]
    assert result["dispatched"] == []
    assert (a["state"], a["attempt"], a["error"]["type"]) == ("failed", 1, "DispatchError")
    assert "payload of job 'a' of run 'r' cannot be encoded as JSON" in a["error"]["message"]
    assert world.store.statuses.find_one({"key": "r/a/1/failed"})["error"] == a["error"]
    drain(world)
    assert run_of(world)["status"] == "failed"
    assert world.dispatcher.dispatched == []


def test_a_dispatcher_error_after_a_claim_releases_it_and_later_claims_are_released_too(
    database: Any,
) -> None:
    world = World(database)
    start_run(
        world.store,
        document("wf", [job("a"), job("b"), job("c")], phases=[("p", ["a", "b", "c"])]),
        {},
        run_id="r",
    )
    world.dispatcher.fail_for = {"a"}
    with pytest.raises(ConnectionError):
        world.deliver(world.deliveries.pop(0))
    # nothing stays claimed: a's claim and the claims not dispatched yet are all given back
    assert {name: j["state"] for name, j in run_of(world)["jobs"].items()} == {
        "a": "pending",
        "b": "pending",
        "c": "pending",
    }


# ---------------------------------------------------------------------- 2. @reported never leaves a job running


@pytest.fixture
def reporter(any_database: Any) -> Reporter:
    store = Store(any_database, runs=RUNS, statuses=STATUSES)
    store.ensure_indexes()
    start_run(store, A_THEN_B, {}, run_id="r")
    store.claim("r", "a", 0)
    return Reporter(store)


def payload() -> dict[str, Any]:
    return {
        "run_id": "r",
        "workflow": "wf",
        "job": "a",
        "attempt": 1,
        "input": {},
        "job_input": {},
        "needs": {},
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"v": math.nan}, "output.v: nan is not a JSON number"),
        ({1, 2}, "output: a set is not JSON data"),
        ({"big": 2**63}, "output.big: the integer 9223372036854775808 does not fit in 64 bits"),
        ({"s": "a\udc80b"}, "output.s: the string holds a lone surrogate"),
        ({"count": {"$numberLong": "5"}}, "output.count: has a key '$numberLong' starting with '$'"),
        ({"a.b": 1}, "output: has a key 'a.b' holding '.'"),
        ({1: "x"}, "output: has a key 1 of type int"),
    ],
    ids=["nan", "set", "int64", "surrogate", "dollar", "dotted", "int-key"],
)
def test_reported_fails_a_job_whose_output_cannot_be_stored_unchanged(
    reporter: Reporter, value: Any, problem: str
) -> None:
    handler = reported(reporter=reporter)(lambda event, context: value)
    result = handler(payload(), None)
    assert result["status"] == "failed"
    event = reporter.store.statuses.find_one({"key": "r/a/1/failed"})
    assert event["error"]["type"] == "InvalidOutput"
    assert problem in event["error"]["message"]
    assert reporter.store.statuses.find_one({"key": "r/a/1/success"}) is None


def test_an_output_nested_deeper_than_mongodb_allows_is_refused_at_report_time(reporter: Reporter) -> None:
    deep: Any = 1
    for _ in range(98):
        deep = {"k": deep}
    handler = reported(reporter=reporter)(lambda event, context: deep)
    assert handler(payload(), None)["status"] == "failed"
    message = reporter.store.statuses.find_one({"key": "r/a/1/failed"})["error"]["message"]
    assert "nested deeper than the 97 levels allowed here" in message


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()], ids=["exit", "interrupt"])
def test_reported_reports_a_base_exception_then_reraises_it(reporter: Reporter, exc: BaseException) -> None:
    def body(event: Any, context: Any) -> Any:
        raise exc

    with pytest.raises(type(exc)):
        reported(reporter=reporter)(body)(payload(), None)
    event = reporter.store.statuses.find_one({"key": "r/a/1/failed"})
    assert event["error"]["type"] == type(exc).__name__


def test_an_error_message_is_cut_with_a_marker_and_made_storable(reporter: Reporter) -> None:
    def body(event: Any, context: Any) -> Any:
        raise ValueError("\udc80" + "x" * 1_000_000)

    reported(reporter=reporter)(body)(payload(), None)
    message = reporter.store.statuses.find_one({"key": "r/a/1/failed"})["error"]["message"]
    assert len(message) <= 8192
    assert message.startswith("\\udc80xxx")
    assert message.endswith("more characters cut]")


def test_an_output_over_the_event_size_limit_is_refused_at_report_time(reporter: Reporter) -> None:
    # 20,000 small numbers: 200 KB of BSON (under the output limit), 420 KB of canonical Extended JSON
    handler = reported(reporter=reporter)(lambda event, context: {"blob": [1] * 20_000})
    assert handler(payload(), None)["status"] == "failed"
    message = reporter.store.statuses.find_one({"key": "r/a/1/failed"})["error"]["message"]
    assert "over the 262144-byte limit of an EventBridge entry" in message


# ---------------------------------------------------------------------- 3. users' data is not Extended JSON


ROUND_TRIP = [
    {"count": 5, "big": 2**62, "neg": -(2**63), "f": 1.5, "whole": 5.0, "tiny": 5e-324},
    {"date": "2026-01-01T00:00:00Z", "oid": "5f0c0c0c0c0c0c0c0c0c0c0c", "empty": {}, "list": [[], [{}]]},
    {"unicode": "é😀\u0000nul", "nested": {"a": [1, {"b": None, "c": True}]}},
    [1, "two", 3.0],
    "plain string",
    None,
]


@pytest.mark.parametrize("json_format", ["relaxed", "canonical", "default"])
@pytest.mark.parametrize("output", ROUND_TRIP)
def test_a_users_output_survives_the_trigger_exactly(json_format: Any, output: Any) -> None:
    status = make_status("r", "wf", "a", 1, "success", output=output)
    event = to_envelope(status, database="db", collection="statuses", json_format=json_format)
    parsed = parse_event(event).output
    assert parsed == output
    assert repr(parsed) == repr(output)  # 5.0 stays a float, 5 an int


@pytest.mark.parametrize(
    "hostile",
    [
        {"$regex": "a.*", "$options": "i"},
        {"$date": "not a date"},
        {"$undefined": True},
        {"$minKey": 1},
        {"count": {"$numberLong": "not a number"}},
    ],
)
def test_an_output_with_dollar_keys_from_elsewhere_is_kept_as_it_came_and_fails_the_job_clearly(
    any_database: Any, hostile: Any
) -> None:
    # Given a success event written by something else than flowkit's job side, with $ keys in its output
    assert decode_data(hostile) == hostile  # never rewritten, never an error
    world = World(any_database)
    start_run(world.store, A_THEN_B, {}, run_id="r")
    world.deliver(world.deliveries.pop(0))
    world.take_job()
    world.store.insert_status(make_status("r", "wf", "a", 1, "success", output=hostile))
    # When it is delivered
    drain(world)
    # Then the run ends with a clear error instead of dead-lettering the event
    run = run_of(world)
    assert run["status"] == "failed"
    assert run["jobs"]["a"]["state"] == "failed"
    assert run["jobs"]["a"]["error"]["type"] == "InvalidOutput"
    assert "starting with '$'" in run["jobs"]["a"]["error"]["message"]
    assert "r/a/1/failed" in statuses(world)
    assert run["jobs"]["b"]["state"] == "cancelled"


def test_a_nan_output_from_elsewhere_fails_the_job_at_record_time(database: Any) -> None:
    world = World(database)
    start_run(world.store, A_THEN_B, {}, run_id="r")
    world.deliver(world.deliveries.pop(0))
    world.take_job()
    status = make_status("r", "wf", "a", 1, "success", output={"v": math.nan})
    envelope = to_envelope(
        status, database=world.store.database.name, collection=STATUSES, json_format="canonical"
    )
    assert envelope["detail"]["fullDocument"]["output"] == {"v": {"$numberDouble": "NaN"}}
    world.runtime.statemachine_job(envelope)
    a = run_of(world)["jobs"]["a"]
    assert (a["state"], a["output"], a["error"]["type"]) == ("failed", None, "InvalidOutput")
    assert "output.v: nan is not a JSON number" in a["error"]["message"]


# ---------------------------------------------------------------------- 4. one body run per attempt


def test_a_repeated_invocation_does_not_run_the_body_again(reporter: Reporter) -> None:
    runs: list[int] = []

    @reported(reporter=reporter)
    def handler(event: Any, context: Any) -> Any:
        runs.append(event["attempt"])
        return {"ok": True}

    assert handler(payload(), None) == {"ok": True}
    # the same invocation again (a dispatch sent twice, a Lambda retry), after the job already succeeded
    assert handler(payload(), None)["status"] == "already_started"
    assert runs == [1]
    assert reporter.started("r", "a", 1) is False


def test_a_second_invocation_while_the_first_runs_does_not_run_the_body(reporter: Reporter) -> None:
    runs: list[str] = []

    @reported(reporter=reporter)
    def handler(event: Any, context: Any) -> Any:
        runs.append("body")
        if len(runs) == 1:
            assert handler(payload(), None)["status"] == "already_started"  # a duplicate arrives meanwhile
        return None

    handler(payload(), None)
    assert runs == ["body"]


class UncertainDispatcher:
    """Raises ``DispatchUncertain`` for its first dispatch, like a read timeout after the invoke was sent."""

    def __init__(self) -> None:
        self.calls = 0

    def dispatch(self, spec: Any, payload: Any) -> None:
        self.calls += 1
        raise DispatchUncertain(f"read timeout invoking {spec['name']}")


def test_an_ambiguous_dispatch_failure_keeps_the_claim_and_is_never_sent_again(any_database: Any) -> None:
    world = World(any_database)
    dispatcher = UncertainDispatcher()
    world.runtime = Runtime(world.store, dispatcher)
    start_run(world.store, document("wf", [job("a")]), {}, run_id="r")
    started = world.deliveries.pop(0)
    world.deliver(started)
    world.deliver(started)  # redelivered
    a = run_of(world)["jobs"]["a"]
    assert (a["state"], a["attempt"]) == ("dispatched", 1)
    assert dispatcher.calls == 1


# ---------------------------------------------------------------------- 5. names are checked before paths


@pytest.mark.parametrize("name", ["a.output", "a.state", "$where", "jobs", "a b", ""])
def test_an_event_whose_job_name_is_a_path_is_rejected_and_writes_nothing(
    any_database: Any, name: str
) -> None:
    world = World(any_database)
    start_run(world.store, A_THEN_B, {}, run_id="r")
    drain(world)
    before = run_of(world)
    if not name:
        return  # an empty job name is already refused by the event parser (tested in test_events)
    bogus = make_status("r", "wf", name, 1, "failed", error={"type": "E", "message": "m"})
    envelope = to_envelope(bogus, database=world.store.database.name, collection=STATUSES)
    invalid = name not in ("jobs",)
    result = world.runtime.statemachine_job(envelope)
    assert result["action"] == "rejected"
    assert run_of(world) == before
    assert world.runtime.rejections[("invalid_job" if invalid else "unknown_job")] == 1


@pytest.mark.parametrize("name", ["a.output", "$x", "a\0b"])
def test_store_and_reporter_refuse_a_job_name_that_is_not_one(reporter: Reporter, name: str) -> None:
    with pytest.raises(RunError, match="is not a job name"):
        job_path(name)
    with pytest.raises(RejectedReport, match="is not a job name"):
        reporter.started("r", name, 1)
    with pytest.raises(RejectedReport, match="is not a job name"):
        reporter.failed("r", name, 1, "E", "m")


# ---------------------------------------------------------------------- 6. conditions this runtime cannot evaluate


def test_a_stored_condition_with_an_unknown_operator_fails_the_run_naming_job_and_condition(
    any_database: Any,
) -> None:
    world = World(any_database)
    doc = document("wf", [job("a"), job("b", "a", condition=status_is("a", "succeeded"))])
    start_run(world.store, doc, {}, run_id="r")
    # a document edited by hand (or started by a newer flowkit): an operator this runtime does not know
    config = run_of(world)["config"]
    config["jobs"][1]["condition"] = {"op": "xor", "args": [{"const": True}, {"const": False}]}
    world.store.runs.update_one({"_id": "r"}, {"$set": {"config": config}})
    drain(world)
    run = run_of(world)
    assert run["status"] == "failed"
    b = run["jobs"]["b"]
    assert (b["state"], b["error"]["type"]) == ("failed", "ConditionError")
    assert "condition of job 'b': unknown operator 'xor'" in b["error"]["message"]
    assert "'op': 'xor'" in b["error"]["message"]
    assert "r/b/1/failed" in statuses(world)
    assert [d[1] for d in world.dispatcher.dispatched] == ["a"]


# ---------------------------------------------------------------------- 7. sizes


def test_outputs_that_once_grew_the_run_past_16_mb_now_live_in_the_results_collection(database: Any) -> None:
    # 80 jobs with 230 KB outputs made an 18.5 MB run that MongoDB refused; the run document now keeps
    # references only, and the outputs read back whole
    names = [f"j{i:02d}" for i in range(80)]
    doc = document("wide", [job(name, phase="p") for name in names], phases=[("p", names)])
    outputs = {name: {"blob": (name * 80_000)[:230_000]} for name in names}
    world = World(database, outputs=outputs)
    start_run(world.store, doc, {}, run_id="r")
    drain(world)
    stored = world.store.get_run("r")
    assert stored is not None and stored["status"] == "succeeded"
    assert len(bson.encode(stored)) < 64 * 1024
    assert all(j["output"] is None and j["output_ref"] for j in stored["jobs"].values())
    assert {n: j["output"] for n, j in run_of(world)["jobs"].items()} == outputs
    assert world.store.results.count_documents({"run_id": "r"}) == 80


# ---------------------------------------------------------------------- 10. the same final state


def test_jobs_that_can_never_run_end_cancelled_and_running_ones_keep_their_outcome(database: Any) -> None:
    world = World(database, outcomes={"b": "fail"})
    doc = document("wf", [job("a"), job("b", "a"), job("c", "a"), job("d", "b", "c")])
    start_run(world.store, doc, {}, run_id="r")
    world.deliver(world.deliveries.pop(0))
    world.execute()  # a succeeds
    while world.deliveries:
        world.deliver(world.deliveries.pop(0))  # b and c are claimed together
    b = next(i for i, d in enumerate(world.pending_jobs()) if d[1] == "b")
    world.execute(b)  # b fails; c still runs
    while world.deliveries:
        world.deliver(world.deliveries.pop(0))
    run = run_of(world)
    assert run["status"] == "failed"
    assert {n: j["state"] for n, j in run["jobs"].items()} == {
        "a": "succeeded",
        "b": "failed",
        "c": "dispatched",
        "d": "cancelled",
    }
    drain(world)  # c reports after the end: recorded
    assert run_of(world)["jobs"]["c"]["state"] == "succeeded"


def test_cancel_jobs_touches_only_pending_or_waiting_jobs_of_an_ended_run(any_database: Any) -> None:
    store = Store(any_database, runs=RUNS, statuses=STATUSES)
    start_run(
        store, document("wf", [job("a"), job("b"), job("c")], phases=[("p", ["a", "b", "c"])]), {}, run_id="r"
    )
    store.claim("r", "a", 0)
    assert store.cancel_jobs("r", ["b"]) == []  # the run is still running: nothing is cancelled
    store.end_run("r", "failed", phase_index=1)
    store.runs.update_one({"_id": "r"}, {"$set": {"jobs.c.state": "waiting"}})
    assert store.cancel_jobs("r", ["a", "b", "c"]) == ["b", "c"]
    assert store.cancel_jobs("r", ["a", "b", "c"]) == []
    states = {n: j["state"] for n, j in store.get_run("r")["jobs"].items()}
    assert states == {"a": "dispatched", "b": "cancelled", "c": "cancelled"}


# ---------------------------------------------------------------------- 11. events flowkit owes


def test_a_crash_after_the_dispatch_failure_event_loses_nothing(database: Any) -> None:
    world = World(database, outputs={"a": {"blob": "x" * 5000}}, payload_limit=2000)
    start_run(world.store, A_THEN_B, {}, run_id="r")
    world.deliver(world.deliveries.pop(0))
    world.execute()
    success = [d for d in world.deliveries if d.key == "r/a/1/success"]
    world.deliveries.clear()
    real = world.store.record_outcome

    def dies_on_b(run_id: str, job: str, attempt: int, **kwargs: Any) -> Any:
        if job == "b":
            raise ConnectionError("container died")
        return real(run_id, job, attempt, **kwargs)

    world.store.record_outcome = dies_on_b  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        world.deliver(success[1])  # the orchestrator claims b, inserts b's failed event, then dies
    world.store.record_outcome = real  # type: ignore[method-assign]
    drain(world)  # b's failed event is delivered like any other
    run = run_of(world)
    assert (run["status"], run["jobs"]["b"]["state"]) == ("failed", "failed")
    assert "r/b/1/failed" in statuses(world)


def test_a_failure_recorded_instead_of_a_bad_output_has_its_event_reinserted_by_redelivery(
    database: Any,
) -> None:
    world = World(database)
    start_run(world.store, A_THEN_B, {}, run_id="r")
    world.deliver(world.deliveries.pop(0))
    world.take_job()
    world.store.insert_status(make_status("r", "wf", "a", 1, "success", output={"$bad": 1}))
    success = world.deliveries.pop(0)
    world.deliveries.clear()
    world.deliver(success)  # records a failed (InvalidOutput) and inserts the failed event
    world.store.statuses.delete_many({"key": "r/a/1/failed"})  # as if it had died before the insert
    world.deliver(success)  # redelivered
    assert "r/a/1/failed" in statuses(world)


# ---------------------------------------------------------------------- 7. the embedded store's limits


def _nested(levels: int) -> dict[str, Any]:
    """A document of ``levels`` non-empty levels, itself included (MongoDB's count)."""
    doc: dict[str, Any] = {"a": 1}
    for _ in range(levels - 1):
        doc = {"a": doc}
    return doc


def test_an_insert_over_16_mb_is_refused_like_pymongo_does(
    any_database: Any, request: pytest.FixtureRequest
) -> None:
    from pymongo.errors import DocumentTooLarge

    if _stand_in(request):
        pytest.skip("nx-27017 announces a larger maxBsonObjectSize than MongoDB's 16 MB")

    collection = any_database["limits"]
    with pytest.raises(DocumentTooLarge, match=r"BSON document too large \(\d+ bytes\)"):
        collection.insert_one({"_id": 1, "blob": "x" * (16 * 1024 * 1024)})
    assert collection.find_one({"_id": 1}) is None


def test_nesting_and_update_size_limits_match_mongodb(
    any_database: Any, request: pytest.FixtureRequest
) -> None:
    from pymongo.errors import OperationFailure

    if _stand_in(request):
        pytest.skip(
            "nx-27017 enforces neither nesting nor update size (MongoDB does: FLOWKIT_TEST_MONGO_URI)"
        )
    collection = any_database["limits"]
    collection.insert_one({"_id": "ok", **_nested(100)})  # 100 levels, the document included (it is one)
    with pytest.raises(OperationFailure) as deep:
        collection.insert_one({"_id": "deep", "x": _nested(100)})
    assert deep.value.code == 15
    collection.insert_one({"_id": "doc", "jobs": {}})
    with pytest.raises(OperationFailure) as deep_set:
        collection.update_one({"_id": "doc"}, {"$set": {"jobs.a.output": _nested(98)}})
    assert deep_set.value.code == 15
    collection.update_one({"_id": "doc"}, {"$set": {"jobs.a.output": _nested(97)}})
    collection.update_one({"_id": "doc"}, {"$set": {"big1": "x" * 9_000_000}})
    with pytest.raises(OperationFailure) as large:
        collection.update_one({"_id": "doc"}, {"$set": {"big2": "x" * 8_000_000}})
    assert large.value.code in (17419, 10334)
    assert "big2" not in collection.find_one({"_id": "doc"}, {"big1": 0})


def test_a_lambda_destination_result_that_cannot_be_stored_fails_the_job(reporter: Reporter) -> None:
    from flowkit.runtime.destinations import handle_result

    request = payload()
    record = {
        "requestContext": {"condition": "Success"},
        "requestPayload": request,
        "responseContext": {"statusCode": 200},
        "responsePayload": {"score": {"$numberLong": "5"}},
    }
    answer = handle_result(reporter.store, record, reporter=reporter)
    assert (answer["action"], answer["status"]) == ("reported", "failed")
    event = reporter.store.statuses.find_one({"key": "r/a/1/failed"})
    assert event["error"]["type"] == "InvalidOutput"
    assert "output.score: has a key '$numberLong' starting with '$'" in event["error"]["message"]
