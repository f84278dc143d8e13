"""`flowkit runs`, `flowkit status`, `flowkit doctor` against the wire server, and `flowkit diagram --run`
with a run exported as Extended JSON."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import json_util

from flowkit import compile
from flowkit.runtime.definitions import Definitions
from flowkit.runtime.report import Reporter
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store, make_status
from workflows.nested import nested
from workflows.order_pipeline import order_pipeline

RUNS = "state_machines"


def cli(capsys: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    from flowkit.cli import main

    for name in list(os.environ):
        if name.startswith("FLOWKIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLOWKIT_RUNS_COLLECTION", RUNS)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(wire_database: Any) -> Store:
    store = Store(wire_database, runs=RUNS)
    store.ensure_indexes()
    return store


@pytest.fixture
def target(wire_server: Any, wire_database: Any) -> list[str]:
    return ["--mongo-uri", wire_server.uri, "--database", wire_database.name]


def two_runs(store: Store) -> None:
    start_run(store, compile(nested), {"day": "2026-11-27"}, run_id="n-1")
    start_run(store, compile(order_pipeline), {"order_id": "o-1"}, run_id="o-1")
    assert store.claim("o-1", "validate-order", 0)
    reporter = Reporter(store)
    reporter.started("o-1", "validate-order", 1)
    store.record_outcome(
        "o-1", "validate-order", 1, state="failed", error={"type": "ValueError", "message": "no such order"}
    )
    store.end_run("o-1", "failed", phase_index=1)


def test_runs_lists_and_filters(capsys: Any, monkeypatch: Any, store: Store, target: list[str]) -> None:
    two_runs(store)
    code, out, _ = cli(capsys, monkeypatch, "runs", *target)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION", "JOBS"]
    assert [line.split()[0] for line in lines[1:]] == ["o-1", "n-1"]  # newest first

    _, out, _ = cli(capsys, monkeypatch, "runs", "--status", "failed", "--json", *target)
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["_id"], row["workflow"], row["status"]) == ("o-1", "order-pipeline", "failed")
    assert row["jobs"] == {"failed": 1, "pending": 7}

    _, out, _ = cli(capsys, monkeypatch, "runs", "--workflow", "nested", "--json", *target)
    assert [json.loads(line)["_id"] for line in out.splitlines()] == ["n-1"]
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    _, out, err = cli(capsys, monkeypatch, "runs", "--since", future, *target)
    assert (out, err) == ("", "no runs\n")
    _, out, _ = cli(capsys, monkeypatch, "runs", "--since", "1h", "--json", *target)
    assert len(out.splitlines()) == 2


def test_bad_since_is_a_usage_error(capsys: Any, monkeypatch: Any, target: list[str]) -> None:
    code, _, err = cli(capsys, monkeypatch, "runs", "--since", "yesterday", *target)
    assert code == 2 and "--since 'yesterday': expected an ISO-8601 time" in err


def test_status_shows_each_job_with_its_error(
    capsys: Any, monkeypatch: Any, store: Store, target: list[str], tmp_path: Path
) -> None:
    two_runs(store)
    code, out, _ = cli(capsys, monkeypatch, "status", "o-1", "--diagram", str(tmp_path / "o-1.svg"), *target)
    assert code == 0
    assert out.splitlines()[0].startswith("run o-1  workflow order-pipeline  version sha256:")
    row = next(line for line in out.splitlines() if line.startswith("validate-order"))
    assert row.split()[:3] == ["validate-order", "failed", "1"] and row.endswith("ValueError: no such order")
    assert (tmp_path / "o-1.svg").read_text().lstrip().startswith(("<?xml", "<svg"))

    _, out, _ = cli(capsys, monkeypatch, "status", "o-1", "--json", *target)
    assert json.loads(out)["jobs"]["validate-order"]["error"] == {
        "type": "ValueError",
        "message": "no such order",
    }


def test_status_shows_outputs_and_errors_kept_in_the_results_collection(
    capsys: Any, monkeypatch: Any, store: Store, target: list[str]
) -> None:
    start_run(store, compile(nested), {"day": "2026-11-27"}, run_id="n-1")
    big = {"rows": 120, "note": "n" * 4000}
    assert store.claim("n-1", "prepare", 0)
    store.record_outcome("n-1", "prepare", 1, state="succeeded", output=big)
    assert store.get_run("n-1")["jobs"]["prepare"]["output"] is None  # only its reference is in the run

    code, out, _ = cli(capsys, monkeypatch, "status", "n-1", *target)
    row = next(line for line in out.splitlines() if line.startswith("prepare"))
    assert code == 0 and '{"note": "nnnn' in row

    _, out, _ = cli(capsys, monkeypatch, "status", "n-1", "--json", *target)
    assert json.loads(out)["jobs"]["prepare"]["output"] == big


def test_status_of_an_unknown_run(capsys: Any, monkeypatch: Any, store: Store, target: list[str]) -> None:
    code, out, err = cli(capsys, monkeypatch, "status", "nope", *target)
    assert code == 1 and out == "" and "no run 'nope'" in err


def test_doctor_passes_on_a_healthy_database(
    capsys: Any, monkeypatch: Any, store: Store, target: list[str]
) -> None:
    Definitions(store.database).publish(compile(nested).model_dump(mode="json"))
    two_runs(store)
    code, out, _ = cli(capsys, monkeypatch, "doctor", *target)
    assert code == 0, out
    assert all(line.startswith("ok ") for line in out.splitlines())


def test_doctor_finds_unprocessed_events_and_stuck_runs(
    capsys: Any, monkeypatch: Any, store: Store, target: list[str]
) -> None:
    # given a run whose job reported success an hour ago, but no handler ever recorded it (trigger down)
    start_run(store, compile(nested), {}, run_id="n-1")
    store.claim("n-1", "prepare", 0)
    old = datetime.now(UTC) - timedelta(hours=1)
    store.runs.update_one({"_id": "n-1"}, {"$set": {"created_at": old}})
    store.statuses.delete_many({})
    store.insert_status(make_status("n-1", "nested", None, 0, "started", time=old))
    store.insert_status(make_status("n-1", "nested", "prepare", 1, "success", output={}, time=old))
    code, out, _ = cli(capsys, monkeypatch, "doctor", "--stale", "10", *target)
    failures = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert code == 1
    assert any(
        "never reached the handlers (n-1/prepare/1/success): is the Atlas trigger suspended?" in f
        for f in failures
    )
    assert any("running run(s) without any event" in f and "n-1" in f for f in failures)
    assert any("no published workflow" in f for f in failures)


def test_doctor_reports_a_missing_unique_index(
    capsys: Any, monkeypatch: Any, wire_database: Any, target: list[str]
) -> None:
    wire_database["statuses"].insert_one({"key": "x"})
    code, out, _ = cli(capsys, monkeypatch, "doctor", *target)
    assert code == 1 and "FAIL statuses: no unique index on key" in out


def test_diagram_accepts_a_mongoexport_run(
    capsys: Any, monkeypatch: Any, store: Store, tmp_path: Path
) -> None:
    two_runs(store)
    # what `mongoexport --collection state_machines --query '{"_id": "o-1"}'` writes: canonical Extended JSON
    exported = json_util.dumps(store.get_run("o-1"), json_options=json_util.CANONICAL_JSON_OPTIONS)
    assert '"$date"' in exported
    path = tmp_path / "o-1.json"
    path.write_text(exported + "\n")
    code, out, err = cli(capsys, monkeypatch, "diagram", "--run", str(path))
    assert code == 0, err
    assert "validate_order" in out or "validate-order" in out
    (tmp_path / "array.json").write_text("[" + exported + "]")
    assert cli(capsys, monkeypatch, "diagram", "--run", str(tmp_path / "array.json"))[0] == 0
    (tmp_path / "bad.json").write_text('{"_id": "x"}')
    code, _, err = cli(capsys, monkeypatch, "diagram", "--run", str(tmp_path / "bad.json"))
    assert code == 2 and "not a run document" in err


def test_status_watch_returns_with_the_final_table_once_the_run_ended(
    capsys: Any, monkeypatch: Any, store: Store, target: list[str]
) -> None:
    pytest.importorskip("rich")
    two_runs(store)  # o-1 has ended
    code, out, _ = cli(capsys, monkeypatch, "status", "o-1", "--watch", *target)
    assert code == 0 and "status failed" in out.splitlines()[0]
