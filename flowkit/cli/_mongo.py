"""The MongoDB store of the commands that write to one (``start``, ``publish``), with the CLI's errors.

No URI is a ``ConfigError`` (exit 2), a malformed one too; any pymongo error while the store is used
becomes a one-line ``StoreUnavailable`` naming the host, credentials masked (exit 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flowkit.errors import ConfigError

if TYPE_CHECKING:
    from flowkit.runtime.config import Settings
    from flowkit.runtime.store import Store

__all__ = ["mongo_store", "require_uri"]


def require_uri(settings: Settings, *, to: str) -> str:
    """``settings.mongo_uri``, or a ``ConfigError`` saying how to give one (``to``: what it is for)."""
    if not settings.mongo_uri:
        raise ConfigError(f"no MongoDB to {to}: pass --mongo-uri URI or set FLOWKIT_MONGO_URI")
    return settings.mongo_uri


@contextmanager
def mongo_store(settings: Settings, *, to: str) -> Iterator[Store]:
    """A ``Store`` on ``settings.mongo_uri``, closed on exit; pymongo errors become flowkit's."""
    from pymongo.errors import PyMongoError

    from flowkit.runtime._uri import redact, unreachable
    from flowkit.runtime.store import Store

    uri = require_uri(settings, to=to)
    try:
        store = Store.from_settings(settings)
    except (PyMongoError, ValueError) as exc:  # pymongo's InvalidURI is a ValueError too
        raise ConfigError(f"MongoDB URI {redact(uri)}: {exc}") from exc
    try:
        yield store
    except PyMongoError as exc:
        raise unreachable(exc, uri) from exc
    finally:
        store.database.client.close()
