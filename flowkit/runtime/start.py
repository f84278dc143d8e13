"""Start a run: insert the run document and the workflow-level ``started`` status event.

Idempotent on the run id: starting the same id again returns the stored run and inserts no second
``started`` event (its status key is unique); the same id with a different workflow, version or input
is refused with ``RunError``. If a crash happened between the two inserts, starting again completes
the start (the event is inserted then).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any, Final

from flowkit.conditions import check
from flowkit.document import Run, WorkflowDocument, canonical_json
from flowkit.errors import InvalidWorkflow, RunError
from flowkit.runtime.store import Store, make_status, now

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["new_run_document", "start_run"]

logger = logging.getLogger(__name__)

# Job names become dotted paths (`jobs.<name>.state`): nothing but these characters is safe there.
_JOB_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")


def _check_document(document: WorkflowDocument) -> None:
    problems = [
        f"job name {spec.name!r} of workflow {document.name!r} may only use letters, digits, '_' and '-'"
        for spec in document.jobs
        if not _JOB_NAME.fullmatch(spec.name)
    ]
    names = [spec.name for spec in document.jobs]
    problems += sorted(
        f"job {name!r} is defined more than once in workflow {document.name!r}"
        for name in {n for n in names if names.count(n) > 1}
    )
    for spec in document.jobs:
        if spec.condition is not None:
            try:
                check(spec.condition, where=f"job {spec.name!r} condition")
            except InvalidWorkflow as exc:
                problems.append(exc.message)
    if problems:
        raise InvalidWorkflow(problems[0], problems=problems, workflow=document.name)


def new_run_document(document: WorkflowDocument, input: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The ``state-machines`` document of a new run: configuration embedded, every job pending."""
    first = document.phases[0].name if document.phases else None
    return {
        "_id": run_id,
        "workflow": document.name,
        "version": document.version,
        "config": document.model_dump(mode="json"),
        "input": dict(input),
        "status": "running",
        "phase": first,
        "phase_index": 0,
        "jobs": {
            spec.name: {
                "state": "pending",
                "attempt": 0,
                "output": None,
                "error": None,
                "dispatched_at": None,
                "started_at": None,
                "finished_at": None,
            }
            for spec in document.jobs
        },
        "created_at": now(),
        "ended_at": None,
    }


def start_run(
    store: Store, document: WorkflowDocument, input: Mapping[str, Any], *, run_id: str | None = None
) -> Run:
    """Insert a run of ``document`` with ``input`` and its ``started`` event; return the stored run."""
    if not isinstance(input, dict):
        raise RunError(
            f"the input of a run is a JSON object, got {type(input).__name__}", workflow=document.name
        )
    try:
        json.dumps(input, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RunError(
            f"the input of workflow {document.name!r} is not JSON: {exc}", workflow=document.name
        ) from exc
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        raise RunError(f"a run id is a non-empty string, got {run_id!r}", workflow=document.name)
    _check_document(document)
    run_id = run_id or f"{document.name}-{uuid.uuid4().hex[:12]}"
    doc = new_run_document(document, input, run_id)
    if store.insert_run(doc):
        logger.info("started run %s of %s", run_id, document.name)
    else:
        existing = store.get_run(run_id)
        if existing is None:  # pragma: no cover - deleted between the two calls
            raise RunError(f"run {run_id!r} exists but could not be read", run_id=run_id)
        _same_run(existing, doc)
        doc = existing
    store.insert_status(make_status(run_id, document.name, None, 0, "started", time=doc["created_at"]))
    return Run.model_validate(doc)


def _same_run(existing: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    run_id = new["_id"]
    for field in ("workflow", "version"):
        if existing.get(field) != new[field]:
            raise RunError(
                f"run {run_id!r} already exists with {field} {existing.get(field)!r}, not {new[field]!r}: "
                "choose another run id",
                run_id=run_id,
                workflow=new["workflow"],
            )
    if canonical_json(existing.get("input")) != canonical_json(new["input"]):
        raise RunError(
            f"run {run_id!r} already exists with a different input: choose another run id",
            run_id=run_id,
            workflow=new["workflow"],
        )
