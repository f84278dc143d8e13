"""Property test: any composition the compiler accepts is drawn faithfully (Mermaid parsed back)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mermaid import check_against_document

from flowkit import compile, input, job, parallel, sequence, when, workflow
from flowkit.diagram import to_dot, to_mermaid
from flowkit.dsl import Node


def _body(event: dict[str, Any], context: Any = None) -> None:
    return None


@st.composite
def trees(draw: st.DrawFn, depth: int = 3) -> Any:
    """("job",) | ("seq"|"par", [children]) | ("when", then, otherwise or None)."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return ("job",)
    kind = draw(st.sampled_from(["seq", "par", "when"]))
    if kind == "when":
        return ("when", draw(trees(depth=depth - 1)), draw(st.none() | trees(depth=depth - 1)))
    return (kind, draw(st.lists(trees(depth=depth - 1), min_size=1, max_size=4)))


def build(tree: Any, counter: itertools.count[int]) -> Node:
    if tree[0] == "job":
        built: Node = job(name=f"j{next(counter)}", timeout=1)(_body)
        return built
    if tree[0] == "when":
        then = build(tree[1], counter)
        otherwise = None if tree[2] is None else build(tree[2], counter)
        return when(input[f"c{next(counter)}"] == 1, then=then, otherwise=otherwise)
    children = [build(child, counter) for child in tree[1]]
    return sequence(*children) if tree[0] == "seq" else parallel(*children)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(trees(), min_size=1, max_size=3))
def test_every_composition_is_drawn_as_compiled(stages: list[Any]) -> None:
    counter = itertools.count()
    root = sequence(*(build(stage, counter) for stage in stages))

    @workflow(name="random")
    def random_flow() -> Node:
        return root

    doc = compile(random_flow)

    check_against_document(to_mermaid(doc), doc)
    assert to_dot(doc).startswith("digraph random {")
