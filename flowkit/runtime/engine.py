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
from flowkit.vocab import FAILED_STATES, JOB_TERMINAL_STATES, JobState, RunOn, RunStatus

__all__ = [
    "Decision",
    "condition_context",
    "current_phase",
    "decide",
    "failure_taken",
    "is_always",
    "job_specs",
    "outcome",
]

Doc = Mapping[str, Any]

TERMINAL: Final = JOB_TERMINAL_STATES
FAILED: Final = FAILED_STATES
_SATISFIED: Final = frozenset({JobState.SUCCEEDED, JobState.SKIPPED})
_NOT_TAKEN: Final = frozenset({JobState.SKIPPED, JobState.CANCELLED})
"""States of a failure path that did not (and will not) run."""


@dataclass(frozen=True)
class Decision:
    """Pending jobs whose needs are satisfied, split by their condition.

    ``drain``: the run is failing and still has ``always`` jobs to run; store that first
    (``Store.start_draining``) and decide again on the document it returns.
    """

    claim: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    drain: bool = False


def job_specs(run: Doc) -> list[Mapping[str, Any]]:
    """The job specs of the run's embedded configuration, in document order."""
    specs: list[Mapping[str, Any]] = run["config"]["jobs"]
    return specs


def is_always(spec: Mapping[str, Any]) -> bool:
    """Whether the job runs once its needs finished in any state (``always(job)``)."""
    return spec.get("run_on") == RunOn.ALL_DONE


def failure_taken(run: Doc, spec: Mapping[str, Any]) -> bool | None:
    """For a failed job: was a failure path taken? ``True``, ``False`` (none can be), ``None`` (undecided).

    A failure path is a job listed in ``handled_by`` (its condition can only hold because this job
    failed). The failure is handled once one of them was claimed, and counts once all of them were
    skipped or cancelled. A document without ``handled_by`` treats ``failure_handled`` as handled.
    """
    if not spec.get("failure_handled", False):
        return False
    handlers = spec.get("handled_by")
    if handlers is None:
        return True
    jobs = run["jobs"]
    undecided = False
    for name in handlers:
        state = jobs[name]["state"] if name in jobs else JobState.SKIPPED
        if state == JobState.PENDING:
            undecided = True
        elif state not in _NOT_TAKEN:
            return True
    return None if undecided else False


def _failing(run: Doc, specs: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a job failed and no failure path was (or can still be) taken for it."""
    return any(
        job["state"] in FAILED and failure_taken(run, specs.get(name, {})) is False
        for name, job in run["jobs"].items()
    )


def _satisfied(run: Doc, name: str, need: str, specs: Mapping[str, Mapping[str, Any]], state: str) -> bool:
    if state in _SATISFIED:
        return True
    if state not in FAILED:
        return False
    spec = specs.get(need, {})
    handlers = spec.get("handled_by")
    if handlers is not None and name in handlers:
        return bool(spec.get("failure_handled", False))  # a failure path decides on its own condition
    return failure_taken(run, spec) is True


def condition_context(run: Doc) -> dict[str, Any]:
    """What a condition sees: the run input, each job's status, its output once it succeeded and its
    error once it failed."""
    jobs: dict[str, dict[str, Any]] = {}
    for name, job in run["jobs"].items():
        view: dict[str, Any] = {"status": job["state"]}
        if job["state"] == JobState.SUCCEEDED:
            view["output"] = job.get("output")
        elif job["state"] in FAILED and job.get("error") is not None:
            view["error"] = job["error"]
        jobs[name] = view
    return {"input": run.get("input") or {}, "jobs": jobs}


def decide(run: Doc) -> Decision:
    """Rule 3: every pending job whose needs are satisfied, to claim (condition true) or to skip.

    Nothing is ready on a run that has ended. On a run that this snapshot shows failing, only
    ``always`` jobs are: once the run is marked draining, an ``always`` job is ready when each need is
    terminal or can never run (a pending job that is not ``always``).
    """
    if run.get("status", RunStatus.RUNNING) != RunStatus.RUNNING:
        return Decision()
    jobs = run["jobs"]
    specs = {spec["name"]: spec for spec in job_specs(run)}
    failing = _failing(run, specs)
    if failing:
        if not any(is_always(specs[n]) and j["state"] not in TERMINAL for n, j in jobs.items() if n in specs):
            return Decision()
        if not run.get("draining", False):
            return Decision(drain=True)
    decision = Decision()
    context: dict[str, Any] | None = None
    for name, spec in specs.items():
        job = jobs.get(name)
        if job is None or job["state"] != JobState.PENDING:
            continue
        always = is_always(spec)
        if failing and not always:
            continue
        if always:
            ready = all(
                need in jobs
                and (
                    jobs[need]["state"] in TERMINAL
                    or (
                        failing
                        and jobs[need]["state"] == JobState.PENDING
                        and not is_always(specs.get(need, {}))
                    )
                )
                for need in spec.get("needs", ())
            )
        else:
            ready = all(
                need in jobs and _satisfied(run, name, need, specs, jobs[need]["state"])
                for need in spec.get("needs", ())
            )
        if not ready:
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
    """Rule 5: ``failed`` once a job failed unhandled and no ``always`` job is left to run;
    ``succeeded`` once every job is terminal."""
    specs = {spec["name"]: spec for spec in job_specs(run)}
    all_terminal = True
    always_left = False
    for name, job in run["jobs"].items():
        if job["state"] not in TERMINAL:
            all_terminal = False
            always_left = always_left or is_always(specs.get(name, {}))
    if _failing(run, specs):
        return None if always_left else RunStatus.FAILED
    return RunStatus.SUCCEEDED if all_terminal else None


def current_phase(run: Doc) -> tuple[int, str | None]:
    """Rule 6: ``(index, name)`` of the first phase with a non-terminal job; ``(len, None)`` if none."""
    phases = run["config"]["phases"]
    jobs = run["jobs"]
    for index, phase in enumerate(phases):
        if any(jobs[name]["state"] not in TERMINAL for name in phase["jobs"] if name in jobs):
            return index, phase["name"]
    return len(phases), None
