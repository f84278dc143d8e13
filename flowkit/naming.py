"""AWS resource names derived from workflow and job names. Standard library only.

Lambda function names allow letters, digits, ``-`` and ``_`` and at most 64 characters. flowkit derives
names in kebab case: ``_`` becomes ``-``, anything else outside the alphabet becomes ``-``, runs of
``-`` collapse, and a name over the limit keeps its start and ends with 8 hex digits of its SHA-256,
so two long names never collide and the same input always gives the same name.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["FUNCTION_NAME_LIMIT", "function_name", "is_function_name"]

FUNCTION_NAME_LIMIT: Final = 64
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9-]+")
_FUNCTION: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def function_name(*parts: str, limit: int = FUNCTION_NAME_LIMIT) -> str:
    """A clean Lambda function name from ``parts`` joined with ``-``: ``("etl", "export_events")`` ->
    ``etl-export-events``; longer than ``limit``: cut, ``-`` and a hash of the whole name."""
    raw = "-".join(part for part in parts if part)
    name = _UNSAFE.sub("-", raw.replace("_", "-")).strip("-")
    name = re.sub(r"-{2,}", "-", name) or "flowkit"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def is_function_name(name: str) -> bool:
    """Whether ``name`` is a valid Lambda function name (not an ARN)."""
    return _FUNCTION.fullmatch(name) is not None
