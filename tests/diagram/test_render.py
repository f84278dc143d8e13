"""Real renders with the `dot` binary, and what happens without it (or without the Python package)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _examples import ROOT, example_documents, example_names
from diagram_docs import etl, fan_out

from flowkit.diagram import _text, format_for_path, render
from flowkit.errors import RenderError

SVG = "{http://www.w3.org/2000/svg}"


def svg_nodes(path: Path) -> dict[str, str]:
    """Graphviz SVG: ``<g class="node"><title>id</title> <text>..</text>...``: id -> its text, joined."""
    root = ET.parse(path).getroot()
    nodes = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            title = group.findtext(f"{SVG}title")
            assert title is not None
            nodes[title] = "".join(t.text or "" for t in group.iter(f"{SVG}text"))
    return nodes


@pytest.mark.parametrize("name", example_names())
def test_example_renders_to_svg_with_every_job(name: str, tmp_path: Path) -> None:
    doc = example_documents()[name]

    path = render(doc, tmp_path / f"{name}.svg")

    nodes = svg_nodes(path)
    grids = "".join(text for node_id, text in nodes.items() if node_id.startswith("@parallel/"))
    for spec in doc.jobs:
        # a job is its own node, or a cell of a wide fan-out's grid; its name and target are shown
        label = "".join(_text.wrap_name(spec.name)) + "".join(
            _text.wrap_name(f"\u2192 {_text.target_text(spec.target)}", 32)
        )
        assert nodes.get(spec.name, "").startswith(label) or label in grids, spec.name
    assert nodes["@start"] == "start" and nodes["@end"] == "end"


def test_svg_shows_condition_labels_and_run_legend(tmp_path: Path) -> None:
    path = render(etl(), tmp_path / "etl.svg", run={"extract": "succeeded", "transform": "failed"})

    texts = [t.text for t in ET.parse(path).getroot().iter(f"{SVG}text")]
    assert "extract.output.rows > 0" in texts
    assert "otherwise" in texts
    assert {"pending", "running", "succeeded", "failed", "skipped"} <= set(texts)


def test_png_render_is_a_real_png(tmp_path: Path) -> None:
    path = render(fan_out(60), tmp_path / "fan.png")

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width > 500 and height > 500
    assert width < 4 * height and height < 4 * width  # the 60-wide fan-out is folded, not a strip


def test_pdf_and_text_formats(tmp_path: Path) -> None:
    doc = etl()

    assert render(doc, tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    assert render(doc, tmp_path / "a.dot").read_text().startswith('digraph "nightly-etl" {')
    assert render(doc, tmp_path / "a.mmd").read_text().startswith("flowchart LR\n")
    markdown = render(doc, tmp_path / "a.md").read_text()
    assert markdown.startswith("```mermaid\nflowchart LR\n") and markdown.endswith("```\n")
    assert render(doc, tmp_path / "no-extension", format="svg").read_text().startswith("<?xml")


def test_an_unknown_extension_names_the_known_ones() -> None:
    with pytest.raises(
        RenderError, match=r"'flow\.jpeg'.*\.dot, \.gv, \.md, \.mermaid, \.mmd, \.pdf, \.png, \.svg"
    ):
        format_for_path("flow.jpeg")


def test_an_unknown_format_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="unknown diagram format 'gif'"):
        render(etl(), tmp_path / "a.gif", format="gif")  # type: ignore[arg-type]


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def env_without_dot(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    return {**os.environ, "PATH": str(empty), "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'diagram'}"}


def test_without_the_dot_binary_text_works_and_rendering_says_how_to_install(tmp_path: Path) -> None:
    result = run_python(
        f"""
        from diagram_docs import etl
        from flowkit.diagram import render, to_dot, to_mermaid
        from flowkit.errors import RenderError
        doc = etl()
        assert to_dot(doc).startswith('digraph'), 'dot text'
        assert to_mermaid(doc).startswith('flowchart'), 'mermaid text'
        render(doc, {str(tmp_path / "x.dot")!r})
        render(doc, {str(tmp_path / "x.mmd")!r})
        try:
            render(doc, {str(tmp_path / "x.svg")!r})
        except RenderError as exc:
            print(exc)
        else:
            raise SystemExit('rendered without dot?')
        """,
        env_without_dot(tmp_path),
    )

    assert result.returncode == 0, result.stderr
    message = result.stdout
    assert "Graphviz 'dot' program is needed to render SVG" in message
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert (tmp_path / "x.dot").exists() and (tmp_path / "x.mmd").exists()
    assert not (tmp_path / "x.svg").exists()


def test_without_the_graphviz_package_mermaid_works_and_dot_says_what_to_install(tmp_path: Path) -> None:
    result = run_python(
        """
        import sys
        sys.modules['graphviz'] = None  # as if not installed
        from diagram_docs import etl
        from flowkit.diagram import to_dot, to_mermaid
        from flowkit.errors import MissingDependency
        assert to_mermaid(etl()).startswith('flowchart')
        try:
            to_dot(etl())
        except MissingDependency as exc:
            print(exc)
        """,
        env_without_dot(tmp_path),
    )

    assert result.returncode == 0, result.stderr
    assert "pip install 'flowkit[diagram]'" in result.stdout


def test_importing_the_diagram_package_does_not_import_graphviz(tmp_path: Path) -> None:
    result = run_python(
        """
        import sys
        import flowkit.diagram
        from diagram_docs import etl
        flowkit.diagram.to_mermaid(etl())
        print('graphviz' in sys.modules)
        """,
        env_without_dot(tmp_path),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_user_text_survives_escaping(tmp_path: Path) -> None:
    from diagram_docs import document, job, op, ref

    cond = op("eq", ref("input", "p"), {"const": 'a<b>&"\\N'})
    doc = document("odd <text> & \\N", [job("a", "p"), job("b", "p", ["a"], condition=cond)])

    texts = [t.text for t in ET.parse(render(doc, tmp_path / "odd.svg")).getroot().iter(f"{SVG}text")]

    assert 'input.p == "a<b>&\\"\\\\N"' in texts
    assert "odd <text> & \\N" in texts
