"""Local runs fed hostile values on purpose end the way production would: failed with a clear error,
never stalled, and in the same state whatever the order of delivery."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
from _localrun import example, outcome
from dsl_builders import flow, mk

from flowkit import job, parallel, sequence
from flowkit.local.mocks import failure
from flowkit.local.runner import run_workflow


@pytest.mark.parametrize(
    ("mock", "problem"),
    [
        ({"v": math.nan}, "output.v: nan is not a JSON number"),
        ({"v": 2**63}, "output.v: the integer 9223372036854775808 does not fit in 64 bits"),
        ({"$date": "bad"}, "has a key '$date' starting with '$'"),
    ],
    ids=["nan", "int64", "dollar"],
)
def test_a_mocked_output_that_cannot_be_stored_fails_the_job_instead_of_stalling(
    mock: Any, problem: str
) -> None:
    run = run_workflow(example("nested"), {"day": "2026-11-27"}, mocks={"score": mock}, timeout=30)
    assert run.status == "failed"
    error = run.jobs["score"].error
    assert error is not None and error.type == "InvalidOutput"
    assert problem in error.message
    assert run.jobs["summary"].state.value == "cancelled"


def test_a_body_calling_sys_exit_fails_its_job() -> None:
    def exits(event: dict[str, Any], context: Any = None) -> Any:
        sys.exit(3)

    run = run_workflow(flow(sequence(mk("a"), job(name="b")(exits), mk("c"))), timeout=30)
    assert run.status == "failed"
    error = run.jobs["b"].error
    assert error is not None and (error.type, error.message) == ("SystemExit", "3")
    assert run.jobs["c"].state.value == "cancelled"


def _sibling_fails() -> Any:
    return flow(sequence(mk("a"), parallel(mk("b"), mk("c"), mk("e")), mk("d")), name="siblings")


@pytest.mark.parametrize("seed", range(1, 9))
def test_a_failed_run_ends_in_the_same_state_with_chaos(seed: int) -> None:
    mocks = {"b": failure("Boom", "b broke")}
    calm = run_workflow(_sibling_fails(), mocks=mocks, timeout=30)
    chaotic = run_workflow(_sibling_fails(), mocks=mocks, chaos=seed, timeout=30)
    assert outcome(calm)["status"] == "failed"
    assert {name: state for name, (state, *_) in outcome(calm)["jobs"].items()} == {
        "a": "succeeded",
        "b": "failed",
        "c": "succeeded",
        "e": "succeeded",
        "d": "cancelled",
    }
    assert outcome(chaotic) == outcome(calm)
    assert chaotic.dead_letters == ()
