"""A run whose document would start too large is refused at start, with a message saying why."""

from __future__ import annotations

from typing import Any

import pytest
from _harness import RUNS, STATUSES, document, job

from flowkit.errors import RunError
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store
from flowkit.vocab import MONGO_DOCUMENT_LIMIT, RUN_START_LIMIT


def test_the_start_limit_is_half_of_mongodbs_document_limit() -> None:
    assert RUN_START_LIMIT * 2 == MONGO_DOCUMENT_LIMIT


def test_a_run_starting_over_the_limit_is_refused_and_nothing_is_written(database: Any) -> None:
    store = Store(database, runs=RUNS, statuses=STATUSES)
    doc = document("big", [job("a", input={"blob": "x" * (RUN_START_LIMIT // 2)}), job("b", "a")])
    with pytest.raises(
        RunError, match=r"workflow 'big': a new run document would be .* MiB \(2 jobs"
    ) as caught:
        start_run(store, doc, {"more": "y" * (RUN_START_LIMIT // 2)}, run_id="r-big")
    assert "over the 8 MiB a run may start with" in caught.value.message
    assert store.get_run("r-big") is None
    assert store.statuses.find_one({"run_id": "r-big"}) is None


def test_a_run_under_the_limit_starts(database: Any) -> None:
    store = Store(database, runs=RUNS, statuses=STATUSES)
    doc = document("fine", [job("a", input={"blob": "x" * (RUN_START_LIMIT // 4)})])
    assert start_run(store, doc, {}, run_id="r-fine").status == "running"
