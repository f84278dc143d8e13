"""Argument values and help shared by several subcommands."""

from __future__ import annotations

from typing import Any, Final

from flowkit._jsonarg import read_json_argument
from flowkit.errors import BadArgument

__all__ = ["TARGET_HELP", "BadArgument", "parse_input"]

TARGET_HELP: Final = "module:attr, path/to/file.py[:attr], or a folder (every workflow in it)"


def parse_input(value: str | None, *, option: str = "--input") -> dict[str, Any]:
    """A run input given as inline JSON or ``@file.json``; it must be a JSON object."""
    if value is None:
        return {}
    data, where = read_json_argument(value, where=option, file_where=f"{option} @{{path}}")
    if not isinstance(data, dict):
        raise BadArgument(f"{where}: the run input must be a JSON object, got {type(data).__name__}")
    from flowkit.runtime.limits import INPUT_NESTING_LIMIT, json_size, value_problem
    from flowkit.vocab import MONGO_DOCUMENT_LIMIT

    problem = value_problem(data, "input", max_depth=INPUT_NESTING_LIMIT)
    if problem is not None:
        raise BadArgument(f"{where}: the run input cannot be stored unchanged: {problem}")
    size = json_size(data)
    if size > MONGO_DOCUMENT_LIMIT:
        raise BadArgument(
            f"{where}: the run input is {size} bytes, over MongoDB's {MONGO_DOCUMENT_LIMIT}-byte document "
            "limit; pass a reference (e.g. an S3 key) instead"
        )
    return data
