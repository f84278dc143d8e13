"""An embedded, in-process MongoDB stand-in for local runs and fast tests.

``embedded_database()`` returns a pymongo-compatible ``Database`` over flowkit's own in-memory
engine (``flowkit.local._memory``). It implements exactly the subset of MongoDB flowkit uses -
``insert_one``/``insert_many``, ``find``/``find_one`` with projections, ``update_one``/``update_many``,
``find_one_and_update`` (``ReturnDocument.BEFORE``/``AFTER``), deletes, ``count_documents`` and
unique indexes - with MongoDB's semantics, and raises ``NotImplementedError`` naming anything else.

Every operation runs whole under one lock per database, as MongoDB makes each single-document
operation atomic, so compare-and-set claims and ``$inc`` behave in process as against a server.
Documents are updated in place (never copied whole on a write); callers get copies of what they
asked for, so a projection such as ``{"config": 0}`` costs only what it returns.

MongoDB's limits hold here too, with the errors pymongo raises: an inserted document over 16 MB is
``DocumentTooLarge``, one nested deeper than 100 levels a ``WriteError`` with code 15; an update that
would nest deeper is code 15, one whose result passes 16 MB code 17419; strings are checked as UTF-8
like pymongo's encoder does. So a local run fails where production would.

Stored values read back as they would through ``MongoClient(tz_aware=True)`` (what
``flowkit.runtime.store.Store.from_settings`` uses): datetimes are cut to milliseconds and come
back aware, in UTC; tuples come back as lists.
"""

from __future__ import annotations

import threading
from typing import Any

from flowkit.local._memory.collection import Collection, Data

__all__ = ["EmbeddedClient", "EmbeddedDatabase", "embedded_database"]


class EmbeddedDatabase:
    """A database of in-memory collections sharing one lock."""

    def __init__(self, client: EmbeddedClient, name: str) -> None:
        self.client = client
        self.name = name
        self._lock = threading.Lock()
        self._data: dict[str, Data] = {}

    def get_collection(self, name: str, **options: Any) -> Collection:
        if not isinstance(name, str) or not name or name.startswith("$") or "\0" in name:
            raise ValueError(f"invalid collection name {name!r}")
        with self._lock:
            data = self._data.setdefault(name, Data())
        collection = Collection(self, name, data, self._lock)
        return collection.with_options(**options) if options else collection

    def __getitem__(self, name: str) -> Collection:
        return self.get_collection(name)

    def list_collection_names(self) -> list[str]:
        with self._lock:
            return list(self._data)

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self._data.pop(name, None)

    def __repr__(self) -> str:
        return f"<embedded database {self.name}>"


class EmbeddedClient:
    """The client of embedded databases: each ``embedded_database()`` call gets a new one."""

    def __init__(self) -> None:
        self._databases: dict[str, EmbeddedDatabase] = {}
        self._lock = threading.Lock()

    def get_database(self, name: str) -> EmbeddedDatabase:
        with self._lock:
            if name not in self._databases:
                self._databases[name] = EmbeddedDatabase(self, name)
            return self._databases[name]

    def __getitem__(self, name: str) -> EmbeddedDatabase:
        return self.get_database(name)

    def drop_database(self, name_or_database: str | EmbeddedDatabase) -> None:
        name = name_or_database if isinstance(name_or_database, str) else name_or_database.name
        with self._lock:
            self._databases.pop(name, None)

    def close(self) -> None:
        """Nothing to release (kept for code that closes ``store.database.client``)."""


def embedded_database(name: str = "flowkit") -> Any:
    """A fresh in-process database (pymongo API, one lock making every operation atomic)."""
    return EmbeddedClient()[name]
