"""One collection: documents by ``_id`` in insertion order, unique indexes, pymongo's methods.

Every method runs whole under the database's lock, as MongoDB makes a single-document operation
atomic. Callers get copies; stored documents are changed in place and never handed out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError, OperationFailure, WriteError
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

from flowkit.local._memory.cursor import Cursor
from flowkit.local._memory.filters import compile_filter
from flowkit.local._memory.projection import Projection, parse
from flowkit.local._memory.updates import Update
from flowkit.local._memory.values import MISSING, get, index_key, sort_key, to_bson
from flowkit.runtime.limits import nesting
from flowkit.vocab import MONGO_DOCUMENT_LIMIT, MONGO_NESTING_LIMIT

Doc = dict[str, Any]
Keys = list[tuple[str, int]]


@dataclass
class Index:
    name: str
    keys: Keys
    unique: bool
    entries: dict[Any, Any] = field(default_factory=dict)  # index key -> _id key (unique only)

    def key_of(self, doc: Doc) -> Any:
        return tuple(index_key(get(doc, path), path) for path, _ in self.keys)

    def info(self) -> Doc:
        info: Doc = {"v": 2, "key": dict(self.keys), "name": self.name}
        if self.unique and self.name != "_id_":  # MongoDB lists the _id index without "unique"
            info["unique"] = True
        return info


class Data:
    """What every view (``with_options()``) of one collection shares."""

    def __init__(self) -> None:
        self.docs: dict[Any, Doc] = {}  # _id key -> stored document
        # _id key -> an upper bound of the document's BSON size (exact after insert or a recount)
        self.sizes: dict[Any, int] = {}
        self.indexes: dict[str, Index] = {"_id_": Index("_id_", [("_id", 1)], unique=True)}


def _bson_size(value: Any) -> int:
    return len(bson.encode(value if isinstance(value, dict) else {"": value}))


def _size_bound(value: Any) -> int:
    """At least the BSON size of ``value`` (under an empty key); exact for documents and arrays.

    Scalars are not encoded just to be measured: a string or bytes counts 4 bytes an item (UTF-8
    takes at most 4 a character) plus the framing, any other scalar 24 bytes (the largest, a
    Decimal128, takes 16 plus 7 of framing).
    """
    kind = type(value)
    if kind is str:
        return 4 * len(value) + 12
    if kind is dict or kind is list:
        return _bson_size(value)
    if isinstance(value, (str, bytes)):
        return 4 * len(value) + 16
    return 24


def _check_insert_limits(doc: Doc) -> int:
    """MongoDB's limits on an inserted document; its BSON size.

    pymongo refuses a document over 16 MB before sending it (``DocumentTooLarge``); the server refuses
    one nested deeper than 100 levels (``WriteError``, code 15 Overflow), counting non-empty objects
    and arrays, the document itself included.
    """
    size = _bson_size(doc)
    if size > MONGO_DOCUMENT_LIMIT:
        raise DocumentTooLarge(
            f"BSON document too large ({size} bytes) - the connected server supports BSON document sizes "
            f"up to {MONGO_DOCUMENT_LIMIT} bytes."
        )
    # Each level of nesting takes at least 7 bytes of BSON (a one-null document is 7 bytes, and each
    # document around it adds 7 more), so a document of at most 7 x the limit is never too deep.
    if size > 7 * MONGO_NESTING_LIMIT and nesting(doc) > MONGO_NESTING_LIMIT:
        raise WriteError(
            f"cannot insert document because it exceeds {MONGO_NESTING_LIMIT} levels of nesting", code=15
        )
    return size


def _check_update_nesting(update: Update) -> None:
    """MongoDB refuses an update that nests a value deeper than 100 levels (code 15 Overflow)."""
    for op, path, arg in update.ops:
        levels = path.count(".") + 1 + (op in ("$push", "$addToSet"))
        if type(arg) is dict or type(arg) is list:
            levels += nesting(arg)
        if levels > MONGO_NESTING_LIMIT:
            raise WriteError(f"Document exceeds maximum nesting depth of {MONGO_NESTING_LIMIT}", code=15)


def _no_options(method: str, options: Mapping[str, Any]) -> None:
    given = sorted(name for name, value in options.items() if value is not None)
    if given:
        raise NotImplementedError(f"{method}({', '.join(given)}=...) is not supported by the embedded store")


def _as_filter(spec: Any) -> Any:
    return spec if spec is None or isinstance(spec, Mapping) else {"_id": spec}


def _index_keys(keys: Any) -> Keys:
    if isinstance(keys, str):
        return [(keys, 1)]
    pairs = [(k, 1) if isinstance(k, str) else (k[0], k[1]) for k in keys]
    for path, direction in pairs:
        if direction not in (1, -1):
            raise NotImplementedError(
                f"index type {direction!r} on {path!r} is not supported by the embedded store"
            )
    return pairs


class Collection:
    def __init__(self, database: Any, name: str, data: Data, lock: threading.Lock) -> None:
        self.database = database
        self.name = name
        self._data = data
        self._lock = lock

    @property
    def full_name(self) -> str:
        return f"{self.database.name}.{self.name}"

    def __repr__(self) -> str:
        return f"<embedded collection {self.full_name}>"

    def with_options(self, **options: Any) -> Collection:
        """The same collection: read/write concerns and preferences mean nothing in one process."""
        _no_options("with_options", {k: v for k, v in options.items() if k == "codec_options"})
        return Collection(self.database, self.name, self._data, self._lock)

    # ------------------------------------------------------------------ indexes

    def create_index(
        self, keys: Any, *, unique: bool = False, name: str | None = None, **options: Any
    ) -> str:
        _no_options("create_index", options)
        pairs = _index_keys(keys)
        name = name or "_".join(f"{path}_{direction}" for path, direction in pairs)
        with self._lock:
            for index in self._data.indexes.values():
                same_keys = index.keys == pairs
                if index.name == name and same_keys and index.unique == unique:
                    return name
                if index.name == name:
                    raise OperationFailure(
                        f"An existing index has the same name as the requested index: {name!r} on "
                        f"{index.info()['key']} (unique={index.unique})",
                        code=86,
                    )
                if same_keys:
                    raise OperationFailure(
                        f"Index already exists with a different name: {index.name}", code=85
                    )
            index = Index(name, pairs, unique)
            if unique:
                for id_key, doc in self._data.docs.items():
                    key = index.key_of(doc)
                    if key in index.entries:
                        raise self._duplicate(index, doc)
                    index.entries[key] = id_key
            self._data.indexes[name] = index
            return name

    def list_indexes(self) -> Iterator[Doc]:
        with self._lock:
            return iter([index.info() for index in self._data.indexes.values()])

    def index_information(self) -> dict[str, Doc]:
        with self._lock:
            return {
                index.name: {k: v for k, v in index.info().items() if k not in ("name", "key")}
                | {"key": list(index.keys)}
                for index in self._data.indexes.values()
            }

    def _duplicate(self, index: Index, doc: Doc) -> DuplicateKeyError:
        values = {path: get(doc, path) for path, _ in index.keys}
        shown = ", ".join(
            f"{path}: {'null' if v is MISSING or v is None else repr(v).replace(chr(39), chr(34))}"
            for path, v in values.items()
        )
        message = (
            f"E11000 duplicate key error collection: {self.full_name} index: {index.name} "
            f"dup key: {{ {shown} }}"
        )
        details = {
            "index": 0,
            "code": 11000,
            "errmsg": message,
            "keyPattern": dict(index.keys),
            "keyValue": {path: None if v is MISSING else v for path, v in values.items()},
        }
        return DuplicateKeyError(message, 11000, details)

    # ------------------------------------------------------------------ writes

    def _insert(self, doc: Any) -> Any:
        if not isinstance(doc, Mapping):
            raise TypeError(f"document must be a mapping, not {type(doc).__name__}")
        if "_id" not in doc:
            if not hasattr(doc, "__setitem__"):
                raise TypeError("a document without _id must be mutable (pymongo adds the _id)")
            doc["_id"] = ObjectId()  # as pymongo does, on the caller's document
        stored = to_bson({"_id": doc["_id"], **doc}, "inserted document")
        if type(stored["_id"]) in (list, dict) and (
            type(stored["_id"]) is list or any(k.startswith("$") for k in stored["_id"])
        ):
            raise NotImplementedError("an _id that is an array or holds operators")
        size = _check_insert_limits(stored)
        keys = {index.name: index.key_of(stored) for index in self._data.indexes.values() if index.unique}
        for index in self._data.indexes.values():
            if index.unique and keys[index.name] in index.entries:
                raise self._duplicate(index, stored)
        id_key = keys["_id_"]
        self._data.docs[id_key] = stored
        self._data.sizes[id_key] = size
        for index in self._data.indexes.values():
            if index.unique:
                index.entries[keys[index.name]] = id_key
        return stored["_id"]

    def insert_one(self, document: Any, **options: Any) -> InsertOneResult:
        _no_options("insert_one", options)
        with self._lock:
            return InsertOneResult(self._insert(document), True)

    def insert_many(self, documents: Any, ordered: bool = True, **options: Any) -> InsertManyResult:
        _no_options("insert_many", options)
        if not ordered:
            raise NotImplementedError("insert_many(ordered=False) is not supported by the embedded store")
        documents = list(documents)
        if not documents or not all(isinstance(doc, Mapping) for doc in documents):
            raise TypeError("documents must be a non-empty list of mappings")
        ids = []
        with self._lock:
            for i, doc in enumerate(documents):
                try:
                    ids.append(self._insert(doc))
                except DuplicateKeyError as exc:
                    error = {**(exc.details or {}), "index": i, "op": doc}
                    raise BulkWriteError(
                        {
                            "writeErrors": [error],
                            "writeConcernErrors": [],
                            "nInserted": i,
                            "nUpserted": 0,
                            "nMatched": 0,
                            "nModified": 0,
                            "nRemoved": 0,
                            "upserted": [],
                        }
                    ) from exc
        return InsertManyResult(ids, True)

    def _update(self, doc: Doc, update: Update) -> bool:
        """Apply ``update`` to the stored ``doc``; refused whole if it breaks a unique index."""
        unique = [i for i in self._data.indexes.values() if i.unique and i.name != "_id_"]
        before = [index.key_of(doc) for index in unique]
        _check_update_nesting(update)
        modified, undo = update.apply(doc)
        if not modified:
            return False
        id_key = (index_key(doc["_id"], "_id"),)
        try:
            self._check_update_size(doc, update, id_key)
            after = [index.key_of(doc) for index in unique]
            for index, key in zip(unique, after, strict=True):
                if index.entries.get(key, id_key) != id_key:
                    raise self._duplicate(index, doc)
        except BaseException:  # a duplicate key, a value the index cannot hold, too large: change nothing
            undo.rollback()
            raise
        for index, old, new in zip(unique, before, after, strict=True):
            del index.entries[old]
            index.entries[new] = id_key
        return True

    def _check_update_size(self, doc: Doc, update: Update, id_key: Any) -> None:
        """MongoDB refuses an update whose result is over 16 MB (code 17419).

        The stored size bound grows by what the update writes (replaced values are not subtracted), so
        the document is re-encoded only when the bound passes the limit: near the limit, not on every
        update.
        """
        grown = self._data.sizes.get(id_key, 0) + sum(
            len(path) + 8 + _size_bound(arg) for _, path, arg in update.ops
        )
        if grown <= MONGO_DOCUMENT_LIMIT:
            self._data.sizes[id_key] = grown
            return
        size = _bson_size(doc)
        if size > MONGO_DOCUMENT_LIMIT:
            raise WriteError(
                f"Resulting document after update is larger than {MONGO_DOCUMENT_LIMIT}", code=17419
            )
        self._data.sizes[id_key] = size

    def _matching(self, spec: Any) -> Iterator[Doc]:
        spec = _as_filter(spec)
        matches = compile_filter(spec)
        if (
            spec
            and "_id" in spec
            and not (isinstance(spec["_id"], Mapping) and any(k.startswith("$") for k in spec["_id"]))
        ):  # a lookup by _id
            doc = self._data.docs.get((index_key(to_bson(spec["_id"], "filter"), "_id"),))
            candidates: Any = () if doc is None else (doc,)
        else:
            candidates = list(self._data.docs.values())
        return (doc for doc in candidates if matches(doc))

    def _update_result(self, matched: int, modified: int) -> UpdateResult:
        return UpdateResult(
            {"n": matched, "nModified": modified, "ok": 1.0, "updatedExisting": matched > 0}, True
        )

    def update_one(
        self, filter: Any, update: Mapping[str, Any], upsert: bool = False, **options: Any
    ) -> UpdateResult:
        _no_options("update_one", {"upsert": upsert or None, **options})
        parsed = Update(update)
        with self._lock:
            doc = next(self._matching(filter), None)
            if doc is None:
                return self._update_result(0, 0)
            return self._update_result(1, int(self._update(doc, parsed)))

    def update_many(
        self, filter: Any, update: Mapping[str, Any], upsert: bool = False, **options: Any
    ) -> UpdateResult:
        _no_options("update_many", {"upsert": upsert or None, **options})
        parsed = Update(update)
        matched = modified = 0
        with self._lock:
            for doc in list(self._matching(filter)):
                matched += 1
                modified += self._update(doc, parsed)
        return self._update_result(matched, modified)

    def find_one_and_update(
        self,
        filter: Any,
        update: Mapping[str, Any],
        projection: Any = None,
        *,
        return_document: bool = ReturnDocument.BEFORE,
        upsert: bool = False,
        **options: Any,
    ) -> Doc | None:
        _no_options("find_one_and_update", {"upsert": upsert or None, **options})
        parsed, shape = Update(update), parse(projection)
        with self._lock:
            doc = next(self._matching(filter), None)
            if doc is None:
                return None
            before = None if return_document else shape.apply(doc)
            self._update(doc, parsed)
            return shape.apply(doc) if return_document else before

    def _delete(self, doc: Doc) -> None:
        id_key = (index_key(doc["_id"], "_id"),)
        del self._data.docs[id_key]
        self._data.sizes.pop(id_key, None)
        for index in self._data.indexes.values():
            if index.unique:
                index.entries.pop(index.key_of(doc), None)

    def find_one_and_delete(self, filter: Any, projection: Any = None, **options: Any) -> Doc | None:
        _no_options("find_one_and_delete", options)
        shape = parse(projection)
        with self._lock:
            doc = next(self._matching(filter), None)
            if doc is None:
                return None
            self._delete(doc)
            return shape.apply(doc)

    def delete_one(self, filter: Any, **options: Any) -> DeleteResult:
        _no_options("delete_one", options)
        with self._lock:
            doc = next(self._matching(filter), None)
            if doc is not None:
                self._delete(doc)
            return DeleteResult({"n": int(doc is not None), "ok": 1.0}, True)

    def delete_many(self, filter: Any, **options: Any) -> DeleteResult:
        _no_options("delete_many", options)
        with self._lock:
            doomed = list(self._matching(filter))
            for doc in doomed:
                self._delete(doc)
            return DeleteResult({"n": len(doomed), "ok": 1.0}, True)

    # ------------------------------------------------------------------ reads

    def find(self, filter: Any = None, projection: Any = None, **options: Any) -> Cursor:
        sort, limit = options.pop("sort", None), options.pop("limit", 0)
        _no_options("find", options)
        cursor = Cursor(self._read, filter, parse(projection))
        if sort is not None:
            cursor.sort(sort)
        return cursor.limit(limit) if limit else cursor

    def _read(self, filter: Any, shape: Projection, sort: list[tuple[str, int]], limit: int) -> list[Doc]:
        """Matching documents (projected copies), in ``sort`` order, at most ``limit``; for ``Cursor``."""
        with self._lock:
            docs = list(self._matching(filter))
            order = list(range(len(docs)))
            for path, direction in reversed(sort):  # stable sorts, last key first
                keys = [sort_key(get(doc, path), path) for doc in docs]
                order.sort(key=keys.__getitem__, reverse=direction < 0)
            if limit:
                order = order[:limit]
            return [shape.apply(docs[i]) for i in order]

    def find_one(self, filter: Any = None, projection: Any = None, **options: Any) -> Doc | None:
        _no_options("find_one", options)
        shape = parse(projection)
        with self._lock:
            doc = next(self._matching(filter), None)
            return None if doc is None else shape.apply(doc)

    def count_documents(self, filter: Any, **options: Any) -> int:
        _no_options("count_documents", options)
        with self._lock:
            return sum(1 for _ in self._matching(filter))
