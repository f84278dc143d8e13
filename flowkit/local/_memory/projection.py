"""Projections: ``{"a": 1, "b.c": 1}`` (inclusion) or ``{"config": 0}`` (exclusion), ``_id`` apart.

A projection is parsed once into a tree of paths; applying it copies only what is returned, and costs
what it returns: a few fields of a large sub-document are looked up, not found by walking it (they
then come back in the projection's order rather than the document's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.errors import OperationFailure

from flowkit.local._memory.values import copy

Doc = dict[str, Any]
Tree = dict[str, Any]  # field -> True (the whole value) or a subtree


_PARSED: dict[tuple[tuple[str, Any], ...], Projection] = {}
_PARSED_MAX = 4096


def parse(spec: Mapping[str, Any] | list[str] | tuple[str, ...] | None) -> Projection:
    """``Projection(spec)``, parsed once for a spec seen before (a projection is never changed)."""
    if type(spec) is not dict:
        return Projection(spec)
    try:
        key = tuple(spec.items())
        parsed = _PARSED.get(key)
    except TypeError:  # an unhashable value: refused by Projection with its own message
        return Projection(spec)
    if parsed is None:
        parsed = Projection(spec)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = parsed
    return parsed


class Projection:
    def __init__(self, spec: Mapping[str, Any] | list[str] | tuple[str, ...] | None) -> None:
        self.tree: Tree = {}
        self.include = False
        self.with_id = True
        if spec is None:
            self.everything = True
            return
        self.everything = False
        if isinstance(spec, (list, tuple)):
            spec = dict.fromkeys(spec, 1)
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"projection must be a mapping or a list of field names, not {type(spec).__name__}"
            )
        modes: set[bool] = set()
        for path, value in spec.items():
            if type(value) is int or isinstance(value, (bool, int, float)):
                flag = bool(value)
            else:
                raise NotImplementedError(
                    f"projection {path!r}: {value!r} (only 1/0/True/False) is not supported by the embedded store"
                )
            if path.startswith("$") or ".$" in path:
                raise NotImplementedError(
                    f"projection operator in {path!r} is not supported by the embedded store"
                )
            if path == "_id":
                self.with_id = flag
                continue
            if modes and flag not in modes:
                kind = "exclusion" if not flag else "inclusion"
                other = "inclusion" if not flag else "exclusion"
                raise OperationFailure(f"Cannot do {kind} on field {path} in {other} projection", code=31254)
            modes.add(flag)
            self._add(path)
        # {"_id": 1} alone is an inclusion; {"_id": 0} alone excludes only _id
        self.include = modes == {True} or (not modes and self.with_id)

    def _add(self, path: str) -> None:
        node = self.tree
        *parents, last = path.split(".")
        for part in parents:
            child = node.get(part)
            if child is True:
                raise OperationFailure(f"Path collision at {path}", code=31250)
            if child is None:
                child = node[part] = {}
            node = child
        if last in node:
            raise OperationFailure(f"Path collision at {path}", code=31250)
        node[last] = True

    def apply(self, doc: Doc) -> Doc:
        """A copy of the projected parts of ``doc``."""
        if self.everything:
            whole: Doc = copy(doc)
            return whole
        if self.include:
            out = _include(doc, self.tree, "")
            if self.with_id and "_id" in doc:
                out = {"_id": doc["_id"], **out}
            return out
        out = _exclude(doc, self.tree, "")
        if not self.with_id:
            out.pop("_id", None)
        return out


def _include(doc: Doc, tree: Tree, prefix: str) -> Doc:
    out: Doc = {}
    if len(tree) * 4 < len(doc):
        # A few fields of a large sub-document (``jobs.a.state`` of a 10,000-job run): look them up
        # instead of walking every key. They come back in the projection's order, not the document's
        # (MongoDB keeps the document's): the one place the embedded store differs, for speed.
        items: Any = ((key, doc[key]) for key in tree if key in doc)
    else:
        items = iter(doc.items())
    for key, value in items:
        sub = tree.get(key)
        if sub is None or (key == "_id" and not prefix):
            continue
        if sub is True:
            out[key] = copy(value)
        elif type(value) is dict:
            out[key] = _include(value, sub, f"{prefix}{key}.")
        elif type(value) is list:
            raise NotImplementedError(f"projection of {prefix}{key}.… into an array")
    return out


def _exclude(doc: Doc, tree: Tree, prefix: str) -> Doc:
    out: Doc = {}
    for key, value in doc.items():
        sub = tree.get(key)
        if sub is True:
            continue
        if sub is None or type(value) not in (dict, list):
            out[key] = copy(value)
        elif type(value) is dict:
            out[key] = _exclude(value, sub, f"{prefix}{key}.")
        else:
            raise NotImplementedError(f"projection of {prefix}{key}.… into an array")
    return out
