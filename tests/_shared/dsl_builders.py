"""DSL building blocks shared by the test folders (on ``sys.path`` through pytest's ``pythonpath``).

- ``noop_body``, ``mk`` and ``flow``: a job or a workflow in one call.
- ``trees`` and ``build``: a hypothesis strategy for random compositions of sequence / parallel / when.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from flowkit import input, job, parallel, sequence, when, workflow
from flowkit.dsl import Job, Node, Workflow


def noop_body(event: dict[str, Any], context: Any = None) -> None:
    return None


def mk(name: str, **options: Any) -> Job:
    """A job named ``name`` with a no-op body (timeout 10 s unless given)."""
    options.setdefault("timeout", 10)
    result: Job = job(name=name, **options)(noop_body)
    return result


def flow(root: Any, name: str = "t", **options: Any) -> Workflow:
    """A workflow whose function returns ``root``."""
    result: Workflow = workflow(name=name, **options)(lambda: root)
    return result


@st.composite
def trees(draw: st.DrawFn, depth: int = 3) -> Any:
    """A nested tuple description: ("job",), ("seq"|"par", children), ("when", then, otherwise|None)."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return ("job",)
    kind = draw(st.sampled_from(["seq", "par", "when"]))
    if kind == "when":
        otherwise = draw(st.none() | trees(depth=depth - 1))
        return ("when", draw(trees(depth=depth - 1)), otherwise)
    return (kind, draw(st.lists(trees(depth=depth - 1), min_size=1, max_size=4)))


def build(tree: Any, counter: itertools.count[int]) -> Node:
    """The DSL composition a ``trees`` description stands for; jobs are named j0, j1, ..."""
    if tree[0] == "job":
        return mk(f"j{next(counter)}", timeout=1)
    if tree[0] == "when":
        then = build(tree[1], counter)
        otherwise = None if tree[2] is None else build(tree[2], counter)
        return when(input[f"c{next(counter)}"] == 1, then=then, otherwise=otherwise)
    children = [build(child, counter) for child in tree[1]]
    return sequence(*children) if tree[0] == "seq" else parallel(*children)
