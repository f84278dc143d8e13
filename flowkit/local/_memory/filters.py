"""Query documents: which stored documents a filter matches (MongoDB's rules for the subset)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymongo.errors import OperationFailure

from flowkit.local._memory.values import MISSING, equal, get, sort_key, to_bson

Doc = dict[str, Any]
Test = Callable[[Any], bool]


def _candidates(value: Any) -> list[Any]:
    """What a condition on a field is tried against: the value, and each element of an array."""
    if type(value) is list:
        return [value, *value]
    return [value]


def _eq(arg: Any) -> Test:
    if arg is None:  # null matches a missing field, a null, and an array holding a null
        return lambda value: value is MISSING or any(v is None for v in _candidates(value))
    return lambda value: value is not MISSING and any(equal(v, arg) for v in _candidates(value))


def _compare(op: str, arg: Any, path: str) -> Test:
    if arg is None or isinstance(arg, (dict, list)):
        raise NotImplementedError(f"{op} with a {type(arg).__name__} argument (on {path!r})")
    rank = sort_key(arg, path)[0]
    check: Callable[[Any, Any], bool] = {
        "$lt": lambda a, b: a < b,
        "$lte": lambda a, b: a <= b,
        "$gt": lambda a, b: a > b,
        "$gte": lambda a, b: a >= b,
    }[op]

    def test(value: Any) -> bool:
        if value is MISSING:
            return False
        for v in _candidates(value):  # only values of the same type bracket compare
            same_bracket = v is not None and not isinstance(v, (dict, list)) and sort_key(v, path)[0] == rank
            if same_bracket and check(v, arg):
                return True
        return False

    return test


def _operator(op: str, arg: Any, path: str) -> Test:
    if op == "$eq":
        return _eq(arg)
    if op == "$ne":
        eq = _eq(arg)
        return lambda value: not eq(value)
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise OperationFailure(f"{op} needs an array (on {path!r})", code=2)
        tests = [_eq(item) for item in arg]
        if op == "$in":
            return lambda value: any(t(value) for t in tests)
        return lambda value: not any(t(value) for t in tests)
    if op == "$exists":
        wanted = bool(arg)
        return lambda value: (value is not MISSING) == wanted
    if op in ("$lt", "$lte", "$gt", "$gte"):
        return _compare(op, arg, path)
    raise NotImplementedError(f"query operator {op} (on {path!r}) is not supported by the embedded store")


def _field(path: str, cond: Any) -> Test:
    if isinstance(cond, dict) and any(key.startswith("$") for key in cond):
        tests = [_operator(op, arg, path) for op, arg in cond.items()]
        return lambda value: all(t(value) for t in tests)
    return _eq(cond)


def compile_filter(spec: Mapping[str, Any] | None) -> Callable[[Doc], bool]:
    """A predicate over stored documents for the filter ``spec``."""
    if spec is None:
        return lambda doc: True
    if not isinstance(spec, Mapping):
        raise TypeError(f"filter must be a mapping, not {type(spec).__name__}")
    spec = to_bson(spec, "filter")
    tests: list[tuple[str, Test]] = []
    for path, cond in spec.items():
        if path.startswith("$"):
            raise NotImplementedError(f"query operator {path} is not supported by the embedded store")
        tests.append((path, _field(path, cond)))
    return lambda doc: all(test(get(doc, path)) for path, test in tests)
