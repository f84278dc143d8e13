"""Every example under workflows/ compiles to its committed snapshot, and its bodies run locally."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import compile
from flowkit.dsl import Workflow
from workflows.fan_out import fan_out
from workflows.nested import nested
from workflows.nightly_etl import nightly_etl
from workflows.order_pipeline import CardDeclined, charge, order_pipeline
from workflows.order_pipeline import ship as ship_job

EXAMPLES = {
    "fan-out": fan_out,
    "nested": nested,
    "nightly-etl": nightly_etl,
    "order-pipeline": order_pipeline,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_compiles_to_its_snapshot(name: str, flow_snapshot: Any) -> None:
    assert compile(EXAMPLES[name]) == flow_snapshot


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_is_valid_without_warnings(name: str) -> None:
    from flowkit import validate

    report = validate(EXAMPLES[name])
    assert (report.errors, report.warnings) == ([], [])


def _event(
    wf: Workflow, job: str, run_input: dict[str, Any], needs: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec = compile(wf).job(job)
    return {
        "run_id": "r-1",
        "workflow": wf.name,
        "job": job,
        "attempt": 1,
        "input": run_input,
        "job_input": spec.input,
        "needs": needs or {},
    }


def test_nightly_etl_bodies_are_deterministic_from_the_input() -> None:
    bodies = nightly_etl.bodies()
    first = bodies["extract"](_event(nightly_etl, "extract", {"date": "2026-11-27"}), None)
    again = bodies["extract"](_event(nightly_etl, "extract", {"date": "2026-11-27"}), None)
    other = bodies["extract"](_event(nightly_etl, "extract", {"date": "2026-11-28"}), None)
    assert first == again and first["rows"] > 0 and other["rows"] != first["rows"]
    empty = bodies["extract"](_event(nightly_etl, "extract", {"date": "2026-11-27", "rows": 0}), None)
    assert empty["rows"] == 0
    deduped = bodies["dedupe"](_event(nightly_etl, "dedupe", {}, {"extract": {"rows": 100}}), None)
    assert deduped == {"rows": 98, "duplicates": 2}


def test_nightly_etl_loads_only_when_rows_were_extracted() -> None:
    from flowkit.conditions import evaluate

    condition = compile(nightly_etl).job("load").condition
    assert condition is not None
    assert evaluate(condition, {"jobs": {"extract": {"status": "succeeded", "output": {"rows": 3}}}}) is True
    assert evaluate(condition, {"jobs": {"extract": {"status": "succeeded", "output": {"rows": 0}}}}) is False


def test_order_pipeline_charge_fails_for_a_declined_card_and_that_failure_is_handled() -> None:
    with pytest.raises(CardDeclined, match="o-7"):
        charge({"input": {"order_id": "o-7", "card": "declined"}})
    assert charge({"input": {"order_id": "o-7", "card": "visa"}})["payment_id"] == "pay-o-7"
    doc = compile(order_pipeline)
    assert doc.job("charge").failure_handled
    assert doc.branches[0].then == ["release-stock", "notify-customer"]
    assert ship_job({"input": {"order_id": "o-7"}}) == {"tracking": "trk-o-7"}


def test_fan_out_has_a_wide_fan_in() -> None:
    doc = compile(fan_out)
    shards = [j.name for j in doc.jobs if j.name.startswith("reprice-")]
    assert len(shards) == 64
    assert doc.job("merge").needs == sorted(shards)
    assert all(doc.job(name).input == {"shard": int(name[-2:])} for name in shards)


def test_nested_keeps_branch_parallelism_and_the_body_less_arn_job() -> None:
    doc = compile(nested)
    score = doc.job("score")
    assert (score.handler, score.target.function, score.target.qualifier) == (
        None,
        "arn:aws:lambda:eu-west-1:123456789012:function:score-model",
        "prod",
    )
    assert score.needs == ["clean-eu"]
    assert doc.job("fetch-us").needs == ["prepare"]
    assert "score" not in nested.bodies()


def test_order_pipeline_close_order_reads_what_it_needs() -> None:
    close = order_pipeline.bodies()["close-order"]
    needs = set(compile(order_pipeline).job("close-order").needs)
    assert needs == {"charge", "notify-customer", "send-receipt"}
    paid = {"charge": {"payment_id": "pay-o-2"}, "notify-customer": None, "send-receipt": {"sent": "receipt"}}
    declined = {"charge": None, "notify-customer": {"sent": "payment-declined"}, "send-receipt": None}
    assert close({"input": {"order_id": "o-2"}, "needs": paid}, None) == {
        "order_id": "o-2",
        "state": "shipped",
    }
    assert close({"input": {"order_id": "o-2"}, "needs": declined}, None) == {
        "order_id": "o-2",
        "state": "cancelled",
    }
