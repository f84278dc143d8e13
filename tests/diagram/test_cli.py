"""`flowkit diagram` as users run it: a subprocess, real files."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _examples import ROOT, example_documents

from flowkit.cli import main
from flowkit.document import JobRun, Run


def flowkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowkit", "diagram", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_svg_from_the_extension(tmp_path: Path) -> None:
    out = tmp_path / "flow.svg"

    result = flowkit("workflows/nightly_etl.py", "-o", str(out))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    texts = {t.text for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}text")}
    assert {"extract", "load", "report", "extract.output.rows > 0", "otherwise"} <= texts


def test_png_and_explicit_format(tmp_path: Path) -> None:
    result = flowkit("workflows/order_pipeline.py", "-o", str(tmp_path / "flow"), "--format", "png")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "flow").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mermaid_and_dot_to_stdout() -> None:
    mermaid = flowkit("workflows/nightly_etl.py", "--format", "mermaid")
    dot = flowkit("workflows/nightly_etl.py")

    assert mermaid.returncode == 0 and mermaid.stdout.startswith("flowchart LR\n")
    assert "extract.output.rows #gt; 0" in mermaid.stdout
    assert dot.returncode == 0 and dot.stdout.startswith('digraph "nightly-etl" {')


def test_a_folder_writes_one_diagram_per_workflow(tmp_path: Path) -> None:
    result = flowkit("workflows", "-o", str(tmp_path / "out"), "--format", "mermaid")

    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{name}.mmd" for name in example_documents())
    assert len(result.stdout.splitlines()) == len(written)


def test_a_run_document_colours_its_jobs(tmp_path: Path) -> None:
    doc = example_documents()["nightly-etl"]
    states = {"extract": "succeeded", "dedupe": "failed", "normalize-currency": "running", "load": "skipped"}
    run = Run(
        _id="r-42",
        workflow=doc.name,
        version=doc.version,
        config=doc,
        status="failed",
        jobs={name: JobRun(state=state, attempt=1) for name, state in states.items()},
        created_at="2026-11-27T01:00:00Z",
    )
    run_file = tmp_path / "run.json"
    run_file.write_text(run.model_dump_json(by_alias=True))

    with_target = flowkit("workflows", "--run", str(run_file), "--format", "dot")
    without_target = flowkit("--run", str(run_file), "--format", "dot")

    assert with_target.returncode == 0, with_target.stderr
    assert "run r-42: failed" in with_target.stdout
    dedupe = next(line for line in with_target.stdout.splitlines() if line.strip().startswith("dedupe ["))
    assert 'fillcolor="#fecaca"' in dedupe
    assert without_target.stdout == with_target.stdout  # the run's own config is the same document


def test_usage_errors_are_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    bad_run = tmp_path / "bad.json"
    bad_run.write_text('{"workflow": 3}')
    cases = {
        (
            "workflows/nightly_etl.py",
            "-o",
            str(tmp_path / "a.png"),
            "--format",
            "svg",
        ): "names a png file but --format is svg",
        ("workflows/nightly_etl.py", "-o", str(tmp_path / "a.txt")): "cannot tell the diagram format from",
        ("workflows/nightly_etl.py", "--format", "png"): "--format png is a binary format: pass -o FILE",
        ("workflows",): "has 4 workflows (fan-out, nested, nightly-etl, order-pipeline): pass -o DIR",
        ("workflows", "--run", str(bad_run)): f"--run {bad_run}: not a run document:",
        ("workflows", "--run", str(tmp_path / "missing.json")): "cannot read it",
        ("no/such/place.py",): "no such file or folder",
    }
    for args, message in cases.items():
        code = main(["diagram", *args])  # in-process: the subprocess path is covered above
        stderr = capsys.readouterr().err
        assert code == 2, (args, stderr)  # usage or bad input
        assert message in stderr, (args, stderr)
        assert stderr.count("\n") == 1, (args, stderr)


def test_a_run_of_a_workflow_target_does_not_define(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    doc = example_documents()["nested"]
    run = Run(
        _id="r-1",
        workflow=doc.name,
        version=doc.version,
        config=doc,
        jobs={},
        created_at="2026-11-27T01:00:00Z",
    )
    run_file = tmp_path / "run.json"
    run_file.write_text(run.model_dump_json(by_alias=True))

    code = main(["diagram", "workflows/nightly_etl.py", "--run", str(run_file)])

    assert code == 2
    assert "run 'r-1' is a run of workflow 'nested', which workflows/nightly_etl.py does not define" in (
        capsys.readouterr().err
    )


def test_without_dot_the_cli_explains_and_text_still_works(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}

    svg = flowkit("workflows/nightly_etl.py", "-o", str(tmp_path / "a.svg"), env=env)
    mermaid = flowkit("workflows/nightly_etl.py", "--format", "mermaid", env=env)

    assert svg.returncode == 1
    assert "apt-get install graphviz" in svg.stderr and "brew install graphviz" in svg.stderr
    assert mermaid.returncode == 0 and mermaid.stdout.startswith("flowchart LR")
