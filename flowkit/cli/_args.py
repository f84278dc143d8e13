"""Argument values shared by several subcommands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["BadArgument", "parse_input"]


class BadArgument(Exception):
    """A command-line value that cannot be used; the command prints it and exits with 2."""


def parse_input(value: str | None, *, option: str = "--input") -> dict[str, Any]:
    """A run input given as inline JSON or ``@file.json``; it must be a JSON object."""
    if value is None:
        return {}
    where = option
    text = value
    if value.startswith("@"):
        path = value[1:]
        where = f"{option} @{path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadArgument(f"{where}: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadArgument(
            f"{where}: invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}"
        ) from exc
    if not isinstance(data, dict):
        raise BadArgument(f"{where}: the run input must be a JSON object, got {type(data).__name__}")
    return data
