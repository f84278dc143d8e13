"""``LocalEnvironment.redrive``: a local run that ended unsuccessfully, run again from where it stopped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowkit import Retry, job, workflow
from flowkit.errors import RunError, UnknownRun
from flowkit.local import LocalEnvironment, failure, success


def _etl(calls: list[str]) -> Any:
    """extract >> load (2 attempts, 5 minutes apart) >> report; ``calls`` records every body run."""

    @job(name="extract")
    def extract(event: Any, context: Any = None) -> Any:
        calls.append("extract")
        return {"rows": 3}

    @job(name="load", retry=Retry(attempts=2, interval=timedelta(minutes=5), backoff=3.0))
    def load(event: Any, context: Any = None) -> Any:
        calls.append("load")
        return {"loaded": event["needs"]["extract"]["rows"]}

    @job(name="report")
    def report(event: Any, context: Any = None) -> Any:
        calls.append("report")
        return {"done": True}

    @workflow(name="etl")
    def etl() -> Any:
        return extract >> load >> report

    return etl


def test_a_failed_run_redriven_with_new_mocks_goes_on_from_where_it_stopped() -> None:
    # Given a run whose load failed both its attempts
    calls: list[str] = []
    etl = _etl(calls)
    with LocalEnvironment(clock="virtual") as env:
        first = env.run(etl, mocks={"load": failure("Down", "db down")})
        assert first.status == "failed"
        assert (first.jobs["load"].state, first.jobs["load"].attempt) == ("failed", 2)

        # When it is redriven, load now failing once more and then succeeding
        again = env.redrive(
            etl, first.id, mocks={"load": [failure("Down", "still down"), success({"loaded": 3})]}
        )

    # Then extract kept its output and did not run again; load ran attempts 3 and 4 with the mock's
    # outcomes #1 and #2 (counted from the redrive) and the backoff of a first retry; report ran
    assert again.status == "succeeded"
    assert again.id == first.id and again.document["redrive_count"] == 1
    assert calls == ["extract", "report"]
    load = again.jobs["load"]
    assert (load.state, load.attempt, load.output) == ("succeeded", 4, {"loaded": 3})
    assert load.attempts["3"].error is not None and load.attempts["3"].error.message == "still down"
    assert load.dispatched_at is not None
    assert load.dispatched_at - load.attempts["3"].finished_at == timedelta(minutes=5)  # not 5 x 3**2
    assert [(e.status.value, e.attempt) for e in again.events if e.job is None] == [
        ("started", 1),
        ("success", 1),
    ]


def test_a_cancelled_run_redriven_runs_what_the_cancel_stopped() -> None:
    calls: list[str] = []
    etl = _etl(calls)
    with LocalEnvironment(clock="virtual") as env:
        first = env.run(etl, mocks={"load": [failure("Down", "x"), success({"loaded": 1})]}, cancel_after=60)
        assert first.status == "cancelled"
        assert {n: j.state.value for n, j in first.jobs.items()} == {
            "extract": "succeeded",
            "load": "cancelled",
            "report": "cancelled",
        }

        again = env.redrive(etl, first.id, mocks={"load": success({"loaded": 2})})

    assert again.status == "succeeded"
    assert again.jobs["load"].output == {"loaded": 2}
    assert calls == ["extract", "report"]


def test_what_cannot_be_redriven_is_refused_and_changes_nothing() -> None:
    etl = _etl([])
    with LocalEnvironment(clock="virtual") as env:
        succeeded = env.run(etl)
        failed = env.run(etl, mocks={"load": failure("Down", "x")})

        with pytest.raises(RunError, match="is 'succeeded': only a failed, timed-out or cancelled run"):
            env.redrive(etl, succeeded.id)
        with pytest.raises(UnknownRun, match="'nope' does not exist in the embedded in-process store"):
            env.redrive(etl, "nope")
        with pytest.raises(RunError, match="redrive a run with the workflow it was started with"):
            env.redrive(_report_only(), failed.id)  # the same name, another shape: another version
        assert env.store.get_run(failed.id)["status"] == "failed"  # type: ignore[index]
        assert env.store.get_run(failed.id).get("redrive_count") in (None, 0)  # type: ignore[union-attr]


def _report_only() -> Any:
    @job(name="report")
    def report(event: Any, context: Any = None) -> Any:
        return None

    @workflow(name="etl")
    def etl() -> Any:
        return report

    return etl
