"""The starter: start a run of a workflow's published definition from an AWS invocation.

``flowkit.runtime.handlers.starter_job`` receives one JSON object::

    {"workflow": "nightly-etl", "input": {"date": "2026-11-27"}, "run_id": "nightly-etl-2026-11-27"}

from a direct invoke (``aws lambda invoke``), an EventBridge Scheduler schedule (its target ``Input``;
put ``<aws.scheduler.scheduled-time>`` in the run id so a schedule's retried delivery starts nothing
twice) or an EventBridge rule (an ``InputTransformer`` building that object from the event, with the
event's ``id`` in the run id). ``input`` defaults to ``{}`` and ``run_id`` to ``<workflow>-<random>``.

It reads the current definition of ``workflow`` from the ``workflows`` collection (``flowkit
publish``) and calls ``start_config``: idempotent on the run id, and no pydantic on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flowkit.errors import EventError, RunError
from flowkit.runtime.definitions import DEFAULT_COLLECTION, Definitions
from flowkit.runtime.start import start_config
from flowkit.runtime.store import Store

__all__ = ["start_published"]

logger = logging.getLogger(__name__)

_FIELDS = frozenset({"workflow", "input", "run_id"})


def parse_request(event: Any) -> tuple[str, dict[str, Any], str | None]:
    """``(workflow, input, run_id)`` of a starter invocation; ``EventError`` naming what is wrong."""
    if not isinstance(event, Mapping):
        raise EventError(f"a start request is a JSON object, got {type(event).__name__}")
    unknown = sorted(set(event) - _FIELDS)
    if unknown:
        raise EventError(
            f"a start request has only workflow, input and run_id; unknown field(s): {', '.join(unknown)}"
        )
    workflow = event.get("workflow")
    if not isinstance(workflow, str) or not workflow:
        raise EventError(f"start request: 'workflow' must be a workflow name, got {workflow!r}")
    run_input = event.get("input", {})
    if run_input is None:
        run_input = {}
    if not isinstance(run_input, dict):
        raise EventError(f"start request: 'input' must be a JSON object, got {type(run_input).__name__}")
    run_id = event.get("run_id")
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        raise EventError(f"start request: 'run_id' must be a non-empty string, got {run_id!r}")
    return workflow, run_input, run_id


def start_published(store: Store, event: Any, *, collection: str = DEFAULT_COLLECTION) -> dict[str, Any]:
    """Start (or find, for a known run id) a run of the published definition named in ``event``."""
    workflow, run_input, run_id = parse_request(event)
    document = Definitions(store.database, collection).document(workflow)
    if document is None:
        raise RunError(
            f"workflow {workflow!r} is not published in collection {collection!r}: "
            "run `flowkit publish TARGET` first",
            workflow=workflow,
        )
    run = start_config(store, document, run_input, run_id=run_id)
    return {"run_id": run["_id"], "workflow": workflow, "version": run["version"], "status": run["status"]}
