"""MongoDB connection strings in messages: the hosts they name, credentials masked.

A connection error must say where flowkit tried to connect, in one line, and never print a password.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from flowkit.errors import StoreUnavailable

__all__ = ["hosts", "one_line", "redact", "unreachable"]

_CONFIGURED: Final = re.compile(r"\s*\(configured timeouts:[^)]*\)")
_LIMIT: Final = 300


def redact(uri: str) -> str:
    """``uri`` with its password (if any) replaced by ``***``."""
    head, sep, rest = uri.partition("://")
    if not sep:
        return uri
    netloc, slash, tail = rest.partition("/")
    userinfo, at, where = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return uri
    user = userinfo.split(":", 1)[0]
    return f"{head}://{user}:***@{where}{slash}{tail}"


def hosts(uri: str) -> str:
    """The ``host:port`` list of a ``mongodb://`` or ``mongodb+srv://`` URI, without credentials."""
    _, sep, rest = uri.partition("://")
    netloc = rest.partition("/")[0].partition("?")[0] if sep else uri
    return netloc.rpartition("@")[2] or "(no host)"


def unreachable(exc: BaseException, uri: str) -> StoreUnavailable:
    """A one-line ``StoreUnavailable`` for a pymongo error met while talking to ``uri``."""
    connection = any(cls.__name__ == "ConnectionFailure" for cls in type(exc).__mro__)
    doing = "cannot reach" if connection else "failed talking to"
    return StoreUnavailable(f"{doing} MongoDB at {hosts(uri)}: {one_line(exc, uri)}")


def one_line(exc: BaseException, uri: str) -> str:
    """``Type: reason`` of a pymongo error in one line: no topology description, no password."""
    reason = str(exc).split(", Timeout: ")[0].split(", Topology Description: ")[0]
    reason = _CONFIGURED.sub("", reason).replace("\n", " ").strip()
    parts = urlsplit(uri) if "://" in uri else None
    if parts is not None and parts.password:
        reason = reason.replace(parts.password, "***")
    if len(reason) > _LIMIT:
        reason = reason[: _LIMIT - 1] + "…"
    return f"{type(exc).__name__}: {reason or 'no reason given'}"
