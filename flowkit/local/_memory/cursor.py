"""A pymongo-like cursor whose results are read (under the collection's lock) on first use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pymongo.errors import InvalidOperation

Doc = dict[str, Any]
Reader = Callable[[Any, Any, list[tuple[str, int]], int], list[Doc]]


class Cursor:
    def __init__(self, read: Reader, filter: Any, projection: Any) -> None:
        self._read = read
        self._filter = filter
        self._projection = projection
        self._sort: list[tuple[str, int]] = []
        self._limit = 0
        self._results: Iterator[Doc] | None = None

    def _unread(self, method: str) -> None:
        if self._results is not None:
            raise InvalidOperation(f"cannot set options after executing query ({method})")

    def sort(self, key_or_list: Any, direction: int | None = None) -> Cursor:
        self._unread("sort")
        if isinstance(key_or_list, str):
            pairs = [(key_or_list, 1 if direction is None else direction)]
        else:
            pairs = [(k, 1) if isinstance(k, str) else (k[0], k[1]) for k in key_or_list]
        for path, order in pairs:
            if order not in (1, -1):
                raise NotImplementedError(
                    f"sort order {order!r} on {path!r} is not supported by the embedded store"
                )
        self._sort = pairs
        return self

    def limit(self, limit: int) -> Cursor:
        self._unread("limit")
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, not {limit!r}")
        self._limit = limit
        return self

    def __iter__(self) -> Iterator[Doc]:
        return self

    def __next__(self) -> Doc:
        if self._results is None:
            self._results = iter(self._read(self._filter, self._projection, self._sort, self._limit))
        return next(self._results)

    def to_list(self, length: int | None = None) -> list[Doc]:
        return list(self)[:length] if length is not None else list(self)
