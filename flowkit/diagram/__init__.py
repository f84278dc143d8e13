"""Draw a compiled workflow: Graphviz (DOT, SVG, PNG, PDF) and Mermaid.

    >>> from flowkit.diagram import to_digraph, to_mermaid, render
    >>> to_digraph(document)                 # a graphviz.Digraph; displays itself in a notebook
    >>> print(to_mermaid(document))          # paste into GitHub Markdown in a ```mermaid fence
    >>> render(document, "flow.svg", run={"extract": "succeeded", "load": "running"})

Everything works on the compiled ``WorkflowDocument`` (never on DSL objects), optionally with a run
state: a stored ``flowkit.document.Run`` or a mapping ``{job name: JobState or str}``; jobs missing
from the mapping are drawn as pending. DOT and Mermaid text need no ``dot`` binary; rendering SVG, PNG
or PDF does, and raises ``RenderError`` with install instructions when it is missing.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from flowkit.diagram.extract import RunState, extract
from flowkit.diagram.renderers import mermaid as _mermaid
from flowkit.document import WorkflowDocument
from flowkit.errors import RenderError

if TYPE_CHECKING:
    import graphviz

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "Format",
    "RunState",
    "format_for_path",
    "render",
    "to_digraph",
    "to_dot",
    "to_mermaid",
]

logger = logging.getLogger(__name__)

Format = Literal["svg", "png", "pdf", "dot", "mermaid"]
FORMATS: Final[tuple[Format, ...]] = ("svg", "png", "pdf", "dot", "mermaid")
EXTENSIONS: Final[dict[str, Format]] = {
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "mermaid",
}
GRAPHVIZ_HINT: Final = (
    "the Graphviz 'dot' program is needed to render {format}: install Graphviz "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "others: https://graphviz.org/download/), or write .dot or .mmd output, which needs no Graphviz"
)


def to_digraph(document: WorkflowDocument, run: RunState | None = None) -> graphviz.Digraph:
    """The workflow as a ``graphviz.Digraph`` (needs the ``graphviz`` Python package, not ``dot``)."""
    from flowkit.diagram.renderers import dot

    return dot.to_digraph(extract(document, run))


def to_dot(document: WorkflowDocument, run: RunState | None = None) -> str:
    """DOT source text; deterministic for a given document and run state."""
    return str(to_digraph(document, run).source)


def to_mermaid(document: WorkflowDocument, run: RunState | None = None) -> str:
    """A Mermaid ``flowchart`` (no fence); GitHub renders it inside a ```mermaid block."""
    return _mermaid.render(extract(document, run))


def format_for_path(path: str | Path) -> Format:
    """The output format implied by a file name's extension."""
    suffix = Path(path).suffix.lower()
    try:
        return EXTENSIONS[suffix]
    except KeyError:
        known = ", ".join(sorted(EXTENSIONS))
        raise RenderError(
            f"cannot tell the diagram format from {str(path)!r}: use one of the extensions {known}, "
            "or pass the format"
        ) from None


def render(
    document: WorkflowDocument,
    path: str | Path,
    *,
    format: Format | None = None,
    run: RunState | None = None,
) -> Path:
    """Write the diagram to ``path``; the format comes from ``format`` or the file extension."""
    path = Path(path)
    fmt = format if format is not None else format_for_path(path)
    if fmt not in FORMATS:
        raise RenderError(f"unknown diagram format {fmt!r} (choose from {', '.join(FORMATS)})")
    data: bytes
    if fmt == "mermaid":
        text = to_mermaid(document, run)
        if path.suffix.lower() == ".md":
            text = f"```mermaid\n{text}```\n"
        data = text.encode()
    elif fmt == "dot":
        data = to_dot(document, run).encode()
    else:
        data = _pipe(to_digraph(document, run), fmt, document.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    logger.debug("wrote %s diagram of %s to %s", fmt, document.name, path)
    return path


def _pipe(digraph: graphviz.Digraph, fmt: str, workflow: str) -> bytes:
    from flowkit.diagram.renderers.dot import import_graphviz

    gv = import_graphviz()
    try:
        data: bytes = digraph.pipe(format=fmt)
    except gv.ExecutableNotFound as exc:
        raise RenderError(GRAPHVIZ_HINT.format(format=fmt.upper()), workflow=workflow) from exc
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()
        raise RenderError(f"Graphviz failed to render {fmt.upper()}: {detail}", workflow=workflow) from exc
    return data
