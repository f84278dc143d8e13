"""What a failure notification says: whether a job's failure is handled, and which jobs failed a run.

Pure functions of a parsed status event and the run document (``config`` and ``jobs``), read by
``notifications_job`` for failure events only. A job failure is *handled* when one of its failure paths
(``handled_by``, see docs/dsl.md "Failure paths") holds for it: decided here from the event itself (its
error type) and the run as read, so the notification does not depend on whether the orchestrator has
already taken the path. A failure path whose condition reads a job that has not finished yet counts as
not holding: when in doubt, the failure pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from flowkit.conditions import evaluate
from flowkit.runtime import engine
from flowkit.runtime.events import Status
from flowkit.vocab import FAILED_STATES, EventStatus, JobState, NotifyKind

__all__ = ["PAGING_KINDS", "failure_kind", "run_failures"]

PAGING_KINDS: Final = frozenset(
    {NotifyKind.RUN_FAILED, NotifyKind.JOB_FAILED, NotifyKind.RUN_TIMED_OUT, NotifyKind.JOB_TIMED_OUT}
)
"""Kinds whose messages carry the workflow's ``mention`` (``<!here>``): failures nobody handles."""

_MAX_FAILURES: Final = 10


def _specs(run: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The run's job specs by name; none when the stored document has no readable configuration."""
    config = run.get("config")
    jobs = config.get("jobs") if isinstance(config, Mapping) else None
    if not isinstance(jobs, list) or not isinstance(run.get("jobs"), Mapping):
        return {}
    return {spec["name"]: spec for spec in jobs if isinstance(spec, Mapping) and "name" in spec}


def failure_kind(status: Status, run: Mapping[str, Any]) -> NotifyKind | None:
    """``job.failure_handled`` when a failure path of the job holds for this failure, else ``job.failed``.

    None when the job's retry policy gives this failed attempt another one: the failure does not count
    yet, and the ``retrying`` event that follows is what to notify (``job.retrying``).
    """
    specs = _specs(run)
    spec = specs.get(status.job or "", {})
    job = run["jobs"].get(status.job) if specs else None
    if job is not None:
        base = int(job.get("attempt_base") or 0)
        error_type = status.error.type if status.error is not None else None
        if engine.retryable(spec, status.attempt - base, error_type):
            return None
    if not spec.get("failure_handled", False):
        return NotifyKind.JOB_FAILED
    handlers = spec.get("handled_by")
    if handlers is None:  # a document from before handled_by: statically handled
        return NotifyKind.JOB_FAILURE_HANDLED
    context = engine.condition_context(run)
    view: dict[str, Any] = {"status": JobState.FAILED.value}
    if status.status is not EventStatus.FAILED:
        view["status"] = str(status.status.value)
    if status.error is not None:
        view["error"] = {"type": status.error.type, "message": status.error.message}
    context["jobs"][status.job] = view
    for name in handlers:
        condition = specs.get(name, {}).get("condition")
        if condition is not None and evaluate(condition, context):
            return NotifyKind.JOB_FAILURE_HANDLED
    return NotifyKind.JOB_FAILED


def run_failures(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failures that failed the run: ``[{"job", "state", "attempt", "error": {"type", "message"}}]``.

    Jobs that failed or timed out with no failure path taken, in document order (at most ten).
    """
    specs = _specs(run)
    found: list[dict[str, Any]] = []
    for name, spec in specs.items():
        job = run["jobs"].get(name)
        if job is None or job.get("state") not in FAILED_STATES:
            continue
        if engine.failure_taken(run, spec) is True:
            continue
        error = job.get("error") or {}
        found.append(
            {
                "job": name,
                "state": str(job["state"]),
                "attempt": int(job.get("attempt") or 0),
                "error": {"type": str(error.get("type", "")), "message": str(error.get("message", ""))},
            }
        )
        if len(found) == _MAX_FAILURES:
            break
    return found
