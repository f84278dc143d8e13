"""Property test: any composition the compiler accepts is drawn faithfully (Mermaid parsed back)."""

from __future__ import annotations

import itertools
from typing import Any

from dsl_builders import build, trees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mermaid import check_against_document

from flowkit import compile, sequence, workflow
from flowkit.diagram import to_dot, to_mermaid
from flowkit.dsl import Node


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
