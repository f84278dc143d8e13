"""Composition nodes: ``sequence``, ``parallel``, ``when`` and the ``>>`` operator.

Nodes are immutable; every function and operator returns a new node. Jobs are nodes too (see
``flowkit.dsl.job``). A Python list or tuple is never accepted in place of a node: it would hide
whether the author meant "in order" or "at the same time".
"""

from __future__ import annotations

from typing import Any

from flowkit.dsl.expressions import Cond, Ref, as_condition

__all__ = ["Node", "Parallel", "Serial", "When", "parallel", "sequence", "when"]


class Node:
    """Something that can be composed: a job, a sequence, a parallel group or a ``when``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable: compose a new value (job.named(...), a >> b, ...) instead"
        )

    def __rshift__(self, other: object) -> Serial:
        if not isinstance(other, Node):
            return NotImplemented
        return sequence(self, other)


def _node(value: object, *, where: str) -> Node:
    if isinstance(value, Node):
        return value
    if isinstance(value, list | tuple):
        raise TypeError(
            f"{where} got a {type(value).__name__} ({value!r}); pass jobs or compositions as separate "
            f"arguments, wrapped in sequence(*items) (one after another) or parallel(*items) (at the same time)"
        )
    hint = " (decorate the function with @job)" if callable(value) else ""
    raise TypeError(f"{where} expects jobs or compositions, got {value!r} ({type(value).__name__}){hint}")


class Serial(Node):
    """Stages that run one after another: what ``sequence(...)`` and ``a >> b`` build.

    (Named ``Serial``, the pair of ``Parallel``, so that it never shadows ``collections.abc.Sequence``.)

    A sequence keeps the parts it was built from (nested sequences unflattened) and flattens them
    once, on the first read of ``items``: so ``a >> b >> c >> ...`` links each new sequence to the
    previous one instead of copying it, and a chain of N stages costs O(N) to build and to read.
    """

    __slots__ = ("_flat", "_parts")
    _parts: tuple[Node, ...]
    _flat: tuple[Node, ...] | None

    def __init__(self, items: tuple[Node, ...]) -> None:
        object.__setattr__(self, "_parts", items)
        object.__setattr__(self, "_flat", None)

    @property
    def items(self) -> tuple[Node, ...]:
        """The stages, nested sequences flattened (computed once)."""
        flat = self._flat
        if flat is None:
            flat = _flatten(self)
            object.__setattr__(self, "_flat", flat)
        return flat

    def __repr__(self) -> str:
        return f"sequence({', '.join(map(repr, self.items))})"


def _flatten(root: Serial) -> tuple[Node, ...]:
    """The stages of ``root`` in order, every nested ``Serial`` expanded (iteratively: chains are deep)."""
    out: list[Node] = []
    stack: list[Node] = list(reversed(root._parts))
    while stack:
        node = stack.pop()
        if isinstance(node, Serial):
            if node._flat is not None:
                out.extend(node._flat)
            else:
                stack.extend(reversed(node._parts))
        else:
            out.append(node)
    return tuple(out)


class Parallel(Node):
    """Branches that start together; what follows waits for all of them."""

    __slots__ = ("items",)
    items: tuple[Node, ...]

    def __init__(self, items: tuple[Node, ...]) -> None:
        object.__setattr__(self, "items", items)

    def __repr__(self) -> str:
        return f"parallel({', '.join(map(repr, self.items))})"


class When(Node):
    """Exactly one arm runs, the other is skipped; what follows runs after whichever arm ran."""

    __slots__ = ("condition", "otherwise", "then")
    condition: Cond
    then: Node
    otherwise: Node | None

    def __init__(self, condition: Cond, then: Node, otherwise: Node | None) -> None:
        object.__setattr__(self, "condition", condition)
        object.__setattr__(self, "then", then)
        object.__setattr__(self, "otherwise", otherwise)

    def __repr__(self) -> str:
        return f"when({self.condition!r}, then={self.then!r}, otherwise={self.otherwise!r})"


def sequence(*items: Node) -> Serial:
    """Run ``items`` one after another. Nested sequences are flattened: ``a >> b >> c`` is one sequence.

    The operands are kept as given (never copied): flattening happens once, when the stages are read.
    """
    for i, item in enumerate(items):
        _node(item, where=f"sequence() argument {i + 1}")
    return Serial(items)


def parallel(*items: Node) -> Parallel:
    """Run ``items`` at the same time; the next stage waits for all of them."""
    return Parallel(tuple(_node(item, where=f"parallel() argument {i + 1}") for i, item in enumerate(items)))


def when(condition: Cond | Ref, *, then: Node, otherwise: Node | None = None) -> When:
    """Run ``then`` if ``condition`` holds, else ``otherwise`` (if given); the other arm is skipped.

    ``condition`` is built from references: ``input["mode"] == "full"``, ``extract.output["rows"] > 0``,
    ``charge.failed``; a bare reference means "exists and is truthy".
    """
    cond: Any = condition
    if isinstance(cond, bool):
        raise TypeError(
            f"when() got the Python bool {cond!r} as its condition: build it from references, e.g. "
            "when(input['mode'] == 'full', then=...)"
        )
    return When(
        as_condition(cond),
        _node(then, where="when(then=...)"),
        None if otherwise is None else _node(otherwise, where="when(otherwise=...)"),
    )
