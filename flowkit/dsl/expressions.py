"""Condition builders: Python operators on references build the JSON AST of ``flowkit.conditions``.

    input["mode"] == "full"                 {"op": "eq", "args": [{"ref": ["input", "mode"]}, {"const": "full"}]}
    extract.output["rows"] > 0              a job's output at a path
    charge.failed                           a job's status ("succeeded" / "failed" / "skipped")
    (a > 1) & ~b.is_in([1, 2]) | c.exists()

Python's ``and``, ``or``, ``not`` and ``in`` cannot be overloaded, so using a condition where Python
needs a bool raises ``ConditionError`` pointing at ``&``, ``|``, ``~`` and ``.is_in()``. Because ``==``
builds a condition, two references are compared for tests with :meth:`Expr.same_as`.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flowkit.conditions import check, to_text
from flowkit.errors import ConditionError

__all__ = ["Cond", "Expr", "Ref", "as_condition", "input"]

_BOOL_HINT = (
    "a flowkit condition cannot be used as a Python bool: write `a & b`, `a | b`, `~a` instead of "
    "`and`, `or`, `not`, and `ref.is_in([...])` instead of `in`"
)


def _operand(value: Any) -> dict[str, Any]:
    """AST node of an operand: a reference/condition as is, anything else as a JSON constant."""
    if isinstance(value, Expr):
        return value.ast
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConditionError(
            f"cannot use {value!r} ({type(value).__name__}) in a condition: only JSON values "
            "(str, int, float, bool, None, list, dict) and references can be compared"
        ) from exc
    return {"const": value}


class Expr:
    """Something with an AST: a reference or a condition. Operators build new expressions."""

    __slots__ = ("_ast",)
    __hash__ = None  # type: ignore[assignment]  # == builds a condition, so no hashing

    def __init__(self, ast: dict[str, Any]) -> None:
        check(ast)
        self._ast = ast

    @property
    def ast(self) -> dict[str, Any]:
        """The JSON AST (a fresh copy)."""
        result: dict[str, Any] = json.loads(json.dumps(self._ast))
        return result

    def same_as(self, other: object) -> bool:
        """True when ``other`` is an expression with the same AST (``==`` builds a condition)."""
        return isinstance(other, Expr) and self._ast == other._ast

    def __bool__(self) -> NoReturn:
        raise ConditionError(f"{_BOOL_HINT} (in `{to_text(self._ast)}`)")

    def __contains__(self, item: object) -> NoReturn:
        raise ConditionError(f"{_BOOL_HINT} (in `{to_text(self._ast)}`)")

    def __iter__(self) -> NoReturn:
        raise TypeError(f"a flowkit reference is not iterable (in `{to_text(self._ast)}`)")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {to_text(self._ast)}>"

    # comparisons ------------------------------------------------------------------------------
    def _cmp(self, op: str, other: Any) -> Cond:
        return Cond({"op": op, "args": [self._ast, _operand(other)]})

    def __eq__(self, other: object) -> Cond:  # type: ignore[override]
        return self._cmp("eq", other)

    def __ne__(self, other: object) -> Cond:  # type: ignore[override]
        return self._cmp("ne", other)

    def __lt__(self, other: Any) -> Cond:
        return self._cmp("lt", other)

    def __le__(self, other: Any) -> Cond:
        return self._cmp("le", other)

    def __gt__(self, other: Any) -> Cond:
        return self._cmp("gt", other)

    def __ge__(self, other: Any) -> Cond:
        return self._cmp("ge", other)

    def is_in(self, values: Any) -> Cond:
        """``self in values`` (a list, a string, or a reference to one)."""
        if isinstance(values, set | frozenset | tuple):
            values = sorted(values) if isinstance(values, set | frozenset) else list(values)
        return self._cmp("in", values)

    def not_in(self, values: Any) -> Cond:
        """``self not in values``."""
        if isinstance(values, set | frozenset | tuple):
            values = sorted(values) if isinstance(values, set | frozenset) else list(values)
        return self._cmp("not_in", values)

    # boolean algebra --------------------------------------------------------------------------
    def __and__(self, other: object) -> Cond:
        if not isinstance(other, Expr):
            return NotImplemented
        return Cond(
            {"op": "and", "args": [*_flat("and", as_condition(self)), *_flat("and", as_condition(other))]}
        )

    def __or__(self, other: object) -> Cond:
        if not isinstance(other, Expr):
            return NotImplemented
        return Cond(
            {"op": "or", "args": [*_flat("or", as_condition(self)), *_flat("or", as_condition(other))]}
        )

    def __invert__(self) -> Cond:
        return Cond({"op": "not", "args": [as_condition(self)._ast]})


def _flat(op: str, cond: Cond) -> list[dict[str, Any]]:
    """Arguments of ``op`` with nested same-op nodes flattened: (a & b) & c == and(a, b, c)."""
    ast = cond.ast
    return list(ast["args"]) if ast.get("op") == op else [ast]


class Ref(Expr):
    """A reference to the run input or to a job's output/status; ``ref["key"]`` goes deeper."""

    __slots__ = ()

    def __getitem__(self, key: str | int) -> Ref:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise ConditionError(
                f"reference keys are str or int, got {key!r} ({type(key).__name__}) "
                f"after `{to_text(self._ast)}`"
            )
        path = self._ast["ref"]
        if path[0] == "jobs" and path[2] == "status":
            raise ConditionError(f"a job status `{to_text(self._ast)}` has no keys")
        return Ref({"ref": [*path, key]})

    def exists(self) -> Cond:
        """True when the reference resolves (the key is present)."""
        return Cond({"op": "exists", "args": [self._ast]})

    def truthy(self) -> Cond:
        """True when the referenced value exists and is truthy (what a bare reference means)."""
        return Cond({"op": "truthy", "args": [self._ast]})


class Cond(Expr):
    """A boolean condition."""

    __slots__ = ()


def as_condition(value: object) -> Cond:
    """A condition from a condition or a bare reference (meaning ``truthy``); TypeError otherwise."""
    if isinstance(value, Cond):
        return value
    if isinstance(value, Ref):
        return value.truthy()
    raise TypeError(
        f"expected a condition built from `input[...]` or a job reference (e.g. `extract.output['rows'] > 0`"
        f", `charge.failed`), got {value!r} ({type(value).__name__})"
    )


input = Ref({"ref": ["input"]})  # the run input, as the DSL spells it
"""The run input: ``input["mode"] == "full"``."""
