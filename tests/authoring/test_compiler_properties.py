"""Property tests: random compositions compile deterministically to needs that respect their order."""

from __future__ import annotations

import itertools
from typing import Any

import networkx as nx
from dsl_builders import build, trees
from hypothesis import HealthCheck, given, settings

from flowkit import compile, workflow
from flowkit.dsl import Job, Node, Parallel, Serial, When


def names(node: Node) -> set[str]:
    if isinstance(node, Job):
        return {node.name}
    if isinstance(node, When):
        return names(node.then) | (names(node.otherwise) if node.otherwise is not None else set())
    assert isinstance(node, Serial | Parallel)
    return set().union(*(names(item) for item in node.items))


def ordering_constraints(node: Node) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(must precede, must be independent) pairs implied by the composition."""
    before: list[tuple[str, str]] = []
    apart: list[tuple[str, str]] = []
    if isinstance(node, Serial):
        for i, first in enumerate(node.items):
            for later in node.items[i + 1 :]:
                before += [(a, b) for a in names(first) for b in names(later)]
    if isinstance(node, Parallel):
        for x, y in itertools.combinations(node.items, 2):
            apart += [(a, b) for a in names(x) for b in names(y)]
    if isinstance(node, When) and node.otherwise is not None:
        apart += [(a, b) for a in names(node.then) for b in names(node.otherwise)]
    children: list[Node] = []
    if isinstance(node, Serial | Parallel):
        children = list(node.items)
    elif isinstance(node, When):
        children = [node.then] + ([node.otherwise] if node.otherwise is not None else [])
    for child in children:
        b, a = ordering_constraints(child)
        before += b
        apart += a
    return before, apart


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_needs_respect_sequence_order_and_parallel_independence(tree: Any) -> None:
    root = build(tree, itertools.count())
    wf = workflow(name="prop")(lambda: root)
    doc = compile(wf)

    graph = nx.DiGraph()
    graph.add_nodes_from(j.name for j in doc.jobs)
    graph.add_edges_from((need, j.name) for j in doc.jobs for need in j.needs)
    assert nx.is_directed_acyclic_graph(graph)
    before, apart = ordering_constraints(root)
    for a, b in before:
        assert nx.has_path(graph, a, b), f"{a} must run before {b}"
    for a, b in apart:
        assert not nx.has_path(graph, a, b) and not nx.has_path(graph, b, a), (
            f"{a} and {b} must be independent"
        )

    assert sorted(j for p in doc.phases for j in p.jobs) == sorted(j.name for j in doc.jobs)
    assert all(j.needs == sorted(j.needs) for j in doc.jobs)
    assert compile(wf).to_json() == doc.to_json()
