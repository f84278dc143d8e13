"""LocalEnvironment: one store, bus, dispatcher and runtime, many runs through it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _localrun import example, outcome

from flowkit import job, sequence, workflow
from flowkit.errors import InvalidMock, RunError
from flowkit.local.environment import LocalEnvironment
from flowkit.local.mocks import failure
from flowkit.local.runner import run_workflow

ETL_INPUT = {"date": "2026-11-27"}
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("nightly_etl", ETL_INPUT, {}),
    ("nightly_etl", ETL_INPUT, {"extract": {"rows": 0}}),
    ("order_pipeline", {"order_id": "o-1", "amount": 3}, {"charge": failure("CardDeclined", "no")}),
    ("order_pipeline", {"order_id": "o-2", "amount": 3}, {}),
    ("fan_out", {}, {}),
]


def test_many_runs_through_one_environment_end_as_one_run_each_would() -> None:
    # given the outcome of each case run alone
    alone = [outcome(run_workflow(example(name), data, mocks=mocks)) for name, data, mocks in CASES]
    # when the same cases run one after another through one environment, twice over
    with LocalEnvironment() as env:
        shared = [outcome(env.run(example(name), data, mocks=mocks)) for name, data, mocks in CASES * 2]
    # then every run ends exactly as it does alone
    assert shared == alone * 2


def test_each_run_has_its_own_id_events_and_delivery_count() -> None:
    with LocalEnvironment() as env:
        first = env.run(example("nightly_etl"), ETL_INPUT)
        second = env.run(example("nightly_etl"), ETL_INPUT)

    assert first.id != second.id
    assert {event.run_id for event in first.events} == {first.id}
    assert {event.run_id for event in second.events} == {second.id}
    assert len(first.events) == len(second.events) > 0
    assert first.deliveries == second.deliveries > 0
    assert first.location.database == second.location.database
    assert env.database["state-machines"].count_documents({}) == 2


def test_mocks_belong_to_their_run() -> None:
    with LocalEnvironment() as env:
        mocked = env.run(example("nightly_etl"), ETL_INPUT, mocks={"extract": {"rows": 0}})
        plain = env.run(example("nightly_etl"), ETL_INPUT)

    assert mocked.jobs["load"].state == "skipped"
    assert plain.jobs["load"].state == "succeeded"


def test_a_stuck_job_of_one_run_does_not_hold_up_the_next() -> None:
    release = threading.Event()

    def stuck(event: dict[str, Any], context: Any = None) -> None:
        release.wait(30)

    @workflow(name="stuck")
    def stuck_flow() -> Any:
        return sequence(job(name="hang")(stuck))

    try:
        with LocalEnvironment() as env:
            with pytest.raises(RunError, match=r"did not finish within 0\.3s"):
                env.run(stuck_flow, timeout=0.3)
            # the next run gets fresh pieces: it ends although the stuck body still holds a worker
            after = env.run(example("nightly_etl"), ETL_INPUT, timeout=20)
            assert after.succeeded
            assert not release.is_set()
    finally:
        release.set()


def test_a_bad_mock_is_refused_and_the_environment_stays_usable() -> None:
    with LocalEnvironment() as env:
        with pytest.raises(InvalidMock):
            env.run(example("nightly_etl"), ETL_INPUT, mocks={"no-such-job": {}})
        assert env.run(example("nightly_etl"), ETL_INPUT).succeeded


def test_chaos_can_be_set_for_the_environment_and_for_one_run() -> None:
    with LocalEnvironment(chaos=7) as env:
        chaotic = env.run(example("nightly_etl"), ETL_INPUT)
        orderly = env.run(example("nightly_etl"), ETL_INPUT, chaos=None)
    with LocalEnvironment() as env:
        plain = env.run(example("nightly_etl"), ETL_INPUT)
        seeded = env.run(example("nightly_etl"), ETL_INPUT, chaos=7)

    assert outcome(chaotic) == outcome(orderly) == outcome(plain) == outcome(seeded)
    assert chaotic.deliveries > plain.deliveries and seeded.deliveries > plain.deliveries


def test_a_closed_environment_refuses_runs() -> None:
    env = LocalEnvironment()
    env.close()
    env.close()  # closing twice is harmless

    with pytest.raises(RunError, match="closed"):
        env.run(example("nightly_etl"), ETL_INPUT)


def test_a_database_given_to_the_environment_is_used(database: Any) -> None:
    with LocalEnvironment(database=database) as env:
        run = env.run(example("nightly_etl"), ETL_INPUT, run_id="given-1")

    assert database["state-machines"].find_one({"_id": "given-1"})["status"] == "succeeded"
    assert run.location.run_id == "given-1"
