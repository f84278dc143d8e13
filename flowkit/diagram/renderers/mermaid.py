"""``DiagramGraph`` -> Mermaid ``flowchart LR`` text, as GitHub renders it in Markdown.

A wide fan-out is a subgraph linked as a whole (one edge in, one out), like the Graphviz grid.
Node ids are generated (``j_<name>``, ``when_1``, ...) because Mermaid reserves words such as ``end``
and reads ``-`` and ``o`` next to arrows as edge syntax; the job name is in the label. Labels are quoted
and user text is written with Mermaid's entity codes (``#quot;``, ``#lt;``...), so conditions such as
``input.mode == "full"`` or ``rows > 0`` survive intact.
"""

from __future__ import annotations

import re

from flowkit.diagram import _style, _text
from flowkit.diagram._groups import wide_groups
from flowkit.diagram.model import DiagramGraph, DiagramNode, EdgeKind, NodeKind

__all__ = ["escape", "render"]

_ENTITIES = {"#": "#35;", "&": "#amp;", "<": "#lt;", ">": "#gt;", '"': "#quot;", "|": "#124;"}
_UNSAFE = re.compile(r"[#&<>\"|]")
_NOT_ID = re.compile(r"[^A-Za-z0-9_]")


def escape(text: str) -> str:
    """User text inside a quoted Mermaid label."""
    return _UNSAFE.sub(lambda m: _ENTITIES[m.group()], text)


def render(graph: DiagramGraph) -> str:
    ids = _ids(graph)
    nodes = {node.id: node for node in graph.nodes}
    lines = ["flowchart LR", f"    %% workflow: {' '.join(graph.name.split())}"]
    if graph.run_label:
        lines.append(f"    %% {' '.join(graph.run_label.split())}")
    groups = {f"parallel_{index + 1}": group for index, group in enumerate(wide_groups(graph))}
    group_of = {node_id: group_id for group_id, group in groups.items() for node_id in group}

    def place(node_id: str, indent: str) -> None:
        if node_id not in group_of:
            lines.append(f"{indent}{ids[node_id]}{_shape(nodes[node_id])}")
        elif groups[group_of[node_id]][0] == node_id:  # a wide fan-out: one subgraph, linked as a whole
            members = groups[group_of[node_id]]
            lines.append(f'{indent}subgraph {group_of[node_id]}["{len(members)} jobs in parallel"]')
            lines.extend(f"{indent}    {ids[member]}{_shape(nodes[member])}" for member in members)
            lines.append(f"{indent}end")

    in_cluster = {node_id for cluster in graph.clusters for node_id in cluster.nodes}
    for node in graph.nodes:
        if node.id not in in_cluster:
            place(node.id, "    ")
    for index, cluster in enumerate(graph.clusters):
        lines.append(f'    subgraph phase_{index}["{escape(cluster.label)}"]')
        for node_id in cluster.nodes:
            place(node_id, "        ")
        lines.append("    end")

    link_styles: dict[EdgeKind, list[int]] = {EdgeKind.THEN: [], EdgeKind.OTHERWISE: []}
    drawn: set[tuple[str, str, EdgeKind]] = set()
    for edge in graph.edges:
        source = group_of.get(edge.source, ids[edge.source])
        target = group_of.get(edge.target, ids[edge.target])
        if (source, target, edge.kind) in drawn:  # a group's shared edges are drawn once
            continue
        drawn.add((source, target, edge.kind))
        into_point = nodes[edge.target].kind in (NodeKind.JOIN, NodeKind.FORK)
        arrow = "-.->" if edge.kind is EdgeKind.OTHERWISE else ("---" if into_point else "-->")
        label = ""
        if edge.label:
            label = '|"' + "<br/>".join(escape(line) for line in _text.wrap_text(edge.label)) + '"|'
        if edge.kind in link_styles:
            link_styles[edge.kind].append(len(drawn) - 1)
        lines.append(f"    {source} {arrow}{label} {target}")
    for kind, color in ((EdgeKind.THEN, _style.THEN_COLOR), (EdgeKind.OTHERWISE, _style.OTHERWISE_COLOR)):
        if link_styles[kind]:
            numbers = ",".join(map(str, link_styles[kind]))
            lines.append(f"    linkStyle {numbers} stroke:{color},color:{color}")

    lines.extend(_classes(graph, ids))
    return "\n".join(lines) + "\n"


def _ids(graph: DiagramGraph) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    counters: dict[NodeKind, int] = {}
    for node in graph.nodes:
        if node.kind is NodeKind.JOB:
            base = "j_" + _NOT_ID.sub("_", node.id)
        elif node.kind is NodeKind.START:
            base = "start"
        elif node.kind is NodeKind.END:
            base = "stop"  # 'end' is a Mermaid keyword
        else:
            counters[node.kind] = counters.get(node.kind, 0) + 1
            base = f"{'when' if node.kind is NodeKind.DECISION else node.kind.value}_{counters[node.kind]}"
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        ids[node.id] = candidate
    return ids


def _shape(node: DiagramNode) -> str:
    if node.kind is NodeKind.JOB:
        title = "<br/>".join(escape(line) for line in _text.wrap_name(node.title))
        details = "".join(f"<br/>{escape(line)}" for line in node.details)
        return f'("<b>{title}</b>{details}")'
    if node.kind is NodeKind.START:
        return '(["start"])'
    if node.kind is NodeKind.END:
        return '(["end"])'
    if node.kind is NodeKind.DECISION:
        return '{" "}'
    return '((" "))'


def _classes(graph: DiagramGraph, ids: dict[str, str]) -> list[str]:
    lines = []
    jobs = [node for node in graph.nodes if node.kind is NodeKind.JOB]
    if graph.legend:
        lines.append('    subgraph legend["job state"]')
        lines.extend(f'        legend_{state.value}["{state.value}"]' for state in graph.legend)
        lines.append("    end")
        for state in graph.legend:
            style = _style.STATE_STYLES[state]
            extra = ",stroke-dasharray:4 3" if style.dashed else ""
            width = 2 if style.bold else 1
            lines.append(
                f"    classDef {state.value} fill:{style.fill},stroke:{style.border},"
                f"stroke-width:{width}px{extra}"
            )
        for state in graph.legend:
            members = [ids[n.id] for n in jobs if n.state is state] + [f"legend_{state.value}"]
            lines.append(f"    class {','.join(members)} {state.value}")
    elif jobs:
        style = _style.JOB_STYLE
        lines.append(f"    classDef job fill:{style.fill},stroke:{style.border}")
        lines.append(f"    class {','.join(ids[n.id] for n in jobs)} job")
    decisions = [ids[n.id] for n in graph.nodes if n.kind is NodeKind.DECISION]
    if decisions:
        lines.append(f"    classDef decision fill:{_style.DECISION_FILL},stroke:#92400e")
        lines.append(f"    class {','.join(decisions)} decision")
    return lines
