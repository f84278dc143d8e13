"""`flowkit publish` and `flowkit schema --status` from the command line (in process, wire server)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ETL = str(ROOT / "workflows" / "nightly_etl.py")


def cli(capsys: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    from flowkit.cli import main

    for name in list(os.environ):
        if name.startswith("FLOWKIT_"):
            monkeypatch.delenv(name)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def target(wire_server: Any, wire_database: Any) -> list[str]:
    return ["--mongo-uri", wire_server.uri, "--database", wire_database.name]


def test_publish_a_python_target_twice(
    capsys: Any, monkeypatch: Any, target: list[str], wire_database: Any
) -> None:
    first = cli(capsys, monkeypatch, "publish", ETL, *target)
    second = cli(capsys, monkeypatch, "publish", ETL, *target)

    assert first[0] == 0 and first[1].startswith("nightly-etl sha256:") and first[1].endswith(" published\n")
    assert second[1] == first[1].replace("published", "unchanged")
    current = wire_database["workflows"].find_one({"_id": "nightly-etl"})
    assert current["document"]["name"] == "nightly-etl" and current["version"] == first[1].split()[1]


def test_publish_compiled_json_and_refuse_an_edited_one(
    capsys: Any, monkeypatch: Any, target: list[str], tmp_path: Path, wire_database: Any
) -> None:
    folder = tmp_path / "compiled"
    assert cli(capsys, monkeypatch, "compile", str(ROOT / "workflows"), "-o", str(folder))[0] == 0
    code, out, _ = cli(capsys, monkeypatch, "publish", str(folder), *target)
    assert code == 0 and sorted(line.split()[0] for line in out.splitlines()) == [
        "fan-out",
        "nested",
        "nightly-etl",
        "order-pipeline",
    ]
    edited = json.loads((folder / "nested.json").read_text())
    edited["jobs"][0]["timeout_seconds"] = 1
    (folder / "nested.json").write_text(json.dumps(edited))
    code, out, err = cli(capsys, monkeypatch, "publish", str(folder / "nested.json"), *target)
    assert code == 1 and out == ""
    assert "is not the document's content hash" in err and "nested.json" in err


def test_publish_needs_a_database(capsys: Any, monkeypatch: Any) -> None:
    code, _, err = cli(capsys, monkeypatch, "publish", ETL)
    assert code == 2 and "pass --mongo-uri URI or set FLOWKIT_MONGO_URI" in err


def test_status_schema_validates_what_the_reporter_writes(capsys: Any, monkeypatch: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from flowkit.runtime.store import make_status

    code, out, _ = cli(capsys, monkeypatch, "schema", "--status")
    assert code == 0
    schema = json.loads(out)
    good = json.loads(
        json.dumps(
            make_status("r-1", "wf", "a", 1, "failed", error={"type": "E", "message": "m"}), default=str
        )
    )
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "status": "done"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in good.items() if k != "attempt"}, schema)
