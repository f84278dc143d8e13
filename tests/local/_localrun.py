"""Helpers for the local-runner tests: the example workflows and a comparable view of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowkit.loader import load_workflows
from flowkit.local.runner import LocalRun

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def example(name: str) -> Any:
    """The workflow defined in ``workflows/<name>.py``."""
    [found] = load_workflows(str(WORKFLOWS / f"{name}.py"))
    return found


def outcome(run: LocalRun) -> dict[str, Any]:
    """What must not depend on delivery order: run status, and each job's state/attempt/output/error."""
    return {
        "status": run.status,
        "jobs": {
            name: (
                job.state.value,
                job.attempt,
                job.output,
                None if job.error is None else job.error.model_dump(),
            )
            for name, job in run.jobs.items()
        },
    }
