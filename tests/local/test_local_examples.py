"""Every example workflow, run locally end to end through the real runtime, with and without chaos."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from _localrun import WORKFLOWS, example, outcome

from flowkit.local.environment import LocalEnvironment
from flowkit.local.mocks import failure
from flowkit.local.runner import LocalRun

# (example, input, mocks): every branch of every example at least once
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "nightly-etl": ("nightly_etl", {"date": "2026-11-27"}, {}),
    "nightly-etl-empty-day": ("nightly_etl", {"date": "2026-11-27", "rows": 0}, {}),
    "order-declined": ("order_pipeline", {"order_id": "o-1", "card": "declined"}, {}),
    "order-paid": ("order_pipeline", {"order_id": "o-2", "card": "visa"}, {}),
    "fan-out": ("fan_out", {"products": 6400}, {}),
    "nested-publish": ("nested", {"day": "2026-11-27", "publish": True}, {"score": {"scored": 900}}),
    "nested-no-publish": ("nested", {"day": "2026-11-27", "publish": False}, {"score": {"scored": 900}}),
}


@functools.cache
def _environment() -> LocalEnvironment:
    """One environment for every run of this module (closed by ``_close_the_environment``)."""
    return LocalEnvironment(clock="virtual")  # retries with backoffs (nightly-etl's extract) take no time


@pytest.fixture(autouse=True, scope="module")
def _close_the_environment() -> Any:
    yield
    _environment().close()


def _run(case: str, chaos: int | None = None) -> LocalRun:
    name, data, mocks = CASES[case]
    return _environment().run(example(name), data, mocks=mocks, chaos=chaos, timeout=30)


@functools.cache
def _calm(case: str) -> LocalRun:
    """The run without chaos, computed once per case for every seed compared against it."""
    return _run(case)


def test_every_example_has_a_case() -> None:
    examples = {path.stem for path in WORKFLOWS.glob("*.py") if not path.name.startswith("_")}
    assert examples == {name for name, _, _ in CASES.values()}


def test_nightly_etl_loads_and_reports(states: Any) -> None:
    run = _run("nightly-etl")

    assert run.status == "succeeded"
    assert set(states(run).values()) == {"succeeded"}
    rows = run.jobs["extract"].output["rows"]
    assert run.jobs["dedupe"].output == {"rows": rows - rows // 50, "duplicates": rows // 50}
    assert run.jobs["load"].output == {"table": "warehouse.orders", "loaded": rows - rows // 50}
    assert run.jobs["report"].output == {"date": "2026-11-27", "extracted": rows, "loaded": rows - rows // 50}


def test_nightly_etl_skips_load_on_an_empty_day(states: Any) -> None:
    run = _run("nightly-etl-empty-day")

    assert run.status == "succeeded"
    assert states(run)["load"] == "skipped"
    assert run.jobs["load"].attempt == 0
    assert run.jobs["report"].output == {"date": "2026-11-27", "extracted": 0, "loaded": 0}


def test_order_pipeline_declined_card_takes_the_release_branch(states: Any) -> None:
    run = _run("order-declined")

    assert run.status == "succeeded"
    assert states(run) == {
        "validate-order": "succeeded",
        "reserve-stock": "succeeded",
        "charge": "failed",
        "release-stock": "succeeded",
        "notify-customer": "succeeded",
        "ship": "skipped",
        "send-receipt": "skipped",
        "close-order": "succeeded",
    }
    error = run.jobs["charge"].error
    assert error is not None
    assert (error.type, error.message) == ("CardDeclined", "card declined for order o-1")
    assert run.jobs["notify-customer"].output == {"sent": "payment-declined", "order_id": "o-1"}
    assert run.jobs["close-order"].output == {"order_id": "o-1", "state": "cancelled"}


def test_order_pipeline_paid_order_ships(states: Any) -> None:
    run = _run("order-paid")

    assert run.status == "succeeded"
    assert states(run)["release-stock"] == states(run)["notify-customer"] == "skipped"
    assert run.jobs["send-receipt"].output == {"sent": "receipt", "tracking": "trk-o-2"}
    assert run.jobs["close-order"].output == {"order_id": "o-2", "state": "shipped"}


def test_fan_out_merges_every_shard() -> None:
    run = _run("fan-out")

    assert run.status == "succeeded"
    assert run.jobs["merge"].output == {"shards": 64, "repriced": 6400}
    assert {run.jobs[f"reprice-{i:02d}"].output["shard"] for i in range(64)} == set(range(64))


def test_nested_runs_the_mocked_lambda_and_publishes_on_request(states: Any) -> None:
    run = _run("nested-publish")

    assert run.status == "succeeded"
    assert run.jobs["score"].output == {"scored": 900}
    assert run.jobs["clean-eu"].output == {"region": "eu", "events": 900}
    assert run.jobs["clean-us"].output == {"region": "us", "events": 1350}
    assert states(run)["publish"] == "succeeded"
    assert run.jobs["summary"].output == {"after": ["clean-us", "publish", "score"]}


def test_nested_skips_publication_when_not_asked(states: Any) -> None:
    run = _run("nested-no-publish")

    assert run.status == "succeeded"
    assert states(run)["publish"] == "skipped"
    assert run.jobs["summary"].output == {"after": ["clean-us", "publish", "score"]}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_ends_in_the_same_state(case: str, seed: int) -> None:
    calm = _calm(case)
    chaotic = _run(case, chaos=seed)

    assert outcome(chaotic) == outcome(calm)
    assert chaotic.dead_letters == ()
    # one status event per job transition and one start + one end event, despite the duplicates
    keys = [event.key for event in chaotic.events]
    assert len(keys) == len(set(keys))
    assert [e.status for e in chaotic.events if e.job is None] == ["started", "success"]


def test_an_unhandled_mocked_failure_fails_the_run_and_dispatches_nothing_after_it(states: Any) -> None:
    run = _environment().run(
        example("nightly_etl"), {"date": "2026-11-27"}, mocks={"extract": failure("SourceDown", "db offline")}
    )

    assert run.status == "failed"
    # Retry(attempts=3): the failure counts only once the third attempt failed too
    assert run.jobs["extract"].attempt == 3
    assert [a.attempt for a in run.jobs["extract"].attempts.values()] == [1, 2, 3]
    assert states(run) == {
        "extract": "failed",
        "normalize-currency": "cancelled",
        "dedupe": "cancelled",
        "enrich-customers": "cancelled",
        "load": "cancelled",
        "report": "cancelled",
    }
    assert all(run.jobs[name].attempt == 0 for name in states(run) if name != "extract")
    assert {event.job for event in run.events if event.job} == {"extract"}
    assert [e.status for e in run.events if e.job is None] == ["started", "failed"]
