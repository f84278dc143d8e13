"""An embedded, in-process MongoDB stand-in for local runs and fast tests.

``embedded_database()`` returns a pymongo-compatible ``Database`` (mongomock-ng) behind a thin
wrapper that runs every collection operation under one lock. MongoDB makes each single-document
operation atomic; mongomock alone does not (its ``update_one`` reads, then writes), so without the
lock two threads could both win a compare-and-set claim. With it, the runtime's rules hold in
process exactly as they do against a server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["embedded_database"]


class _LockedCursor:
    """A cursor whose results are computed under the lock (on first iteration)."""

    def __init__(self, cursor: Any, lock: threading.RLock) -> None:
        self._cursor = cursor
        self._lock = lock
        self._results: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._cursor, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = attr(*args, **kwargs)
            return _LockedCursor(result, self._lock) if result is self._cursor else result

        return call

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._results is None:
            with self._lock:
                self._results = iter(list(self._cursor))
        return next(self._results)


class _LockedCollection:
    def __init__(self, collection: Any, lock: threading.RLock) -> None:
        self._collection = collection
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr
        return self._locked(attr)

    def _locked(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = method(*args, **kwargs)
                if hasattr(result, "__next__") and hasattr(result, "sort"):
                    return _LockedCursor(result, self._lock)
                if isinstance(result, type(self._collection)):  # with_options(), ...
                    return _LockedCollection(result, self._lock)
                return result

        return call

    def __getitem__(self, name: str) -> _LockedCollection:
        return _LockedCollection(self._collection[name], self._lock)

    def __repr__(self) -> str:
        return f"<embedded collection {self._collection.full_name}>"


class _LockedDatabase:
    def __init__(self, database: Any, lock: threading.RLock) -> None:
        self._database = database
        self._lock = lock

    def __getitem__(self, name: str) -> _LockedCollection:
        return _LockedCollection(self._database[name], self._lock)

    def get_collection(self, name: str, **kwargs: Any) -> _LockedCollection:
        return _LockedCollection(self._database.get_collection(name, **kwargs), self._lock)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._database, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"<embedded database {self._database.name}>"


def embedded_database(name: str = "flowkit") -> Any:
    """A fresh in-process database (pymongo API, one lock making every operation atomic)."""
    try:
        import mongomock_ng
    except ImportError as exc:  # pragma: no cover - depends on installed extras
        from flowkit.errors import MissingDependency

        raise MissingDependency(
            "the embedded store needs mongomock-ng: pip install 'flowkit[local]'"
        ) from exc
    client: Any = mongomock_ng.MongoClient(tz_aware=True)
    return _LockedDatabase(client[name], threading.RLock())
