"""Pure decisions on a run document: what is ready, what is skipped, the current phase, the outcome.

No I/O here. Every function reads a run as stored (a plain dict: ``{"config": {...}, "input": {...},
"jobs": {name: {"state": ..., "attempt": ..., "output": ...}}, ...}``) and returns a decision; the
handlers turn decisions into compare-and-set updates. All decisions are monotone: a job's needs, once
terminal, stay terminal, so a decision taken on an older snapshot is never wrong, only incomplete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flowkit.conditions import evaluate
from flowkit.vocab import FAILED_STATES, JOB_TERMINAL_STATES, JobState, RunStatus

__all__ = ["Decision", "condition_context", "current_phase", "decide", "job_specs", "outcome"]

Doc = Mapping[str, Any]

TERMINAL: Final = JOB_TERMINAL_STATES
FAILED: Final = FAILED_STATES
_SATISFIED: Final = frozenset({JobState.SUCCEEDED, JobState.SKIPPED})


@dataclass(frozen=True)
class Decision:
    """Pending jobs whose needs are satisfied, split by their condition."""

    claim: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)


def job_specs(run: Doc) -> list[Mapping[str, Any]]:
    """The job specs of the run's embedded configuration, in document order."""
    specs: list[Mapping[str, Any]] = run["config"]["jobs"]
    return specs


def _satisfied(spec: Mapping[str, Any], state: str) -> bool:
    if state in _SATISFIED:
        return True
    return state in FAILED and bool(spec.get("failure_handled", False))


def condition_context(run: Doc) -> dict[str, Any]:
    """What a condition sees: the run input, and each job's status (and output once it succeeded)."""
    jobs: dict[str, dict[str, Any]] = {}
    for name, job in run["jobs"].items():
        view: dict[str, Any] = {"status": job["state"]}
        if job["state"] == JobState.SUCCEEDED:
            view["output"] = job.get("output")
        jobs[name] = view
    return {"input": run.get("input") or {}, "jobs": jobs}


def decide(run: Doc) -> Decision:
    """Rule 3: every pending job whose needs are satisfied, to claim (condition true) or to skip.

    Nothing is ready on a run that has ended, or that this snapshot shows must fail.
    """
    if run.get("status", RunStatus.RUNNING) != RunStatus.RUNNING or outcome(run) == RunStatus.FAILED:
        return Decision()
    jobs = run["jobs"]
    specs = {spec["name"]: spec for spec in job_specs(run)}
    decision = Decision()
    context: dict[str, Any] | None = None
    for name, spec in specs.items():
        job = jobs.get(name)
        if job is None or job["state"] != JobState.PENDING:
            continue
        if not all(
            need in jobs and _satisfied(specs.get(need, {}), jobs[need]["state"])
            for need in spec.get("needs", ())
        ):
            continue
        condition = spec.get("condition")
        if condition is None:
            decision.claim.append(name)
            continue
        if context is None:
            context = condition_context(run)
        (decision.claim if evaluate(condition, context) else decision.skip).append(name)
    return decision


def outcome(run: Doc) -> RunStatus | None:
    """Rule 5: ``failed`` as soon as a job failed unhandled, ``succeeded`` once every job is terminal."""
    specs = {spec["name"]: spec for spec in job_specs(run)}
    all_terminal = True
    for name, job in run["jobs"].items():
        state = job["state"]
        if state in FAILED and not specs.get(name, {}).get("failure_handled", False):
            return RunStatus.FAILED
        if state not in TERMINAL:
            all_terminal = False
    return RunStatus.SUCCEEDED if all_terminal else None


def current_phase(run: Doc) -> tuple[int, str | None]:
    """Rule 6: ``(index, name)`` of the first phase with a non-terminal job; ``(len, None)`` if none."""
    phases = run["config"]["phases"]
    jobs = run["jobs"]
    for index, phase in enumerate(phases):
        if any(jobs[name]["state"] not in TERMINAL for name in phase["jobs"] if name in jobs):
            return index, phase["name"]
    return len(phases), None
