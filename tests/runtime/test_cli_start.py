"""`flowkit start` against the wire server: as a subprocess, and in-process (``main(argv)``) for the
error cases, which need no fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = str(ROOT / "workflows" / "order_pipeline.py")


def flowkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_")}
    base["FLOWKIT_RUNS_COLLECTION"] = "state_machines"  # nx-27017 rejects hyphens in names
    return subprocess.run(
        [sys.executable, "-m", "flowkit", "start", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture
def target(wire_server: Any, wire_database: Any) -> list[str]:
    return ["--mongo-uri", wire_server.uri, "--database", wire_database.name]


def test_start_prints_the_run_id_and_is_idempotent(target: list[str], wire_database: Any) -> None:
    first = flowkit(ORDER, "--input", '{"order_id": "o-1", "amount": 12.5}', "--run-id", "order-1", *target)
    second = flowkit(ORDER, "--input", '{"order_id": "o-1", "amount": 12.5}', "--run-id", "order-1", *target)

    assert (first.returncode, first.stdout, first.stderr) == (0, "order-1\n", "")
    assert (second.returncode, second.stdout) == (0, "order-1\n")
    run = wire_database["state_machines"].find_one({"_id": "order-1"})
    assert run["workflow"] == "order-pipeline" and run["input"] == {"order_id": "o-1", "amount": 12.5}
    assert {j["state"] for j in run["jobs"].values()} == {"pending"}
    assert [s["key"] for s in wire_database["statuses"].find({})] == ["order-1/*/0/started"]


def test_the_mongo_uri_can_come_from_the_environment(wire_server: Any, wire_database: Any) -> None:
    env = {"FLOWKIT_MONGO_URI": wire_server.uri, "FLOWKIT_DATABASE": wire_database.name}
    result = flowkit(ORDER, "--run-id", "env-1", env=env)
    assert (result.returncode, result.stdout) == (0, "env-1\n")
    assert wire_database["state_machines"].count_documents({"_id": "env-1"}) == 1


def start(capsys: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """``flowkit start ARGS`` in this process."""
    from flowkit.cli import main

    for name in list(os.environ):
        if name.startswith("FLOWKIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLOWKIT_RUNS_COLLECTION", "state_machines")
    code = main(["start", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_generated_run_id_is_printed(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, target: list[str], wire_database: Any
) -> None:
    code, out, _ = start(capsys, monkeypatch, ORDER, *target)
    run_id = out.strip()
    assert code == 0 and run_id.startswith("order-pipeline-")
    assert wire_database["state_machines"].find_one({"_id": run_id})["input"] == {}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--input", "{oops"],
            2,
            "error: --input: invalid JSON at line 1 column 2 (char 1): Expecting property name enclosed in double quotes",
        ),
        (["--input", "[1]"], 2, "error: --input: the run input must be a JSON object, got list"),
        (["--input", "@/nonexistent/input.json"], 2, "error: --input @/nonexistent/input.json: cannot read"),
        (["--run-id", "x", "--workflow", "nope"], 2, "has no workflow named 'nope'"),
    ],
)
def test_bad_arguments_are_reported_and_nothing_is_written(
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
    target: list[str],
    wire_database: Any,
    args: list[str],
    code: int,
    message: str,
) -> None:
    exit_code, _, err = start(capsys, monkeypatch, ORDER, *args, *target)
    assert exit_code == code
    assert message in err
    assert wire_database["state_machines"].count_documents({}) == 0


def test_the_input_can_come_from_a_file(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, target: list[str], wire_database: Any, tmp_path: Path
) -> None:
    path = tmp_path / "input.json"
    path.write_text('{"order_id": "o-7",\n "card": "declined"}\n', encoding="utf-8")
    code, out, _ = start(capsys, monkeypatch, ORDER, "--input", f"@{path}", "--run-id", "o-7", *target)
    assert (code, out) == (0, "o-7\n")
    stored = wire_database["state_machines"].find_one({"_id": "o-7"})
    assert stored["input"] == {"order_id": "o-7", "card": "declined"}


def test_a_folder_with_several_workflows_needs_a_name(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, target: list[str]
) -> None:
    code, _, err = start(capsys, monkeypatch, str(ROOT / "workflows"), *target)
    assert code == 2
    assert "pick one with --workflow NAME" in err
    code, out, _ = start(
        capsys, monkeypatch, str(ROOT / "workflows"), "--workflow", "nested", "--run-id", "n-1", *target
    )
    assert (code, out) == (0, "n-1\n")


def test_without_a_database_the_command_says_how_to_give_one(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = start(capsys, monkeypatch, ORDER)
    assert code == 2
    assert "pass --mongo-uri URI or set FLOWKIT_MONGO_URI" in err


def test_the_same_run_id_with_another_input_is_refused(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, target: list[str]
) -> None:
    assert start(capsys, monkeypatch, ORDER, "--run-id", "o", "--input", '{"a": 1}', *target)[0] == 0
    code, _, err = start(capsys, monkeypatch, ORDER, "--run-id", "o", "--input", '{"a": 2}', *target)
    assert code == 1
    assert "error: run 'o' already exists with a different input: choose another run id" in err
