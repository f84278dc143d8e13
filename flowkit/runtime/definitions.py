"""Published workflow definitions: the ``workflows`` collection.

``flowkit publish`` stores each compiled document once per content version (``_id`` is
``<name>@<version>``) and makes it the name's current definition (``_id`` is ``<name>``), which the
starter Lambda (``flowkit.runtime.handlers.starter_job``) starts. A run embeds the document it started
with, so publishing a new version never changes a run in flight.

Publishing is idempotent: the current version again changes nothing; an older version again makes it
current (a rollback). Documents are plain dicts here (no pydantic): the starter reads them on its
cold-start path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from flowkit.runtime.store import now

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

__all__ = ["DEFAULT_COLLECTION", "Definitions"]

DEFAULT_COLLECTION: Final = "workflows"

Doc = dict[str, Any]


class Definitions:
    """The published compiled documents of one database.

    Two kinds of documents: one per published version (``_id`` ``<name>@<version>``, the history) and
    one per name (``_id`` ``<name>``) holding the current version's document, so the starter reads a
    definition in one round trip by ``_id``.
    """

    def __init__(self, database: Database[Doc], collection: str = DEFAULT_COLLECTION) -> None:
        self.collection: Collection[Doc] = database[collection]

    def ensure_indexes(self) -> None:
        """The index listing a name's versions; idempotent."""
        self.collection.create_index([("name", ASCENDING)], name="flowkit_name")

    def publish(self, config: Mapping[str, Any]) -> str:
        """Store a compiled document; ``"published"``, ``"unchanged"`` or ``"reactivated"`` (rollback)."""
        name, version = str(config["name"]), str(config["version"])
        at = now()
        entry = {"name": name, "version": version, "document": dict(config), "published_at": at}
        try:
            self.collection.insert_one({"_id": f"{name}@{version}", **entry})
            outcome = "published"
        except DuplicateKeyError:
            outcome = "reactivated"
        try:
            self.collection.insert_one({"_id": name, **entry})
            return outcome
        except DuplicateKeyError:
            pass
        changed = self.collection.update_one(
            {"_id": name, "version": {"$ne": version}}, {"$set": entry}
        ).modified_count
        if not changed:
            return "unchanged"
        return outcome

    def current(self, name: str) -> Doc | None:
        """The entry (``name``, ``version``, ``document``, ``published_at``) of ``name``'s current version."""
        return self.collection.find_one({"_id": name})

    def document(self, name: str) -> Doc | None:
        """The compiled document (a dict) of ``name``'s current version, or None if never published."""
        entry = self.current(name)
        return None if entry is None else dict(entry["document"])

    def versions(self, name: str) -> list[Doc]:
        """Every published version of ``name`` (without documents), newest first."""
        found = self.collection.find({"name": name}, {"document": 0})
        entries = [entry for entry in found if entry["_id"] != name]
        return sorted(entries, key=lambda entry: entry["published_at"], reverse=True)
