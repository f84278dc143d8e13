"""run_workflow: failures, raising jobs, mocks, timeouts, stalls, and what it returns."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _localrun import example

from flowkit import job, sequence, workflow
from flowkit.errors import InvalidMock, RunError
from flowkit.local.bus import routes
from flowkit.local.runner import run_workflow
from flowkit.runtime.config import Settings
from flowkit.runtime.handlers import Runtime


class QuotaExceeded(Exception):
    pass


def _raises(event: dict[str, Any], context: Any = None) -> None:
    raise QuotaExceeded(f"quota exceeded for {event['job']} in run {event['run_id']}")


def _echo(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return {"job": event["job"], "attempt": event["attempt"], "input": event["input"]}


def _three_steps(middle: Any) -> Any:
    first = job(name="first")(_echo)
    last = job(name="last")(_echo)

    @workflow(name="three-steps")
    def three() -> Any:
        return sequence(first, middle, last)

    return three


def test_a_raising_job_records_its_error_type_and_message(states: Any) -> None:
    wf = _three_steps(job(name="middle")(_raises))

    run = run_workflow(wf, {"n": 1})

    assert run.status == "failed"
    assert states(run) == {"first": "succeeded", "middle": "failed", "last": "cancelled"}
    error = run.jobs["middle"].error
    assert error is not None
    assert error.type == "QuotaExceeded"
    assert error.message == f"quota exceeded for middle in run {run.id}"
    assert [(e.job, e.status.value) for e in run.events if e.job == "middle"] == [
        ("middle", "started"),
        ("middle", "failed"),
    ]


def test_job_bodies_get_the_dispatch_payload_and_a_lambda_context() -> None:
    seen: dict[str, Any] = {}

    def inspect(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen["context"] = (context.function_name, context.get_remaining_time_in_millis() > 0)
        return {"needs": event["needs"], "input": event["input"], "attempt": event["attempt"]}

    run = run_workflow(_three_steps(job(name="middle")(inspect)), {"day": "mon"})

    first_output = {"job": "first", "attempt": 1, "input": {"day": "mon"}}
    assert run.jobs["first"].output == first_output
    assert run.jobs["middle"].output == {
        "needs": {"first": first_output},
        "input": {"day": "mon"},
        "attempt": 1,
    }
    assert seen["context"] == ("middle", True)


def test_a_non_json_output_fails_the_job() -> None:
    def returns_a_set(event: dict[str, Any], context: Any = None) -> Any:
        return {1, 2}

    run = run_workflow(_three_steps(job(name="middle")(returns_a_set)))

    error = run.jobs["middle"].error
    assert error is not None
    assert error.type == "InvalidOutput"
    assert error.message == (
        "the output of job 'middle' cannot be stored unchanged: output: a set is not JSON data ({1, 2})"
    )


def test_a_mock_overrides_a_body_and_a_callable_mock_replaces_it() -> None:
    wf = _three_steps(job(name="middle")(_raises))

    run = run_workflow(wf, mocks={"middle": {"ok": True}, "last": lambda event, context: "replaced"})

    assert run.status == "succeeded"
    assert run.jobs["middle"].output == {"ok": True}
    assert run.jobs["last"].output == "replaced"


def test_a_mock_file_failure_takes_the_order_pipeline_refund_branch(tmp_path: Any, states: Any) -> None:
    from flowkit.local.mocks import load_mock_file

    path = tmp_path / "mocks.json"
    path.write_text('{"jobs": {"charge": [{"failure": {"type": "CardDeclined", "message": "stolen card"}}]}}')

    run = run_workflow(
        example("order_pipeline"), {"order_id": "o-7", "card": "visa"}, mocks=load_mock_file(path)
    )

    assert run.status == "succeeded"
    assert run.jobs["charge"].error is not None
    assert run.jobs["charge"].error.message == "stolen card"
    assert (states(run)["release-stock"], states(run)["ship"]) == ("succeeded", "skipped")


def test_a_body_less_job_without_a_mock_is_refused_before_starting() -> None:
    with pytest.raises(InvalidMock) as caught:
        run_workflow(example("nested"), {"publish": True})

    message = str(caught.value)
    assert "job 'score' has no Python body" in message
    assert "function:score-model" in message
    assert "--mock score=@output.json" in message


def test_a_mock_for_an_unknown_job_is_refused() -> None:
    with pytest.raises(
        InvalidMock, match=r"job 'scor' is not in workflow 'nested' \(did you mean 'score'\?\)"
    ):
        run_workflow(example("nested"), mocks={"scor": 1})


def test_input_must_be_an_object() -> None:
    with pytest.raises(RunError, match="the run input must be a JSON object, got list"):
        run_workflow(example("nightly_etl"), [1, 2])  # type: ignore[arg-type]


def test_a_run_that_does_not_end_in_time_names_the_unfinished_jobs() -> None:
    release = threading.Event()

    def slow(event: dict[str, Any], context: Any = None) -> None:
        release.wait(10)

    try:
        with pytest.raises(RunError) as caught:
            run_workflow(_three_steps(job(name="middle")(slow)), timeout=0.5)
    finally:
        release.set()

    message = str(caught.value)
    assert "did not finish within 0.5s" in message
    assert "jobs not finished: middle (running), last (pending)" in message


def test_a_handler_that_always_fails_is_dead_lettered_and_the_stall_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: Runtime, event: Any, context: Any = None) -> Any:
        raise ConnectionError("orchestrator cannot reach the database")

    monkeypatch.setattr(Runtime, "orchestrator_job", broken)

    with pytest.raises(RunError) as caught:
        run_workflow(_three_steps(job(name="middle")(_echo)), timeout=10)

    message = str(caught.value)
    assert "stalled" in message
    assert "first (pending)" in message
    assert "1 delivery dead-lettered: orchestrator_job on" in message
    assert "ConnectionError: orchestrator cannot reach the database" in message


def test_the_result_says_where_the_run_document_is() -> None:
    run = run_workflow(example("nightly_etl"), {"date": "2026-11-27"}, run_id="etl-1")

    assert run.id == "etl-1"
    assert str(run.location) == (
        "embedded in-process store, database 'flowkit', collection 'state-machines', _id 'etl-1'"
    )
    assert run.document["_id"] == "etl-1"
    assert run.elapsed > 0


def test_every_call_gets_a_new_run_id() -> None:
    wf = example("nightly_etl")

    ids = {run_workflow(wf, {"date": "2026-11-27"}).id for _ in range(2)}

    assert len(ids) == 2
    assert all(run_id.startswith("nightly-etl-") for run_id in ids)


def test_an_explicit_database_and_collection_names_are_used(database: Any) -> None:
    settings = Settings(runs_collection="runs_here", statuses_collection="events_here")

    run = run_workflow(example("nightly_etl"), {"date": "2026-11-27"}, database=database, settings=settings)

    assert database["runs_here"].find_one({"_id": run.id})["status"] == "succeeded"
    stored = {doc["key"] for doc in database["events_here"].find({"run_id": run.id})}
    assert stored == {event.key for event in run.events}
    assert run.location.collection == "runs_here"


def test_deliveries_follow_the_routes_once_each_without_chaos() -> None:
    run = run_workflow(example("nightly_etl"), {"date": "2026-11-27"})

    expected = sum(len(routes(event.model_dump(mode="json"))) for event in run.events)
    assert run.deliveries == expected


def test_chaos_delivers_more_than_the_routes_ask_for() -> None:
    run = run_workflow(example("nightly_etl"), {"date": "2026-11-27"}, chaos=11)

    expected = sum(len(routes(event.model_dump(mode="json"))) for event in run.events)
    assert run.status == "succeeded"
    assert run.deliveries > expected


def test_a_run_that_failed_is_returned_even_if_a_parallel_job_is_still_running(states: Any) -> None:
    from flowkit import parallel

    release = threading.Event()

    def slow(event: dict[str, Any], context: Any = None) -> None:
        release.wait(10)

    fast_failure = job(name="fails")(_raises)
    slow_job = job(name="slow")(slow)

    @workflow(name="fail-fast")
    def fail_fast() -> Any:
        return parallel(fast_failure, slow_job)

    try:
        run = run_workflow(fail_fast, timeout=1)
    finally:
        release.set()

    assert run.status == "failed"
    assert states(run)["fails"] == "failed"
    assert states(run)["slow"] in ("dispatched", "running")  # in flight when the run ended


def test_a_compiled_document_runs_with_bodies_imported_from_its_handlers() -> None:
    from flowkit.compiler import compile as compile_workflow

    document = compile_workflow(example("order_pipeline"))

    run = run_workflow(document, {"order_id": "o-3", "card": "declined"})

    assert run.status == "succeeded"
    assert run.jobs["charge"].error is not None
    assert run.jobs["charge"].error.type == "CardDeclined"


def test_a_target_string_runs_its_one_workflow() -> None:
    from _localrun import WORKFLOWS

    run = run_workflow(f"{WORKFLOWS / 'nightly_etl.py'}:nightly_etl", {"date": "2026-11-27", "rows": 0})

    assert run.jobs["load"].state == "skipped"


def test_a_target_with_several_workflows_is_refused() -> None:
    from _localrun import WORKFLOWS

    from flowkit.errors import LoadError

    with pytest.raises(
        LoadError, match=r"expected one workflow, found 4 \(fan-out, nested, nightly-etl, order-pipeline\)"
    ):
        run_workflow(str(WORKFLOWS))


def test_a_handler_that_cannot_be_imported_names_the_job() -> None:
    from flowkit.compiler import compile as compile_workflow
    from flowkit.errors import LoadError

    document = compile_workflow(example("nightly_etl"))
    broken = document.model_copy(
        update={
            "jobs": [
                s.model_copy(update={"handler": "nowhere.module:fn"}) if s.name == "load" else s
                for s in document.jobs
            ]
        }
    )

    with pytest.raises(LoadError, match=r"job 'load': cannot import its body 'nowhere.module:fn'"):
        run_workflow(broken)
