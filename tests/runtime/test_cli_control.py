"""`flowkit cancel` and `flowkit redrive` against the wire server, as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _harness import document, job

from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store

ROOT = Path(__file__).resolve().parents[2]


def flowkit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_")}
    env["FLOWKIT_RUNS_COLLECTION"] = "state_machines"  # nx-27017 rejects hyphens in names
    return subprocess.run(
        [sys.executable, "-m", "flowkit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture
def store(wire_database: Any) -> Store:
    store = Store(wire_database, runs="state_machines")
    store.ensure_indexes()
    start_run(store, document("seq", [job("a"), job("b", "a")]), {}, run_id="r-1")
    return store


@pytest.fixture
def target(wire_server: Any, wire_database: Any) -> list[str]:
    return ["--mongo-uri", wire_server.uri, "--database", wire_database.name]


def test_cancel_then_redrive_from_the_command_line(store: Store, target: list[str]) -> None:
    cancelled = flowkit("cancel", "r-1", "--reason", "wrong input", *target)
    again = flowkit("cancel", "r-1", *target)
    redriven = flowkit("redrive", "r-1", *target)
    twice = flowkit("redrive", "r-1", *target)

    assert (cancelled.returncode, cancelled.stdout, cancelled.stderr) == (0, "cancelled r-1\n", "")
    assert (again.returncode, again.stdout) == (0, "already cancelled r-1\n")
    assert (redriven.returncode, redriven.stdout) == (0, "redriven r-1 (redrive 1): a, b\n")
    assert twice.returncode == 1
    assert twice.stderr == (
        "error: run 'r-1' is running: only a failed, timed-out or cancelled run can be redriven\n"
    )
    run = store.get_run("r-1")
    assert (run["status"], run["redrive_count"]) == ("running", 1)
    keys = sorted(s["key"] for s in store.statuses.find({"run_id": "r-1"}))
    assert keys == ["r-1/*/0/cancelled", "r-1/*/0/started", "r-1/*/1/started"]


def test_unknown_runs_and_missing_configuration_are_clear_errors(store: Store, target: list[str]) -> None:
    unknown = flowkit("cancel", "nope", *target)
    no_uri = flowkit("redrive", "r-1")

    assert (unknown.returncode, unknown.stderr) == (1, "error: run 'nope' does not exist\n")
    assert no_uri.returncode == 2
    assert "no MongoDB to redrive the run in: pass --mongo-uri URI or set FLOWKIT_MONGO_URI" in no_uri.stderr
