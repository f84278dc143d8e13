"""A run document's worst case is computed from its workflow and refused over the documented bound.

Outputs and errors beyond ``INLINE_LIMIT`` live in the results collection, so what a run can add to its
document is bounded per job; ``flowkit.runtime.bounds`` computes it, and the compiler, ``start_run`` and
``redrive_run`` refuse a run document that could pass ``RUN_DOCUMENT_BOUND``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import bson
import pytest
from _harness import RUNS, STATUSES, document, job

from flowkit import Retry, compile, parallel, workflow
from flowkit.dsl import job as dsl_job
from flowkit.errors import InvalidWorkflow, RunError
from flowkit.runtime.bounds import Bound, job_growth
from flowkit.runtime.control import cancel_run, redrive_run
from flowkit.runtime.results import bson_size
from flowkit.runtime.start import config_bound, config_problem, new_run_document, start_run
from flowkit.runtime.store import Store
from flowkit.vocab import ERROR_MESSAGE_LIMIT, INLINE_LIMIT, MONGO_DOCUMENT_LIMIT, RUN_DOCUMENT_BOUND

MIB = 1024 * 1024


def _store(database: Any) -> Store:
    store = Store(database, runs=RUNS, statuses=STATUSES)
    store.ensure_indexes()
    return store


def _size(doc: Any) -> int:
    return len(bson.encode(doc))


def _error_of_inline_size() -> dict[str, str]:
    """The largest error kept inline: ``{"v": error}`` is exactly ``INLINE_LIMIT`` bytes of BSON."""
    error = {"type": "ValueError", "message": ""}
    error["message"] = "e" * (INLINE_LIMIT - bson_size(error))
    assert bson_size(error) == INLINE_LIMIT
    return error


def _output_of_inline_size() -> dict[str, str]:
    output = {"blob": ""}
    output["blob"] = "o" * (INLINE_LIMIT - bson_size(output))
    assert bson_size(output) == INLINE_LIMIT
    return output


def test_the_bound_is_mongodbs_limit_less_a_margin() -> None:
    assert RUN_DOCUMENT_BOUND == MONGO_DOCUMENT_LIMIT - MIB


def test_the_initial_size_is_computed_exactly_without_encoding_the_whole_document() -> None:
    doc = document("exact", [job("a"), job("bb", "a", retry={"max_attempts": 3}), job("c" * 100, "a")])
    run = new_run_document(doc, {"day": "2026-11-29", "n": [1, 2, 3]}, "r-exact")
    assert Bound.of_run(run).initial == _size(run)


def test_the_compile_time_bound_is_the_start_time_bound_with_an_empty_input() -> None:
    handled = {"op": "eq", "args": [{"ref": ["jobs", "a", "status"]}, {"const": "failed"}]}
    doc = document(
        "same",
        [
            job("a", failure_handled=True),
            job("b", "a", retry={"max_attempts": 4}, condition=handled),
            job("c", "a"),
            {**job("d", "c"), "run_on": "all_done"},  # an always job: the run holds its waits
        ],
    )
    config = doc.model_dump(mode="json")
    config["jobs"][0]["handled_by"] = ["b"]  # a failure path: the run holds a paths entry for a
    at_start = Bound.of_run(new_run_document(config, {}, ""))
    assert "a" in new_run_document(config, {}, "")["paths"]
    assert new_run_document(config, {}, "")["waits"]
    assert config_bound(config) == at_start
    assert config_problem(config) is None
    assert at_start.total < RUN_DOCUMENT_BOUND
    # growth: each job's worst entry, plus the run's own fields
    assert at_start.growth > 3 * job_growth(1) + job_growth(4)


def test_every_job_driven_to_its_worst_stays_within_the_computed_bound(database: Any) -> None:
    """The bound is an upper bound of what the store really writes, and not a loose one.

    Every job fails ``max_attempts - 1`` times with the largest inline error (heartbeats, timers and
    times set), then succeeds with the largest inline output, except one that fails every attempt;
    the run is cancelled with the longest reason afterwards (the run's own fields at their worst).
    """
    store = _store(database)
    specs = [job(f"j{i}", retry={"max_attempts": 3, "interval_seconds": 0}, timeout=60) for i in range(6)]
    doc = document("worst", specs, phases=[("all", [spec["name"] for spec in specs])])
    start_run(store, doc, {}, run_id="r-worst")
    initial = store.get_run("r-worst")
    assert initial is not None
    bound = Bound.of_run(initial)
    error, output = _error_of_inline_size(), _output_of_inline_size()
    for spec in specs:
        name = spec["name"]
        for attempt in (1, 2, 3):
            if attempt == 1:
                assert store.claim("r-worst", name, 0, due=store.now())
            else:
                assert store.claim_retry("r-worst", name, attempt - 1, at=store.now(), due=store.now())
            assert store.mark_running("r-worst", name, attempt) is not None
            assert store.heartbeat("r-worst", name, attempt)
            last = attempt == 3
            if last and name != "j0":
                state, kwargs = "succeeded", {"output": output}
            else:
                state, kwargs = "failed", {"error": error}
            retry_at = None if last else store.now()
            after = store.record_outcome(
                "r-worst", name, attempt, state=state, retry_at=retry_at, max_attempts=3, **kwargs
            )
            assert after is not None
    assert cancel_run(store, "r-worst", reason="\U0001f600" * (ERROR_MESSAGE_LIMIT + 50)) is True
    final = store.get_run("r-worst")
    assert final is not None
    assert len(final["end_reason"]) <= ERROR_MESSAGE_LIMIT  # the cancel reason is cut like an error
    assert final["end_reason"].endswith("characters cut]")
    grown = _size(final) - bound.initial
    print(f"\ncomputed growth {bound.growth} bytes, real growth {grown} bytes")
    assert grown <= bound.growth
    assert grown >= 0.8 * bound.growth, (grown, bound.growth)  # the bound is tight, not a guess
    assert store.results.count_documents({}) == 0  # everything was inline: the worst case


def test_a_run_whose_input_makes_its_document_too_big_is_refused_with_the_numbers(database: Any) -> None:
    store = _store(database)
    doc = document("big", [job("a"), job("b", "a")])
    with pytest.raises(RunError) as caught:
        start_run(store, doc, {"blob": "y" * RUN_DOCUMENT_BOUND}, run_id="r-big")
    message = caught.value.message
    assert message.startswith("workflow 'big': a run document could grow to 15.0 MiB")
    assert "2 jobs" in message and "input 15.0 MiB" in message
    assert "over the 15 MiB a run document may reach" in message
    assert store.get_run("r-big") is None
    assert store.statuses.find_one({"run_id": "r-big"}) is None


def test_a_run_small_at_start_that_could_outgrow_the_bound_is_refused_at_start(database: Any) -> None:
    """3,000 jobs allowed 20 attempts each: about 2 MiB to start, but over 20 MiB of history."""
    store = _store(database)
    specs = [job(f"j{i}", retry={"max_attempts": 20}) for i in range(3000)]
    doc = document("retries", specs, phases=[("all", [spec["name"] for spec in specs])])
    with pytest.raises(RunError) as caught:
        start_run(store, doc, {}, run_id="r-retries")
    message = caught.value.message
    assert "3000 jobs" in message and "up to 20 attempts per job" in message
    bound = Bound.of_run(new_run_document(doc, {}, "r-retries"))
    assert bound.initial < 3 * MIB < RUN_DOCUMENT_BOUND < bound.total
    assert f"could grow to {bound.total / MIB:.1f} MiB" in message
    assert store.get_run("r-retries") is None


def test_compile_refuses_a_workflow_whose_run_document_could_pass_the_bound() -> None:
    jobs = [dsl_job(name=f"j{i}", retry=Retry(attempts=20))(lambda event, context: None) for i in range(3000)]

    @workflow(name="too-many-retries")
    def too_many() -> Any:
        return parallel(*jobs)

    with pytest.raises(InvalidWorkflow) as caught:
        compile(too_many)
    assert any(
        problem.startswith("workflow 'too-many-retries': its run document could grow to")
        and "up to 20 attempts per job" in problem
        for problem in caught.value.problems
    ), caught.value.problems


def test_the_benchmarks_10000_job_shapes_fit_the_bound() -> None:
    """chain, fan-out/fan-in and layered DAG of 10,000 jobs (benchmarks/bench_transitions.py) compile,
    and their worst case stays under the bound (layered is the largest: 6.9 MiB to start)."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    try:
        from bench_transitions import SHAPES
    finally:
        sys.path.pop(0)
    for shape, build in SHAPES.items():

        @workflow(name=f"shape-{shape}")
        def shaped(build: Any = build) -> Any:
            return build(10_000)

        config = compile(shaped).model_dump(mode="json")
        bound = Bound.of_run(new_run_document(config, {}, "r"))
        print(f"\n{shape}: starts {bound.initial / MIB:.2f} MiB, worst {bound.total / MIB:.2f} MiB")
        assert bound.jobs == 10_000
        assert bound.total <= RUN_DOCUMENT_BOUND


def test_a_redrive_that_could_take_the_run_past_the_bound_is_refused(database: Any) -> None:
    """A run started just under the bound fails; redriving it would give its job a fresh budget."""
    store = _store(database)
    probe = document("near", [job("a", input={"blob": ""})])
    room = RUN_DOCUMENT_BOUND - Bound.of_run(new_run_document(probe, {}, "r-near")).total
    doc = document("near", [job("a", input={"blob": "z" * (room - 16)})])
    run = start_run(store, doc, {}, run_id="r-near")
    assert run.status == "running"
    assert store.claim("r-near", "a", 0)
    assert store.record_outcome("r-near", "a", 1, state="failed", error=_error_of_inline_size())
    assert store.end_run("r-near", "failed", phase_index=1)
    with pytest.raises(RunError, match=r"run 'r-near' cannot be redriven: its document is 15\.0 MiB"):
        redrive_run(store, "r-near")
    stored = store.get_run("r-near")
    assert stored is not None and stored["status"] == "failed" and stored.get("redrive_count") == 0
