"""Update documents: checked against the stored document first, then applied in place.

``Update(spec)`` parses and checks the shape (pymongo's and MongoDB's errors for a bad update);
``apply(doc)`` checks every modification against ``doc`` before it changes anything, so an update
that fails changes nothing, then applies them and returns an ``Undo`` (the unique-index check of the
caller may still refuse the result).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from pymongo.errors import WriteError

from flowkit.local._memory.values import MISSING, copy, equal, identical, sort_key, to_bson

Doc = dict[str, Any]
OPERATORS = ("$set", "$unset", "$inc", "$min", "$max", "$push", "$addToSet")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Undo:
    """What an applied update changed, newest last, so that it can be put back exactly."""

    def __init__(self) -> None:
        # (document, key, old value or MISSING, position of a deleted key or -1)
        self.changes: list[tuple[Doc, str, Any, int]] = []

    def put(self, container: Doc, key: str, value: Any) -> None:
        self.changes.append((container, key, container.get(key, MISSING), -1))
        container[key] = value

    def delete(self, container: Doc, key: str) -> None:
        position = list(container).index(key)
        self.changes.append((container, key, container.pop(key), position))

    def rollback(self) -> None:
        for container, key, old, position in reversed(self.changes):
            if position >= 0:  # put a deleted key back where it was
                items = list(container.items())
                items.insert(position, (key, old))
                container.clear()
                container.update(items)
            elif old is MISSING:
                del container[key]
            else:
                container[key] = old


class Update:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping):
            raise TypeError(f"update must be a mapping, not {type(spec).__name__}")
        if not spec or not next(iter(spec)).startswith("$"):
            raise ValueError("update only works with $ operators")
        self.ops: list[tuple[str, str, Any]] = []
        for op, fields in spec.items():
            if op not in OPERATORS:
                raise NotImplementedError(f"update operator {op} is not supported by the embedded store")
            if not isinstance(fields, Mapping) or not fields:
                raise WriteError(f"Modifiers operate on fields but we found {op}: {fields!r}", code=9)
            for path, arg in fields.items():
                self.ops.append((op, path, to_bson(arg, f"{op} of {path!r}")))
        self._check_conflicts()
        for op, path, arg in self.ops:
            if op == "$inc" and not _number(arg):
                raise WriteError(f"Cannot increment with non-numeric argument: {{{path}: {arg!r}}}", code=14)
            if op in ("$push", "$addToSet") and isinstance(arg, dict) and any(k.startswith("$") for k in arg):
                modifiers = ", ".join(k for k in arg if k.startswith("$"))
                raise NotImplementedError(
                    f"{op} modifiers ({modifiers}) are not supported by the embedded store"
                )

    def _check_conflicts(self) -> None:
        paths = sorted(path for _, path, _ in self.ops)
        for shorter, longer in itertools.pairwise(paths):
            if longer == shorter or longer.startswith(shorter + "."):
                raise WriteError(
                    f"Updating the path '{longer}' would create a conflict at '{shorter}'", code=40
                )

    def apply(self, doc: Doc) -> tuple[bool, Undo]:
        """Apply to ``doc`` in place; ``(modified, undo)``. Raises (changing nothing) if it cannot."""
        for op, path, arg in self.ops:
            self._check(doc, op, path, arg)
        undo = Undo()
        modified = False
        for op, path, arg in self.ops:
            modified |= self._apply(doc, op, path, arg, undo)
        return modified, undo

    @staticmethod
    def _parent(doc: Doc, path: str, *, create: bool, undo: Undo | None = None) -> Doc | None:
        """The document holding the last part of ``path`` (None: a part is missing, not created)."""
        node: Any = doc
        parts = path.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part, MISSING)
            if child is MISSING:
                if not create:
                    return None
                child = {}
                if undo is not None:
                    undo.put(node, part, child)
            elif type(child) is list:
                raise NotImplementedError(f"update of {path!r} through an array (positional updates)")
            elif type(child) is not dict:
                raise WriteError(
                    f"Cannot create field '{parts[i + 1]}' in element {{{part}: {child!r}}}", code=28
                )
            node = child
        return node if type(node) is dict else None

    def _check(self, doc: Doc, op: str, path: str, arg: Any) -> None:
        if path == "_id" or path.startswith("_id."):
            if op == "$set" and path == "_id" and identical(doc.get("_id"), arg):
                return
            raise WriteError(
                "Performing an update on the path '_id' would modify the immutable field '_id'", code=66
            )
        parent = self._parent(doc, path, create=False)
        current = MISSING if parent is None else parent.get(path.rsplit(".", 1)[-1], MISSING)
        if op == "$inc" and current is not MISSING and not _number(current):
            raise WriteError(
                f"Cannot apply $inc to a value of non-numeric type. {{_id: {doc.get('_id')!r}}} has the "
                f"field '{path}' of non-numeric type {type(current).__name__}",
                code=14,
            )
        if op in ("$push", "$addToSet") and current is not MISSING and type(current) is not list:
            raise WriteError(
                f"The field '{path}' must be an array but is of type {type(current).__name__} in "
                f"document {{_id: {doc.get('_id')!r}}}",
                code=2,
            )

    def _apply(self, doc: Doc, op: str, path: str, arg: Any, undo: Undo) -> bool:
        key = path.rsplit(".", 1)[-1]
        if path == "_id":
            return False  # checked: setting _id to the value it has
        if op == "$unset":
            parent = self._parent(doc, path, create=False)
            if parent is None or key not in parent:
                return False
            undo.delete(parent, key)
            return True
        parent = self._parent(doc, path, create=True, undo=undo)
        if parent is None:  # pragma: no cover - create=True always returns a document
            raise RuntimeError(f"no document to hold {path!r}")
        current = parent.get(key, MISSING)
        if op == "$set":
            if current is not MISSING and identical(current, arg):
                return False
            undo.put(parent, key, copy(arg))
            return True
        if op == "$inc":
            undo.put(parent, key, arg if current is MISSING else current + arg)
            return current is MISSING or not identical(current, current + arg)
        if op in ("$min", "$max"):
            # MongoDB compares across types in BSON order (null < numbers < ... < dates)
            if current is not MISSING:
                new, old = sort_key(arg, path), sort_key(current, path)
                if (new >= old) if op == "$min" else (new <= old):
                    return False
            undo.put(parent, key, copy(arg))
            return True
        # $push / $addToSet: a new list (the old one stays intact for rollback)
        items = [] if current is MISSING else current
        if op == "$addToSet" and any(equal(item, arg) for item in items):
            return False
        undo.put(parent, key, [*items, copy(arg)])
        return True
