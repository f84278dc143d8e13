"""Failure paths as authored: error-type conditions, the handled-failure rule, ``always``, the warning."""

from __future__ import annotations

from typing import Any

import pytest
from dsl_builders import flow, mk

from flowkit import always, compile, input, validate, when
from flowkit.conditions import evaluate, failure_paths, to_text, undistinguished_failures

CHARGE = mk("charge")


@pytest.mark.parametrize(
    ("cond", "paths", "either_way"),
    [
        (CHARGE.failed, {"charge"}, set()),
        (CHARGE.timed_out, {"charge"}, set()),
        (CHARGE.status == "failed", {"charge"}, set()),
        (CHARGE.error_type == "CardDeclined", {"charge"}, set()),
        (CHARGE.failed_with("A", "B"), {"charge"}, set()),
        (~CHARGE.succeeded, {"charge"}, set()),
        (CHARGE.failed & (input["mode"] == "live"), {"charge"}, set()),
        (CHARGE.failed | (input["force"] == True), set(), {"charge"}),  # noqa: E712
        (~CHARGE.failed, set(), set()),
        (CHARGE.succeeded, set(), set()),
        (CHARGE.skipped, set(), set()),
        (CHARGE.error_type != "CardDeclined", set(), {"charge"}),
        (CHARGE.status.is_in(["succeeded", "failed"]), set(), {"charge"}),
        (CHARGE.status != "skipped", set(), {"charge"}),
        (CHARGE.succeeded | (input["force"] == True), set(), {"charge"}),  # noqa: E712
        (CHARGE.output["id"].exists(), set(), set()),
    ],
    ids=lambda value: to_text(value.ast) if hasattr(value, "ast") else repr(value),
)
def test_which_conditions_are_failure_paths(cond: Any, paths: set[str], either_way: set[str]) -> None:
    assert failure_paths(cond.ast) == paths
    assert undistinguished_failures(cond.ast) == either_way


def test_error_type_reads_the_stored_error_type() -> None:
    cond = (CHARGE.error_type == "CardDeclined").ast
    failed = {"jobs": {"charge": {"status": "failed", "error": {"type": "CardDeclined", "message": "no"}}}}
    other = {"jobs": {"charge": {"status": "failed", "error": {"type": "Timeout", "message": "slow"}}}}
    succeeded = {"jobs": {"charge": {"status": "succeeded", "output": {}}}}

    assert evaluate(cond, failed) is True
    assert evaluate(cond, other) is False
    assert evaluate(cond, succeeded) is False
    assert to_text(cond) == 'charge.error_type == "CardDeclined"'
    assert to_text(CHARGE.failed.ast) == "charge.failed"
    assert to_text((~CHARGE.failed).ast) == "not charge.failed"


def test_failed_with_needs_type_names() -> None:
    with pytest.raises(TypeError, match="failed_with"):
        CHARGE.failed_with()
    with pytest.raises(TypeError, match="failed_with"):
        CHARGE.failed_with(ValueError)  # type: ignore[arg-type]


def test_handled_by_lists_the_failure_paths() -> None:
    charge = mk("charge")
    doc = compile(
        flow(
            charge
            >> when(
                charge.error_type == "CardDeclined",
                then=mk("apologise") >> mk("refund"),
                otherwise=mk("ship"),
            )
        )
    )

    assert doc.job("charge").handled_by == ["apologise", "refund"]
    assert doc.job("charge").failure_handled
    assert doc.job("ship").handled_by == [] and not doc.job("ship").failure_handled


def test_a_condition_true_either_way_does_not_handle_and_is_warned_about() -> None:
    load = mk("load")
    workflow = flow(load >> when(load.status.is_in(["succeeded", "failed"]), then=mk("cleanup")))

    doc = compile(workflow)
    report = validate(workflow)

    assert not doc.job("load").failure_handled and doc.job("load").handled_by == []
    assert report.ok
    [warning] = [w for w in report.warnings if "does not handle" in w]
    assert "job 'cleanup'" in warning and "'load'" in warning and "always(cleanup)" in warning


def test_a_real_failure_path_is_not_warned_about() -> None:
    charge = mk("charge")
    report = validate(flow(charge >> when(charge.failed, then=mk("refund"), otherwise=mk("ship"))))

    assert not [w for w in report.warnings if "does not handle" in w]


def test_always_compiles_to_run_on_all_done() -> None:
    doc = compile(flow(mk("load") >> always(mk("cleanup"))))

    assert doc.job("cleanup").run_on == "all_done"
    assert doc.job("load").run_on == "all_success"
    assert doc.job("cleanup").needs == ["load"]


def test_always_takes_one_job() -> None:
    with pytest.raises(TypeError, match="always\\(\\) takes one job"):
        always(mk("a") >> mk("b"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="decorate the function with @job"):
        always(lambda event, context=None: None)  # type: ignore[arg-type]
