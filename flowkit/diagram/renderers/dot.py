"""``DiagramGraph`` -> ``graphviz.Digraph`` (and so DOT text, SVG, PNG, PDF).

Left to right: the start on the left, phases as clusters in order, parallel jobs stacked in one
column, then the end. A wide fan-out (``_groups.FOLD_AT`` or more jobs with the same upstream and downstream)
becomes one node holding a grid of its jobs, read left to right, so 64 shards stay a compact, ordered
block with one edge in and one out. Labels are HTML-like so names, targets and policies can have their
own weight and size; every piece of user text is escaped.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from flowkit.diagram import _style, _text
from flowkit.diagram._groups import wide_groups
from flowkit.diagram.model import DiagramEdge, DiagramGraph, DiagramNode, EdgeKind, NodeKind
from flowkit.errors import MissingDependency

if TYPE_CHECKING:
    import graphviz

__all__ = ["INSTALL_HINT", "import_graphviz", "to_digraph"]

INSTALL_HINT = "pip install 'flowkit[diagram]'"
FONT = "Helvetica,Arial,sans-serif"


def import_graphviz() -> Any:
    """The ``graphviz`` module, or ``MissingDependency`` saying how to install it."""
    try:
        import graphviz
    except ImportError as exc:
        raise MissingDependency(
            f"drawing diagrams with Graphviz needs the 'graphviz' Python package: {INSTALL_HINT}"
        ) from exc
    return graphviz


def to_digraph(graph: DiagramGraph) -> graphviz.Digraph:
    gv = import_graphviz()
    dot = gv.Digraph(name=graph.name)
    dot.attr(
        "graph",
        rankdir="LR",
        newrank="true",
        ordering="out",
        nodesep="0.18",
        ranksep="0.45",
        fontname=FONT,
        label=_graph_label(graph),
        labelloc="t",
        labeljust="l",
        tooltip=_plain(graph.description or graph.name),
    )
    dot.attr("node", fontname=FONT, fontsize="12", margin="0.12,0.06")
    dot.attr("edge", fontname=FONT, fontsize="10", color=_style.EDGE_COLOR, arrowsize="0.7")

    nodes = {node.id: node for node in graph.nodes}
    groups = {_group_id(index): group for index, group in enumerate(wide_groups(graph))}
    group_of = {node_id: group_id for group_id, group in groups.items() for node_id in group}

    def place(target: graphviz.Digraph, node_id: str) -> None:
        if node_id not in group_of:
            _node(target, nodes[node_id])
        elif groups[group_of[node_id]][0] == node_id:  # a group is drawn where its first job is
            _group(target, group_of[node_id], [nodes[member] for member in groups[group_of[node_id]]])

    in_cluster = {node_id for cluster in graph.clusters for node_id in cluster.nodes}
    for node in graph.nodes:
        if node.id not in in_cluster:
            place(dot, node.id)
    for cluster in graph.clusters:
        with dot.subgraph(name=cluster.id) as sub:
            sub.attr(
                label=f"<<B>{_esc(cluster.label)}</B>>",
                style="rounded,dashed",
                color="#9aa3b2",
                fontcolor="#374151",
                fontsize="12",
                labeljust="l",
                margin="10",
            )
            for node_id in cluster.nodes:
                place(sub, node_id)
    drawn: set[tuple[str, str, EdgeKind]] = set()
    for edge in graph.edges:
        source = group_of.get(edge.source, _dot_id(edge.source))
        target = group_of.get(edge.target, _dot_id(edge.target))
        if (source, target, edge.kind) not in drawn:  # a group's shared edges are drawn once
            drawn.add((source, target, edge.kind))
            dot.edge(source, target, **_edge_attrs(edge, nodes))
    return dot


def _group_id(index: int) -> str:
    return f"@parallel/{index + 1}"


def _group(dot: graphviz.Digraph, node_id: str, members: list[DiagramNode]) -> None:
    """One node whose label is a table: a cell per job, read left to right, then down."""
    columns = math.ceil(math.sqrt(len(members) / 2))
    rows = [
        f'<TR><TD COLSPAN="{columns}" ALIGN="LEFT" BORDER="0">'
        f'<FONT POINT-SIZE="10" COLOR="#4b5563">{len(members)} jobs in parallel</FONT></TD></TR>'
    ]
    for start in range(0, len(members), columns):
        cells = []
        for member in members[start : start + columns]:
            style = _style.STATE_STYLES[member.state] if member.state is not None else _style.JOB_STYLE
            cells.append(
                f'<TD BGCOLOR="{style.fill}" COLOR="{style.border}" BORDER="{2 if style.bold else 1}"'
                f'{" STYLE=" + chr(34) + "dashed" + chr(34) if style.dashed else ""} CELLPADDING="5"'
                f' TOOLTIP="{_esc(_plain(member.tooltip or member.title))}">{_job_text(member)}</TD>'
            )
        rows.append("<TR>" + "".join(cells) + "</TR>")
    dot.node(
        node_id,
        label='<<TABLE BORDER="0" CELLSPACING="6" CELLPADDING="0">' + "".join(rows) + "</TABLE>>",
        shape="box",
        style="rounded,filled",
        fillcolor="#f8fafc",
        color="#cbd5e1",
        margin="0.04",
        tooltip=f"{len(members)} jobs in parallel",
    )


def _job_text(node: DiagramNode) -> str:
    title = "<BR/>".join(_esc(line) for line in _text.wrap_name(node.title))
    details = "".join(
        f'<BR/><FONT POINT-SIZE="10" COLOR="#4b5563">{_esc(line)}</FONT>' for line in node.details
    )
    return f"<B>{title}</B>{details}"


def _graph_label(graph: DiagramGraph) -> str:
    """Title, description, run and legend, left-aligned above the drawing."""
    rows = [f'<FONT POINT-SIZE="16"><B>{_esc(graph.name)}</B></FONT>']
    if graph.description:
        rows.append("<BR/>".join(_esc(line) for line in _text.wrap_text(graph.description, 100)))
    if graph.run_label:
        rows.append(f"<I>{_esc(graph.run_label)}</I>")
    cells = "".join(f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{row}</TD></TR>' for row in rows)
    if graph.legend:
        cells += f'<TR><TD ALIGN="LEFT">{_legend(graph)}</TD></TR>'
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLPADDING="1" CELLSPACING="0">{cells}</TABLE>>'


def _node(dot: graphviz.Digraph, node: DiagramNode) -> None:
    node_id = _dot_id(node.id)
    if node.kind is NodeKind.JOB:
        style = _style.STATE_STYLES[node.state] if node.state is not None else _style.JOB_STYLE
        shape_style = "rounded,filled" + (",dashed" if style.dashed else "")
        dot.node(
            node_id,
            label=f"<{_job_text(node)}>",
            shape="box",
            style=shape_style,
            fillcolor=style.fill,
            color=style.border,
            penwidth="2" if style.bold else "1",
            tooltip=_plain(node.tooltip or node.title),
        )
    elif node.kind is NodeKind.START:
        dot.node(node_id, label="start", shape="circle", style="filled", fillcolor="#1f2937",
                 fontcolor="white", fontsize="10", width="0.55", fixedsize="true")  # fmt: skip
    elif node.kind is NodeKind.END:
        dot.node(node_id, label="end", shape="doublecircle", style="filled", fillcolor="#1f2937",
                 fontcolor="white", fontsize="10", width="0.5", fixedsize="true")  # fmt: skip
    elif node.kind is NodeKind.DECISION:
        dot.node(node_id, label="", shape="diamond", style="filled", fillcolor=_style.DECISION_FILL,
                 color="#92400e", width="0.3", height="0.3", tooltip="when")  # fmt: skip
    elif node.kind is NodeKind.JOIN:
        dot.node(node_id, label="", shape="box", style="filled", fillcolor="#374151", color="#374151",
                 width="0.07", height="0.5", tooltip="join")  # fmt: skip
    else:  # fork point of a when-arm
        dot.node(node_id, label="", shape="point", width="0.08", color=_style.EDGE_COLOR)


def _edge_attrs(edge: DiagramEdge, nodes: dict[str, DiagramNode]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if edge.kind is EdgeKind.THEN:
        attrs.update(color=_style.THEN_COLOR, fontcolor=_style.THEN_COLOR, penwidth="1.3")
    elif edge.kind is EdgeKind.OTHERWISE:
        attrs.update(color=_style.OTHERWISE_COLOR, fontcolor=_style.OTHERWISE_COLOR, style="dashed")
    if edge.label:
        attrs["label"] = "<" + "<BR/>".join(_esc(line) for line in _text.wrap_text(edge.label)) + ">"
    if nodes[edge.target].kind in (NodeKind.JOIN, NodeKind.FORK):
        attrs["arrowhead"] = "none"
    return attrs


def _legend(graph: DiagramGraph) -> str:
    """One row under the title: a swatch per job state."""
    cells = ['<TD BORDER="0"><FONT POINT-SIZE="10">job state:</FONT></TD>']
    for state in graph.legend:
        style = _style.STATE_STYLES[state]
        cells.append(
            f'<TD BGCOLOR="{style.fill}" COLOR="{style.border}" STYLE="{"dashed" if style.dashed else "rounded"}">'
            f'<FONT POINT-SIZE="10">{_esc(state.value)}</FONT></TD>'
        )
    return (
        '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="4" CELLPADDING="3"><TR>'
        + "".join(cells)
        + "</TR></TABLE>"
    )


def _dot_id(node_id: str) -> str:
    # python-graphviz reads 'a:b' in an edge as node 'a', port 'b'; valid job names never contain ':'.
    return node_id.replace(":", "%3A")


def _plain(text: str) -> str:
    """Text for a tooltip: Graphviz expands ``\\N``, ``\\G``... in tooltips even when escaped, so a
    backslash is shown as the look-alike U+29F5."""
    return text.replace("\\", "\u29f5")


def _esc(text: str) -> str:
    """Text inside an HTML-like label: entities for markup; backslashes doubled (Graphviz halves them)."""
    return html.escape(text, quote=True).replace("\\", "\\\\")
