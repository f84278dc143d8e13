"""Condition expressions: a JSON AST and the small interpreter that evaluates it.

A condition is stored in the compiled document as plain JSON, one of three node shapes:

    {"ref": ["input", "mode"]}                      the run input at a path
    {"ref": ["jobs", "extract", "output", "rows"]}  a job's output at a path
    {"ref": ["jobs", "extract", "status"]}          a job's state ("succeeded", "failed", "skipped", ...)
    {"ref": ["jobs", "charge", "error", "type"]}    a failed job's error at a path (``type``, ``message``)
    {"const": <json>}                               a literal
    {"op": "<name>", "args": [<node>, ...]}         an operation from ``OPERATORS``

The interpreter whitelists its operations: there is no ``eval``, no attribute access, no call of
anything but the functions in ``OPERATORS``. A reference that does not resolve (missing key, job
without output) evaluates to ``MISSING``: every comparison with it is false (``ne`` is true), and
``exists`` tests for it. Comparisons between incomparable types are false rather than errors, so a
condition never crashes a run at evaluation time.

This module is shared by the authoring side (which builds and validates ASTs) and the runtime (which
evaluates them); it imports nothing heavy.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from flowkit.errors import ConditionError
from flowkit.vocab import CONDITION_MAX_DEPTH, JobState

__all__ = [
    "ARITY",
    "MISSING",
    "OPERATORS",
    "check",
    "evaluate",
    "failure_paths",
    "referenced_jobs",
    "status_referenced_jobs",
    "to_text",
    "undistinguished_failures",
]


class _Missing:
    """The value of a reference that does not resolve."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

Node = Mapping[str, Any]
Context = Mapping[str, Any]
"""Evaluation context: ``{"input": <run input>, "jobs": {name: {"status": str, "output": json,
"error": {"type": str, "message": str}}}}`` (``output`` only once succeeded, ``error`` only once failed)."""


