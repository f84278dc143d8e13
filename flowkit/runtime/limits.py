"""What the services behind flowkit accept, checked where flowkit writes users' data.

A user's data (a job's output, a run's input, an error message) crosses JSON (the Lambda payload),
BSON (MongoDB) and the Atlas trigger's Extended JSON (the EventBridge event). ``value_problem`` says
why a value cannot make that trip unchanged, naming the place (``output.rows[3].x``), or returns
None:

- JSON types only: objects with string keys, arrays, strings, numbers, booleans, null; no NaN or
  infinity (JSON has none), no integer outside MongoDB's 64 bits, no lone surrogate in a string
  (neither UTF-8 nor BSON can hold one);
- no key starting with ``$``, holding ``.`` or a NUL character: older MongoDB servers refuse them,
  and the trigger's Extended JSON could not tell a user's ``{"$numberLong": "5"}`` from a number;
- at most ``max_depth`` levels of nesting (MongoDB's limit counts every non-empty object or array,
  the document itself included).

Standard library only: the job side and the handlers import it on their first event.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from flowkit.vocab import ERROR_MESSAGE_LIMIT, MONGO_NESTING_LIMIT, OUTPUT_LIMIT

__all__ = [
    "INPUT_NESTING_LIMIT",
    "OUTPUT_NESTING_LIMIT",
    "clean_text",
    "json_size",
    "nesting",
    "output_size_problem",
    "short_text",
    "value_problem",
]

_INT64: Final = (-(2**63), 2**63 - 1)

OUTPUT_NESTING_LIMIT: Final = MONGO_NESTING_LIMIT - 3
"""Levels a job's output may use: it is stored at ``jobs.<name>.output`` of the run document."""
INPUT_NESTING_LIMIT: Final = MONGO_NESTING_LIMIT - 1
"""Levels a run's input may use: it is stored at ``input`` of the run document."""


def _path(where: str, key: object) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if isinstance(key, str) and key.isidentifier() else f"{where}[{key!r}]"


def _text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds a lone surrogate {text[exc.start]!r} at position {exc.start}, which UTF-8 cannot encode"
        )
    return None


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"has a key {key!r} of type {type(key).__name__}; JSON object keys are strings"
    shown = short_text(repr(key), 60)
    bad = _text_problem(key)
    if bad is not None:
        return f"has a key {shown} that {bad}"
    if key.startswith("$"):
        return (
            f"has a key {shown} starting with '$': MongoDB and the Atlas trigger's Extended JSON "
            "reserve such keys for operators and type wrappers; rename it"
        )
    if "." in key:
        return f"has a key {shown} holding '.', which MongoDB reads as a path; rename it"
    if "\0" in key:
        return f"has a key {shown} holding a NUL character, which BSON cannot store"
    return None


def value_problem(value: Any, where: str, *, max_depth: int = OUTPUT_NESTING_LIMIT) -> str | None:
    """Why ``value`` cannot be stored and passed on unchanged (``"<where>...: ..."``), or None.

    Iterative, so a value nested far deeper than Python's recursion limit is reported, not crashed on.
    """
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, at, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            bad = _text_problem(item)
            if bad is not None:
                return f"{at}: the string {bad}"
            continue
        if isinstance(item, int):
            if not _INT64[0] <= item <= _INT64[1]:
                return (
                    f"{at}: the integer {short_text(str(item), 40)} does not fit in 64 bits "
                    "(MongoDB's largest integer); return it as a string"
                )
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{at}: {item!r} is not a JSON number; return null or a string instead"
            continue
        if isinstance(item, Mapping):
            if item and depth + 1 > max_depth:
                return f"{at}: nested deeper than the {max_depth} levels allowed here"
            for key, child in item.items():
                bad = _key_problem(key)
                if bad is not None:
                    return f"{at}: {bad}"
                stack.append((child, _path(at, key), depth + 1))
            continue
        if isinstance(item, list | tuple):
            if item and depth + 1 > max_depth:
                return f"{at}: nested deeper than the {max_depth} levels allowed here"
            stack.extend((child, _path(at, i), depth + 1) for i, child in enumerate(item))
            continue
        return f"{at}: a {type(item).__name__} is not JSON data ({short_text(repr(item), 60)})"
    return None


def output_size_problem(job: object, output: Any, *, limit: int = OUTPUT_LIMIT) -> str | None:
    """Why ``output`` (a value ``value_problem`` accepted) is too big to be one job's output, or None.

    Measured as the BSON size of ``{"v": output}``, naming the job and both sizes.
    """
    import bson  # pymongo's; imported here so that this module stays importable without it

    size = len(bson.encode({"v": output}))
    if size <= limit:
        return None
    return (
        f"the output of job {job!r} is {size} bytes (BSON), over the limit of {limit} bytes "
        f"({limit // 1024} KiB) for one output; store large data elsewhere (e.g. S3) and return a reference"
    )


def nesting(value: Any) -> int:
    """MongoDB's nesting depth of ``value``: non-empty objects and arrays, counted along the deepest path."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list or isinstance(item, Mapping | list | tuple):
            if not item:
                deepest = max(deepest, depth)
                continue
            children = item.values() if isinstance(item, Mapping) else item
            depth += 1
            # scalars only count for the depth they are at: only containers are looked into
            stack.extend(
                (child, depth)
                for child in children
                if type(child) is dict or type(child) is list or not isinstance(child, str | int | float)
            )
            deepest = max(deepest, depth)
        else:
            deepest = max(deepest, depth)
    return deepest


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (for a value ``value_problem`` accepted)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def clean_text(text: object) -> str:
    """``str(text)`` with lone surrogates written as ``\\udcxx`` escapes, so UTF-8 and BSON can hold it."""
    value = text if isinstance(text, str) else str(text)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def short_text(text: str, limit: int = ERROR_MESSAGE_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, ending with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    # the marker's length for the largest possible count, so the result never exceeds ``limit``
    keep = max(limit - len(f"... [{len(text)} more characters cut]"), 0)
    return f"{text[:keep]}... [{len(text) - keep} more characters cut]"
