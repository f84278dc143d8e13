"""Stored values as BSON sees them, and how MongoDB compares them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from bson import ObjectId
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from bson.tz_util import utc


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()  # a path that leads nowhere (not the same as a stored null)

_SCALARS = (str, int, float, bool, type(None), bytes, ObjectId, Decimal128)
_INT64 = (-(2**63), 2**63 - 1)


def to_bson(value: Any, where: str = "document") -> Any:
    """A private copy of ``value`` as MongoDB would store it (or ``InvalidDocument``).

    Like a BSON round trip through ``MongoClient(tz_aware=True)``: tuples become lists, mappings
    plain dicts, and datetimes are cut to milliseconds and read back as aware UTC (naive means UTC).
    """
    kind = type(value)
    # Exact types first (what the runtime writes): no ABC checks, the same result as below.
    if kind is str:
        if not value.isascii():
            value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise InvalidDocument(
                        f"documents must have only string keys, key was {key!r} (in {where})"
                    )
                key = str.__str__(key)
            if not key.isascii():
                key.encode("utf-8")
            kind = type(item)
            if (kind is str and item.isascii()) or kind is bool or item is None:
                out[key] = item
            elif kind is int and _INT64[0] <= item <= _INT64[1]:
                out[key] = item
            else:
                out[key] = to_bson(item, where)
        return out
    if kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise OverflowError(f"MongoDB can only handle up to 8-byte ints (in {where})")
        return value
    if kind is bool or value is None or kind is float:
        return value
    if kind is list:
        return [to_bson(item, where) for item in value]
    if kind is datetime:
        return _datetime(value)
    return _to_bson(value, where)


_ZERO: Final = timedelta(0)


def _datetime(value: datetime) -> datetime:
    """``value`` as BSON stores it: cut to milliseconds, aware UTC (naive means UTC)."""
    if value.tzinfo is not None and value.utcoffset() != _ZERO:
        value = value.astimezone(utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000, tzinfo=utc)


def _to_bson(value: Any, where: str) -> Any:
    """``to_bson`` of anything but the exact types it handles itself."""
    if isinstance(value, str):
        if not value.isascii():
            value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, as in pymongo's encoder
        # A str subclass (a StrEnum such as JobState.PENDING) is stored as the plain string BSON holds.
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidDocument(f"documents must have only string keys, key was {key!r} (in {where})")
            if not key.isascii():
                key.encode("utf-8")
            out[key if type(key) is str else str.__str__(key)] = to_bson(item, where)
        return out
    if isinstance(value, (list, tuple)):
        return [to_bson(item, where) for item in value]
    if isinstance(value, datetime):
        return _datetime(value)
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        raise OverflowError(f"MongoDB can only handle up to 8-byte ints (in {where})")
    if isinstance(value, str) and type(value) is not str:
        return str.__str__(value)  # a str subclass (an enum member) reads back as a plain str
    if isinstance(value, _SCALARS):
        return value
    raise InvalidDocument(f"cannot encode object: {value!r}, of type: {type(value)} (in {where})")


_CONTAINERS: Final = frozenset((dict, list))


def copy(value: Any) -> Any:
    """A copy of a stored value (stored values are only dicts, lists and immutable scalars).

    A flat dict (a job's state, a status event) is copied by ``dict.copy()`` after a type check
    that runs in C; otherwise each container is copied shallow and only its container values are
    copied again: together about 2x faster than a comprehension calling itself on every value.
    """
    if type(value) is dict:
        out: Any = value.copy()
        if _CONTAINERS.isdisjoint(map(type, out.values())):
            return out
        items: Any = out.items()
    elif type(value) is list:
        out = value[:]
        items = enumerate(out)
    else:
        return value
    for key, item in items:  # replacing values (not keys) while iterating is allowed
        if type(item) is dict or type(item) is list:
            out[key] = copy(item)
    return out


def get(doc: Any, path: str) -> Any:
    """The value at a dotted path, ``MISSING`` when there is none."""
    value = doc
    for part in path.split("."):
        if type(value) is dict:
            value = value.get(part, MISSING)
        elif type(value) is list:
            raise NotImplementedError(f"dotted path {path!r} through an array")
        else:
            return MISSING
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def equal(a: Any, b: Any) -> bool:
    """MongoDB equality: numbers by value, booleans apart from numbers, documents in field order."""
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if type(a) is dict or type(b) is dict:
        return (
            type(a) is dict
            and type(b) is dict
            and list(a) == list(b)
            and all(equal(a[key], b[key]) for key in a)
        )
    if type(a) is list or type(b) is list:
        return type(a) is list and type(b) is list and len(a) == len(b) and all(map(equal, a, b))
    return type(a) is type(b) and bool(a == b)


def identical(a: Any, b: Any) -> bool:
    """Byte-for-byte the same BSON (an update that changes ``1`` to ``1.0`` modifies the document)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(identical(a[key], b[key]) for key in a)
    if type(a) is list:
        return len(a) == len(b) and all(map(identical, a, b))
    return bool(a == b)


def index_key(value: Any, path: str) -> Any:
    """A hashable key that two values share exactly when a MongoDB index treats them as equal."""
    if value is MISSING or value is None:
        return ("null",)
    if _is_number(value):
        return ("number", value)
    if type(value) is dict:
        return ("object", tuple((key, index_key(item, path)) for key, item in value.items()))
    if type(value) is list:
        raise NotImplementedError(f"an array in the indexed field {path!r} (multikey index)")
    return (type(value).__name__, value)


# MongoDB's sort order across types (null < numbers < strings < ... < ObjectId < bool < date).
_RANK = {str: 3, bytes: 5, ObjectId: 7, bool: 8, datetime: 9}


def sort_key(value: Any, path: str) -> tuple[int, Any]:
    if value is MISSING or value is None:
        return (1, 0)
    if _is_number(value):
        return (2, value)
    rank = _RANK.get(type(value))
    if rank is None:
        raise NotImplementedError(f"sorting on {path!r} by a {type(value).__name__} value")
    return (rank, value)