def _ordered(cmp: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(a: Any, b: Any) -> bool:
        if a is MISSING or b is MISSING or isinstance(a, bool) != isinstance(b, bool):
            return False
        try:
            return bool(cmp(a, b))
        except TypeError:
            return False

    return apply


def _eq(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return False
    # JSON semantics: true is not 1.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _in(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING or not isinstance(b, list | str | dict):
        return False
    if isinstance(b, str) and not isinstance(a, str):
        return False
    try:
        return any(_eq(a, item) for item in b) if isinstance(b, list) else a in b
    except TypeError:
        return False


OPERATORS: Final[Mapping[str, Callable[..., bool]]] = {
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered(operator.lt),
    "le": _ordered(operator.le),
    "gt": _ordered(operator.gt),
    "ge": _ordered(operator.ge),
    "in": _in,
    "not_in": lambda a, b: not _in(a, b),
    "exists": lambda a: a is not MISSING,
    "truthy": lambda a: a is not MISSING and bool(a),
    "not": lambda a: not a,
    "and": lambda *args: all(args),
    "or": lambda *args: any(args),
}

# Number of arguments per operator; None means "one or more".
ARITY: Final[Mapping[str, int | None]] = {
    "eq": 2,
    "ne": 2,
    "lt": 2,
    "le": 2,
    "gt": 2,
    "ge": 2,
    "in": 2,
    "not_in": 2,
    "exists": 1,
    "truthy": 1,
    "not": 1,
    "and": None,
    "or": None,
}

_BOOLEAN_OPS: Final = frozenset({"not", "and", "or"})
_JOB_FIELDS: Final = frozenset({"output", "status", "error"})
_FAILED_STATES: Final = (JobState.FAILED.value, JobState.TIMED_OUT.value)
"""Job states that count as a failure (``flowkit.vocab.FAILED_STATES``), in the order conditions list them."""


def check(node: Any, *, where: str = "condition", _depth: int = 1) -> None:
    """Raise ``ConditionError`` naming the first malformed node; return None for a valid AST.

    A condition nested deeper than ``CONDITION_MAX_DEPTH`` operators is refused: it could not be
    stored (MongoDB's nesting limit) or serialized, and no workflow needs it.
    """
    if not isinstance(node, Mapping):
        raise ConditionError(f"{where}: expected an object, got {type(node).__name__}")
    keys = set(node)
    if keys == {"const"}:
        try:
            json.dumps(node["const"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConditionError(f"{where}: constant {node['const']!r} is not JSON") from exc
        return
    if keys == {"ref"}:
        path = node["ref"]
        if not isinstance(path, list) or not path or not all(isinstance(p, str | int) for p in path):
            raise ConditionError(f"{where}: 'ref' must be a non-empty list of keys, got {path!r}")
        if path[0] == "input":
            return
        if path[0] == "jobs":
            if len(path) < 3 or not isinstance(path[1], str) or path[2] not in _JOB_FIELDS:
                raise ConditionError(
                    f"{where}: job reference {path!r} must be ['jobs', <name>, 'output'|'status'|'error', ...]"
                )
            if path[2] == "status" and len(path) != 3:
                raise ConditionError(f"{where}: job status reference {path!r} takes no further keys")
            return
        raise ConditionError(f"{where}: reference {path!r} must start with 'input' or 'jobs'")
    if keys == {"op", "args"}:
        if _depth > CONDITION_MAX_DEPTH:
            raise ConditionError(
                f"{where.split('.args[')[0]}: nested deeper than {CONDITION_MAX_DEPTH} levels; "
                "flatten it (a & b & c is one level) or split it"
            )
        op, args = node["op"], node["args"]
        if op not in OPERATORS:
            raise ConditionError(
                f"{where}: unknown operator {op!r} (allowed: {', '.join(sorted(OPERATORS))})"
            )
        if not isinstance(args, list):
            raise ConditionError(f"{where}: 'args' of {op!r} must be a list")
        arity = ARITY[op]
        if (arity is None and not args) or (arity is not None and len(args) != arity):
            expected = "one or more" if arity is None else str(arity)
            raise ConditionError(f"{where}: operator {op!r} takes {expected} arguments, got {len(args)}")
        for i, arg in enumerate(args):
            check(arg, where=f"{where}.args[{i}]", _depth=_depth + 1)
        return
    raise ConditionError(
        f"{where}: a node is {{'ref': [...]}}, {{'const': ...}} or {{'op': ..., 'args': [...]}}, "
        f"got keys {sorted(keys)}"
    )


def _resolve(value: Any, path: Iterable[str | int]) -> Any:
    for key in path:
        if isinstance(value, Mapping) and isinstance(key, str) and key in value:
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return MISSING
    return value


def evaluate(node: Node, context: Context) -> Any:
    """Evaluate a (checked) AST against a context. Boolean operators return bool."""
    if "const" in node:
        return node["const"]
    if "ref" in node:
        path = node["ref"]
        if path[0] == "input":
            return _resolve(context.get("input", {}), path[1:])
        job = context.get("jobs", {}).get(path[1])
        if job is None:
            return MISSING
        if path[2] == "status":
            return job.get("status", MISSING)
        if path[2] not in job:
            return MISSING
        return _resolve(job[path[2]], path[3:])
    op = node["op"]
    if op == "and":  # short-circuit
        return all(bool(evaluate(arg, context)) for arg in node["args"])
    if op == "or":
        return any(bool(evaluate(arg, context)) for arg in node["args"])
    values = [evaluate(arg, context) for arg in node["args"]]
    if op in _BOOLEAN_OPS:
        values = [bool(v) for v in values]
    return OPERATORS[op](*values)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for arg in node.get("args", ()):
        yield from _walk(arg)


def referenced_jobs(node: Node) -> set[str]:
    """Names of every job the condition reads (output or status)."""
    return {n["ref"][1] for n in _walk(node) if "ref" in n and n["ref"][0] == "jobs"}


def status_referenced_jobs(node: Node) -> set[str]:
    """Names of jobs whose *status* or *error* the condition reads (candidates for a failure path)."""
    return {
        n["ref"][1]
        for n in _walk(node)
        if "ref" in n and n["ref"][0] == "jobs" and n["ref"][2] in ("status", "error")
    }


# --------------------------------------------------------------------------- failure paths
#
# Whether a condition is a *failure path* of a job J is decided by evaluating it in Kleene's three-valued
# logic with J's state fixed and everything else unknown: the run input and the other jobs may be
# anything, J's output exists only if J succeeded and its error only if J failed (of a type unknown).


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


_UNKNOWN: Final = _Unknown()


def _truth(value: Any) -> bool | None:
    return None if value is _UNKNOWN else bool(value)


def _value(node: Node, job: str, state: str) -> Any:
    if "const" in node:
        return node["const"]
    if "ref" in node:
        path = node["ref"]
        if path[0] != "jobs" or path[1] != job:
            return _UNKNOWN
        if path[2] == "status":
            return state
        present = state == JobState.SUCCEEDED if path[2] == "output" else state in _FAILED_STATES
        return _UNKNOWN if present else MISSING
    op, args = node["op"], node["args"]
    if op in _BOOLEAN_OPS:
        truths = [_truth(_value(arg, job, state)) for arg in args]
        if op == "not":
            return _UNKNOWN if truths[0] is None else not truths[0]
        decisive = op == "or"  # the value that settles an or (True) / an and (False)
        if decisive in truths:
            return decisive
        return _UNKNOWN if None in truths else not decisive
    values = [_value(arg, job, state) for arg in args]
    if any(value is _UNKNOWN for value in values):
        return _UNKNOWN
    return OPERATORS[op](*values)


def _on_failure_and_success(node: Node, job: str) -> tuple[bool | None, bool | None]:
    """The condition's truth when ``job`` failed (either failed state) and when it succeeded."""
    on_failure = [_truth(_value(node, job, state)) for state in _FAILED_STATES]
    failure = True if True in on_failure else (None if None in on_failure else False)
    return failure, _truth(_value(node, job, JobState.SUCCEEDED.value))


def failure_paths(node: Node) -> set[str]:
    """Jobs this condition is a *failure path* of: it can hold when the job failed, never when it succeeded.

    ``charge.failed``, ``charge.error_type == "CardDeclined"``, ``not charge.succeeded``,
    ``charge.failed & (input["mode"] == "live")`` are failure paths of ``charge``;
    ``load.status.is_in(["succeeded", "failed"])`` and ``not charge.failed`` are not.
    """
    paths = set()
    for job in status_referenced_jobs(node):
        failure, success = _on_failure_and_success(node, job)
        if success is False and failure is not False:
            paths.add(job)
    return paths


def undistinguished_failures(node: Node) -> set[str]:
    """Jobs whose status or error this condition reads, yet which it can hold for both on failure and success.

    Such a condition does not handle the job's failure: ``when(load.status.is_in(["succeeded", "failed"]),
    then=cleanup)`` looks like "always clean up", but a failed ``load`` still fails the run and
    ``cleanup`` does not run after it (``always(cleanup)`` does that).
    """
    found = set()
    for job in status_referenced_jobs(node):
        failure, success = _on_failure_and_success(node, job)
        if failure is not False and success is not False:
            found.add(job)
    return found


_TEXT_OPS: Final = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in"}
_STATUS_WORDS: Final = {
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.SKIPPED,
    JobState.TIMED_OUT,
    JobState.CANCELLED,
}


def _ref_text(path: list[str | int]) -> str:
    if path[0] == "jobs" and path[2:] == ["error", "type"]:
        return f"{path[1]}.error_type"
    parts = [path[0]] if path[0] == "input" else [str(path[1]), str(path[2])]
    rest = path[1:] if path[0] == "input" else path[3:]
    for key in rest:
        parts.append(str(key) if isinstance(key, str) and key.isidentifier() else f"[{key!r}]")
    return ".".join(parts).replace(".[", "[")


def to_text(node: Node) -> str:
    """Readable form for diagrams and messages: ``extract.output.rows > 0 and not charge.failed``."""
    if "const" in node:
        return json.dumps(node["const"], sort_keys=True)
    if "ref" in node:
        return _ref_text(node["ref"])
    op, args = node["op"], node["args"]
    if op in ("eq", "ne", "in", "not_in") and "ref" in args[0] and args[0]["ref"][0] == "jobs":
        path, const = args[0]["ref"], args[1].get("const")
        word = None
        if op in ("eq", "ne") and path[2] == "status" and isinstance(const, str) and const in _STATUS_WORDS:
            word = const
        elif op in ("in", "not_in") and path[2] == "status" and const == list(_FAILED_STATES):
            word = JobState.FAILED.value  # the shorthand `job.failed`
        if word is not None:
            text = f"{path[1]}.{word}"
            return text if op in ("eq", "in") else f"not {text}"
    if op in _TEXT_OPS:
        return f"{_operand(args[0])} {_TEXT_OPS[op]} {_operand(args[1])}"
    if op == "not_in":
        return f"{_operand(args[0])} not in {_operand(args[1])}"
    if op == "exists":
        return f"{to_text(args[0])} exists"
    if op == "truthy":
        return to_text(args[0])
    if op == "not":
        return f"not {_operand(args[0])}"
    return f" {op} ".join(_operand(a) for a in args)


def _operand(node: Node) -> str:
    text = to_text(node)
    return f"({text})" if "op" in node and node["op"] in ("and", "or") else text
