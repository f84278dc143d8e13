"""Outputs and errors too big to keep inline in a run document: the ``results`` collection.

A run document keeps a job's output (or error) inline when ``{"v": value}`` is at most
``vocab.INLINE_LIMIT`` bytes of BSON. A larger one is a document of its own in the results collection,
and the job keeps only a reference: ``jobs.<job>.output`` is null and ``jobs.<job>.output_ref`` names
it (``error_ref`` for an error, also in the attempts history). So a run document's size no longer
depends on what its jobs return, and its worst case is computable (``flowkit.runtime.bounds``).

A result's ``_id`` is ``"<run_id>/<job>/<ref>"`` with ``ref = "<attempt>/<output|error>/<digest>"``,
the digest being the first 24 hex digits of the SHA-256 of the value's BSON: the id names the content.
``Store.keep`` inserts it *before* the compare-and-set that records the outcome, so a run never
references a result that is not there. Every writer of the same content writes the same document (a
``DuplicateKeyError`` means it is already there), so duplicated and reordered deliveries change
nothing; two different outcomes racing for one attempt (a ``failed`` and a ``timed_out``) write two
documents and the run references the one whose compare-and-set won. A result whose compare-and-set
lost (a stale attempt, a duplicate that found its outcome recorded by the other handler with
another value) is an orphan nobody references: harmless, never read, and found with its run through
the ``run_id`` index when runs are cleaned up.

Readers fetch only what they need, in one query per decision (``resolve``): the outputs of a claimed
job's needs (its payload), the outputs and errors a condition reads, the errors a failure
notification names, and everything for the status views. Standard library and ``bson`` only: the
handlers import it on their event path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

import bson

from flowkit.errors import RunError
from flowkit.vocab import INLINE_LIMIT

__all__ = ["REF_FIELDS", "Placed", "bson_size", "missing", "place", "refs", "result_id", "with_values"]

REF_FIELDS: Final = {"output": "output_ref", "error": "error_ref"}
"""Field of a job entry (and, for errors, of an attempts entry) that holds the reference of a value."""

Placed = tuple[Any, str | None, dict[str, Any] | None]
"""``(inline value, reference, results document to insert)``: one of the first two is None."""


def bson_size(value: Any) -> int:
    """Bytes of ``{"v": value}`` as BSON: the size the inline and output limits are measured in."""
    return len(bson.encode({"v": value}))


def result_id(run_id: str, job: str, ref: str) -> str:
    """The ``_id`` of a result in the results collection."""
    return f"{run_id}/{job}/{ref}"


def place(run_id: str, job: str, attempt: int, kind: str, value: Any, *, at: datetime) -> Placed:
    """Where ``value`` (a job attempt's ``kind``: output or error) is kept: inline, or as a result."""
    if value is None:
        return None, None, None
    data = bson.encode({"v": value})
    if len(data) <= INLINE_LIMIT:
        return value, None, None
    ref = f"{attempt}/{kind}/{hashlib.sha256(data).hexdigest()[:24]}"
    doc = {
        "_id": result_id(run_id, job, ref),
        "run_id": run_id,
        "job": job,
        "attempt": attempt,
        "kind": kind,
        "bytes": len(data),
        "value": value,
        "created_at": at,
    }
    return None, ref, doc


def refs(
    run_id: str,
    jobs: Mapping[str, Any],
    *,
    outputs: Iterable[str] | None = (),
    errors: Iterable[str] | None = (),
    history: bool = False,
) -> dict[str, str]:
    """Result id -> job name of the references to fetch: the outputs of ``outputs``, the errors of
    ``errors`` (``None``: of every job), with ``history`` also the errors of their attempts."""
    outputs = None if outputs is None else frozenset(outputs)
    errors = None if errors is None else frozenset(errors)
    names: Iterable[str] = jobs.keys() if outputs is None or errors is None else outputs | errors
    found: dict[str, str] = {}
    for name in names:
        job = jobs.get(name)
        if not isinstance(job, Mapping):
            continue
        if outputs is None or name in outputs:
            ref = job.get("output_ref")
            if isinstance(ref, str):
                found[result_id(run_id, name, ref)] = name
        if errors is None or name in errors:
            ref = job.get("error_ref")
            if isinstance(ref, str):
                found[result_id(run_id, name, ref)] = name
            if history:
                for entry in (job.get("attempts") or {}).values():
                    ref = entry.get("error_ref") if isinstance(entry, Mapping) else None
                    if isinstance(ref, str):
                        found[result_id(run_id, name, ref)] = name
    return found


def missing(run_id: str, ids: Iterable[str]) -> RunError:
    """The error for references whose results are not in the collection (deleted by someone)."""
    shown = sorted(ids)
    return RunError(
        f"run {run_id!r}: {len(shown)} referenced output(s)/error(s) missing from the results collection "
        f"(first: {shown[0]!r}); they were deleted",
        run_id=run_id,
    )


def with_values(
    run_id: str, jobs: Mapping[str, Any], values: Mapping[str, Any], names: Iterable[str]
) -> dict[str, Any]:
    """``jobs`` with the fetched ``values`` (result id -> value) in place of the references of ``names``.

    The entries that change are copies; the others are the same objects (``jobs`` may be shared with
    the run cache: never mutated). A resolved entry keeps its reference next to the value.
    """
    out = dict(jobs)
    for name in names:
        job = jobs.get(name)
        if not isinstance(job, Mapping):
            continue
        entry: dict[str, Any] | None = None
        for kind, field in REF_FIELDS.items():
            ref = job.get(field)
            if isinstance(ref, str) and result_id(run_id, name, ref) in values:
                entry = entry or dict(job)
                entry[kind] = values[result_id(run_id, name, ref)]
        attempts = job.get("attempts")
        if isinstance(attempts, Mapping):
            changed = {}
            for key, record in attempts.items():
                ref = record.get("error_ref") if isinstance(record, Mapping) else None
                if isinstance(ref, str) and result_id(run_id, name, ref) in values:
                    changed[key] = {**record, "error": values[result_id(run_id, name, ref)]}
            if changed:
                entry = entry or dict(job)
                entry["attempts"] = {**attempts, **changed}
        if entry is not None:
            out[name] = entry
    return out
