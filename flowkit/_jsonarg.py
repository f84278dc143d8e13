"""A JSON value given on the command line, inline or as ``@path`` to a file (``--input``, ``--mock``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowkit.errors import BadArgument

__all__ = ["BadArgument", "read_json_argument"]


def read_json_argument(value: str, *, where: str, file_where: str) -> tuple[Any, str]:
    """Decode ``value``, or the file it names with a leading ``@``; return the data and where it came from.

    ``where`` names the option in messages (``--input``); ``file_where`` does when a file is read, with
    ``{path}`` standing for the path (``--input @{path}``).
    """
    text = value
    if value.startswith("@"):
        path = value[1:]
        where = file_where.format(path=path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadArgument(f"{where}: cannot read {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise BadArgument(
                f"{where}: {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
            ) from exc
    try:
        return json.loads(text, parse_constant=_no_constant), where
    except json.JSONDecodeError as exc:
        raise BadArgument(
            f"{where}: invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}"
        ) from exc
    except BadArgument as exc:  # from _no_constant: the constant's name
        raise BadArgument(f"{where}: {exc.message} is not JSON (JSON has no NaN or infinity)") from exc
    except RecursionError as exc:
        raise BadArgument(f"{where}: the JSON is nested too deeply to read") from exc


def _no_constant(name: str) -> Any:
    """Refuse ``NaN``, ``Infinity`` or ``-Infinity``, which Python's JSON reader accepts and JSON has not."""
    raise BadArgument(name)
