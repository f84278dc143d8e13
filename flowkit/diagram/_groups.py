"""Wide fan-outs: parallel jobs that both renderers draw as one block instead of one edge pair each."""

from __future__ import annotations

from flowkit.diagram.model import DiagramGraph, NodeKind

__all__ = ["FOLD_AT", "wide_groups"]

FOLD_AT = 12
"""Parallel jobs with the same upstream and downstream, this many or more, are drawn as one grid."""


def wide_groups(graph: DiagramGraph) -> list[list[str]]:
    """Jobs in the same phase with exactly the same incoming and outgoing edges, FOLD_AT or more."""
    incoming: dict[str, set[tuple[str, str, str]]] = {}
    outgoing: dict[str, set[tuple[str, str, str]]] = {}
    for edge in graph.edges:
        incoming.setdefault(edge.target, set()).add((edge.source, edge.kind.value, edge.label))
        outgoing.setdefault(edge.source, set()).add((edge.target, edge.kind.value, edge.label))
    phase = {node_id: cluster.id for cluster in graph.clusters for node_id in cluster.nodes}
    by_key: dict[tuple[object, ...], list[str]] = {}
    for node in graph.nodes:
        if node.kind is NodeKind.JOB:
            key = (
                phase.get(node.id),
                frozenset(incoming.get(node.id, ())),
                frozenset(outgoing.get(node.id, ())),
            )
            by_key.setdefault(key, []).append(node.id)
    return [group for group in by_key.values() if len(group) >= FOLD_AT]
