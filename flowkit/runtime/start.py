"""Start a run: insert the run document and the workflow-level ``started`` status event.

``start_config`` does it from the compiled document as a plain dict (what ``flowkit publish`` stores and
the starter Lambda reads; no pydantic on that path); ``start_run`` from a ``WorkflowDocument``.

Idempotent on the run id: starting the same id again returns the stored run and inserts no second
``started`` event (its status key is unique); the same id with a different workflow, version or input
is refused with ``RunError``. If a crash happened between the two inserts, starting again completes
the start (the event is inserted then).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowkit.conditions import check
from flowkit.errors import InvalidWorkflow, RunError
from flowkit.runtime.documents import RunDoc, pending_entry
from flowkit.runtime.engine import (
    COUNTERS_VERSION,
    Plan,
    initial_counters,
    initial_paths,
    initial_waits,
    is_always,
)
from flowkit.runtime.store import Store, epoch_ms, make_status, now
from flowkit.vocab import EventStatus, RunStatus, is_valid_name

if TYPE_CHECKING:
    from flowkit.document import Run, WorkflowDocument
    from flowkit.runtime.bounds import Bound

__all__ = ["config_bound", "config_problem", "new_run_document", "start_config", "start_run"]

logger = logging.getLogger(__name__)


def _check_config(config: Mapping[str, Any]) -> None:
    name = config.get("name")
    specs = [spec for spec in config.get("jobs") or [] if isinstance(spec, Mapping)]
    problems = [
        f"job name {spec.get('name')!r} of workflow {name!r} may only use letters, digits, '_' and '-'"
        for spec in specs
        if not is_valid_name(spec.get("name"))
    ]
    counts = Counter(str(spec.get("name")) for spec in specs)
    problems += sorted(
        f"job {job!r} is defined more than once in workflow {name!r}"
        for job, count in counts.items()
        if count > 1
    )
    for spec in specs:
        if spec.get("condition") is not None:
            try:
                check(spec["condition"], where=f"job {spec.get('name')!r} condition")
            except InvalidWorkflow as exc:
                problems.append(exc.message)
    if problems:
        raise InvalidWorkflow(problems[0], problems=problems, workflow=name)


def new_run_document(
    document: WorkflowDocument | Mapping[str, Any],
    input: Mapping[str, Any],
    run_id: str,
    *,
    at: datetime | None = None,
) -> RunDoc:
    """The ``state-machines`` document of a new run: configuration embedded, every job pending.

    ``document`` is a ``WorkflowDocument`` or its JSON dump (a dict, as published in MongoDB). The run
    carries the counters the handlers decide on (``docs/architecture.md``): ``remaining`` jobs not yet
    terminal, ``unhandled`` failures, per job ``unmet``, its needs not yet satisfied, and per job with
    failure paths its ``paths`` entry (failure paths ``left``, one ``taken``), ``always_left`` (``always``
    jobs not ended) and per ``always`` job its ``waits`` (rule 9). A workflow
    with a ``timeout`` gets its ``deadline`` (and the sweep key ``next_due_ms``) in the same insert,
    so the run's own timer exists from its first moment (rule 12).
    """
    config = dict(document) if isinstance(document, Mapping) else document.model_dump(mode="json")
    phases = config.get("phases") or []
    first = phases[0]["name"] if phases else None
    counters, unmet = initial_counters(config)
    plan = Plan.of(config)
    created = at or now()
    deadline = None
    if config.get("timeout_seconds") is not None:
        deadline = created + timedelta(seconds=float(config["timeout_seconds"]))
    doc: RunDoc = {
        "_id": run_id,
        "workflow": config["name"],
        "version": config["version"],
        "config": config,
        "input": dict(input),
        "status": RunStatus.RUNNING,
        "phase": first,
        "phase_index": 0,
        "remaining": counters["remaining"],
        "unhandled": counters["unhandled"],
        "counters": COUNTERS_VERSION,
        "paths": initial_paths(plan),
        "always_left": len(plan.always),
        "waits": initial_waits(plan),
        "jobs": {
            spec: pending_entry(unmet[spec])
            for spec in (str(spec["name"]) for spec in config.get("jobs") or [])
        },
        "created_at": created,
        "ended_at": None,
        "end_reason": None,
        "redrive_count": 0,
        "redriven_at": None,
        "redrive_deadline": None,
        "deadline": deadline,
        "timer_seq": 0,
        "timers": {},
    }
    if deadline is not None:
        doc["next_due_ms"] = epoch_ms(deadline)
    return doc


def start_run(
    store: Store, document: WorkflowDocument, input: Mapping[str, Any], *, run_id: str | None = None
) -> Run:
    """Insert a run of ``document`` with ``input`` and its ``started`` event; return the stored run."""
    from flowkit.document import Run

    return Run.model_validate(start_config(store, document.model_dump(mode="json"), input, run_id=run_id))


def start_config(store: Store, config: Mapping[str, Any], input: Any, *, run_id: str | None = None) -> RunDoc:
    """``start_run`` for a compiled document given as a plain dict; returns the stored run document.

    Used by the starter Lambda (``flowkit.runtime.handlers.starter_job``), which reads the published
    definition from MongoDB and never loads pydantic.
    """
    name = str(config.get("name"))
    if not isinstance(input, dict):
        raise RunError(f"the input of a run is a JSON object, got {type(input).__name__}", workflow=name)
    from flowkit.runtime.limits import INPUT_NESTING_LIMIT, value_problem

    problem = value_problem(input, "input", max_depth=INPUT_NESTING_LIMIT)
    if problem is not None:
        raise RunError(f"the input of workflow {name!r} cannot be stored unchanged: {problem}", workflow=name)
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        raise RunError(f"a run id is a non-empty string, got {run_id!r}", workflow=name)
    _check_config(config)
    run_id = run_id or f"{name}-{uuid.uuid4().hex[:12]}"
    doc = new_run_document(config, input, run_id, at=store.now())
    _check_size(doc, name)
    if store.insert_run(doc):
        logger.info("started run %s of %s", run_id, name)
    else:
        existing = store.get_run(run_id)
        if existing is None:  # pragma: no cover - deleted between the two calls
            raise RunError(f"run {run_id!r} exists but could not be read", run_id=run_id)
        _same_run(existing, doc)
        doc = existing
    store.insert_status(make_status(run_id, name, None, 0, EventStatus.STARTED, time=doc["created_at"]))
    return doc


def _check_size(doc: Mapping[str, Any], name: str) -> None:
    """Refuse a run whose document could grow past ``RUN_DOCUMENT_BOUND`` (``flowkit.runtime.bounds``)."""
    from flowkit.runtime.bounds import Bound

    bound = Bound.of_run(doc)
    if bound.over:
        raise RunError(bound.message(), workflow=name, run_id=str(doc["_id"]))


def config_bound(config: Mapping[str, Any]) -> Bound:
    """The worst case of a run of a compiled document (a plain dict) with an empty input and run id,
    computed without building every job's entry (``flowkit.runtime.bounds``)."""
    from flowkit.runtime.bounds import Bound

    names = [str(spec.get("name")) for spec in config.get("jobs") or () if isinstance(spec, Mapping)]
    # the run's own fields, as a new run has them
    rest = dict(new_run_document({**config, "jobs": []}, {}, ""))
    del rest["config"], rest["jobs"]
    specs = [spec for spec in config.get("jobs") or () if isinstance(spec, Mapping)]
    if any(spec.get("handled_by") or is_always(spec) for spec in specs):
        # failure paths or always jobs: their counters, as a new run has them (else none: the skeleton's)
        plan = Plan.of(config)
        rest["paths"], rest["waits"], rest["always_left"] = (
            initial_paths(plan),
            initial_waits(plan),
            len(plan.always),
        )
    return Bound.of_parts(rest, config, names)


def config_problem(config: Mapping[str, Any]) -> str | None:
    """Why runs of a compiled document could pass ``RUN_DOCUMENT_BOUND`` even with an empty input, or
    None. The compiler reports it as a problem of the workflow."""
    bound = config_bound(config)
    return bound.message(what="its run document") if bound.over else None


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
    if _canonical(existing.get("input")) != _canonical(new["input"]):
        raise RunError(
            f"run {run_id!r} already exists with a different input: choose another run id",
            run_id=run_id,
            workflow=new["workflow"],
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
