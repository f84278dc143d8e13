"""Pure decisions on a run: what is ready, what is skipped, the current phase, the outcome.

No I/O here. Two views of the same rules:

- **Whole document** (``decide``, ``outcome``, ``current_phase``): every function reads a run as
  stored (a plain dict: ``{"config": {...}, "input": {...}, "jobs": {name: {"state": ..., "attempt":
  ..., "output": ...}}, ...}``) and returns a decision. This is the definition of the semantics; the
  handlers still decide on it only for runs started before the counters covered their workflow, and
  for hand-written documents whose failure path is not a descendant of the job it handles.
- **Per transition** (``Plan``, ``increments``, ``claim_sets``, ``claim_increments``, ``ready``,
  ``draining``, ``ended``), for every other workflow (``Plan.counted``): ``Plan`` is derived once from
  a run's configuration (each job's dependents, the jobs its condition reads, its phase, its failure
  paths and the jobs they gate, the ``always`` jobs); ``increments`` says which counters a job's new
  state moves (``remaining`` jobs not yet terminal, ``unhandled`` failures, ``always_left``, every
  dependent's ``unmet`` needs and an ``always`` dependent's ``waits``, a skipped failure path's
  ``paths.<job>.left``), ``claim_sets`` / ``claim_increments`` what a claim sets and moves
  (``paths.<job>.taken``, ``waits``); ``ready`` picks the pending jobs whose ``unmet`` reached zero
  (and whose failed gates have a failure path taken; on a draining run the ``always`` jobs with no
  ``waits``) out of a projected snapshot; ``ended`` reads the outcome off the counters. Each costs what
  the transition touches (the job, its dependents, the jobs it handles), never the size of the
  workflow. ``counters`` computes the counters from a whole document; the tests check that both views
  agree at every step.

All decisions are monotone: a job's needs, once terminal, stay terminal, so a decision taken on an
older snapshot is never wrong, only incomplete.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flowkit.conditions import check, evaluate, referenced_jobs
from flowkit.vocab import FAILED_STATES, JOB_TERMINAL_STATES, JobState, RunOn, RunStatus

__all__ = [
    "COUNTERS_VERSION",
    "Decision",
    "Plan",
    "claim_increments",
    "claim_sets",
    "condition_context",
    "condition_problem",
    "counters",
    "current_phase",
    "decide",
    "draining",
    "ended",
    "failure_taken",
    "increments",
    "initial_counters",
    "initial_paths",
    "initial_waits",
    "is_always",
    "job_specs",
    "outcome",
    "ready",
    "retry_delay",
    "retryable",
]

Doc = Mapping[str, Any]
"""A run as stored (``flowkit.runtime.documents.RunDoc``), or a projected snapshot of one."""

TERMINAL: Final = JOB_TERMINAL_STATES  # ``waiting`` (for a retry) is not: dependents wait, the run goes on
FAILED: Final = FAILED_STATES
_SATISFIED: Final = frozenset({JobState.SUCCEEDED, JobState.SKIPPED})
_NOT_TAKEN: Final = frozenset({JobState.SKIPPED, JobState.CANCELLED})
"""States of a failure path that did not (and will not) run."""


@dataclass(frozen=True)
class Decision:
    """Pending jobs whose needs are satisfied, split by their condition.

    ``drain``: the run is failing and still has ``always`` jobs to run; store that first
    (``Store.start_draining``) and decide again on the document it returns.

    ``broken`` maps a job to why its condition cannot be evaluated by this runtime (an unknown
    operator in a document edited by hand or written by a newer flowkit): such a job fails.
    """

    claim: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    drain: bool = False
    broken: dict[str, str] = field(default_factory=dict)


def job_specs(run: Doc) -> list[Mapping[str, Any]]:
    """The job specs of the run's embedded configuration, in document order."""
    specs: list[Mapping[str, Any]] = run["config"]["jobs"]
    return specs


def is_always(spec: Mapping[str, Any]) -> bool:
    """Whether the job runs once its needs finished in any state (``always(job)``)."""
    return spec.get("run_on") == RunOn.ALL_DONE


def failure_taken(run: Doc, spec: Mapping[str, Any], claiming: Collection[str] = ()) -> bool | None:
    """For a failed job: was a failure path taken? ``True``, ``False`` (none can be), ``None`` (undecided).

    A failure path is a job listed in ``handled_by`` (its condition can only hold because this job
    failed). The failure is handled once one of them was claimed, and counts once all of them were
    skipped or cancelled. A document without ``handled_by`` treats ``failure_handled`` as handled.
    ``claiming``: jobs the caller is about to claim (as good as claimed: a claim of a pending job whose
    condition holds can only lose to another claim of it).
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
        if name in claiming:
            return True
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


def _satisfied(
    run: Doc,
    name: str,
    need: str,
    specs: Mapping[str, Mapping[str, Any]],
    state: str,
    claiming: Collection[str],
) -> bool:
    if state in _SATISFIED:
        return True
    if state not in FAILED:
        return False
    spec = specs.get(need, {})
    handlers = spec.get("handled_by")
    if handlers is not None and name in handlers:
        return bool(spec.get("failure_handled", False))  # a failure path decides on its own condition
    return failure_taken(run, spec, claiming) is True


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
    decided: set[str] = set()
    claiming: set[str] = set()
    paths: set[str] | None = None  # every job that is a failure path of some job
    again = True
    while again:  # once more when a claim takes a failure path: what needs the failed job is ready now
        again = False
        for name, spec in specs.items():
            job = jobs.get(name)
            if job is None or job["state"] != JobState.PENDING or name in decided:
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
                    need in jobs and _satisfied(run, name, need, specs, jobs[need]["state"], claiming)
                    for need in spec.get("needs", ())
                )
            if not ready:
                continue
            decided.add(name)
            condition = spec.get("condition")
            if condition is not None:
                if context is None:
                    context = condition_context(run)
                try:
                    verdict = bool(evaluate(condition, context))
                except Exception as exc:  # a condition this runtime cannot evaluate: fail the job, never loop
                    decision.broken[name] = condition_problem(name, condition, exc)
                    continue
                if not verdict:
                    decision.skip.append(name)
                    continue
            decision.claim.append(name)
            claiming.add(name)
            if paths is None:
                paths = {path for spec in specs.values() for path in spec.get("handled_by") or ()}
            again = again or name in paths
    return decision


def condition_problem(name: str, condition: Any, exc: BaseException) -> str:
    """Why the condition of job ``name`` cannot be evaluated, naming the job and the condition."""
    try:
        check(condition, where=f"condition of job {name!r}")
        why = f"condition of job {name!r}: {type(exc).__name__}: {exc}"
    except Exception as problem:
        why = str(problem)
    shown = repr(condition)
    shown = shown if len(shown) <= 300 else shown[:297] + "..."
    return f"{why}; this flowkit cannot evaluate it (condition: {shown})"


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


# ---------------------------------------------------------------------- per transition


@dataclass(frozen=True)
class Plan:
    """What never changes during a run, derived once from its configuration (cached per container)."""

    specs: Mapping[str, Mapping[str, Any]]
    dependents: Mapping[str, tuple[str, ...]]
    """Job -> the jobs that need it, in document order."""
    roots: tuple[str, ...]
    """Jobs with no needs: ready as soon as the run starts."""
    reads: Mapping[str, tuple[str, ...]]
    """Job -> the jobs its condition reads (empty without a condition)."""
    phase_of: Mapping[str, tuple[int, str]]
    """Job -> ``(index, name)`` of its phase."""
    phases: int
    counted: bool
    """Whether the counters decide: every failure path is a descendant of the job it handles (as in
    compiled workflows: a condition reads only jobs that finished before it), so a failure is recorded
    before any of its failure paths is decided."""
    paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Job -> its failure paths (``handled_by``, the ones the workflow has), for jobs that have any."""
    handles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Failure path -> the jobs whose failure it handles (the inverse of ``paths``)."""
    gates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Job -> its needs that have failure paths it is not one of: if such a need failed, the job waits
    until one of the need's failure paths was claimed (``paths.<need>.taken``)."""
    gated: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Job with failure paths -> the dependents it gates (the inverse of ``gates``)."""
    always: tuple[str, ...] = ()
    """The ``always`` jobs, in document order."""

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Plan:
        specs = {spec["name"]: spec for spec in config.get("jobs", ())}
        dependents: dict[str, list[str]] = {name: [] for name in specs}
        for name, spec in specs.items():
            for need in dict.fromkeys(spec.get("needs", ())):
                if need in dependents:
                    dependents[need].append(name)
        phase_of: dict[str, tuple[int, str]] = {}
        for index, phase in enumerate(config.get("phases", ())):
            for name in phase["jobs"]:
                phase_of.setdefault(name, (index, phase["name"]))
        paths = {
            name: tuple(dict.fromkeys(h for h in spec["handled_by"] if h in specs))
            for name, spec in specs.items()
            if spec.get("failure_handled") and spec.get("handled_by")
        }
        paths = {name: handlers for name, handlers in paths.items() if handlers}
        handles: dict[str, list[str]] = {}
        for name, handlers in paths.items():
            for handler in handlers:
                handles.setdefault(handler, []).append(name)
        gates = {
            name: tuple(
                need
                for need in dict.fromkeys(spec.get("needs", ()))
                if need in paths and name not in paths[need]
            )
            for name, spec in specs.items()
            if not is_always(spec)  # an always job waits for its needs to end, however they ended
        }
        gated: dict[str, list[str]] = {}
        for name, needs in gates.items():
            for need in needs:
                gated.setdefault(need, []).append(name)
        return cls(
            specs=specs,
            dependents={name: tuple(kids) for name, kids in dependents.items()},
            roots=tuple(name for name, spec in specs.items() if not unmet_needs(spec, specs)),
            reads={
                name: tuple(sorted(referenced_jobs(spec["condition"]) & specs.keys()))
                for name, spec in specs.items()
                if spec.get("condition") is not None
            },
            phase_of=phase_of,
            phases=len(config.get("phases", ())),
            counted=all(_descendants_include(dependents, name, handlers) for name, handlers in paths.items()),
            paths=paths,
            handles={name: tuple(jobs) for name, jobs in handles.items()},
            gates={name: needs for name, needs in gates.items() if needs},
            gated={name: tuple(jobs) for name, jobs in gated.items()},
            always=tuple(name for name, spec in specs.items() if is_always(spec)),
        )


def _descendants_include(dependents: Mapping[str, list[str]], job: str, wanted: Iterable[str]) -> bool:
    """Whether every job of ``wanted`` needs ``job``, directly or transitively: a walk over the jobs
    that need it, which stops as soon as all of them were met (near ones are met first)."""
    left = set(wanted) - {job}
    if job in set(wanted):
        return False
    seen = {job}
    queue = deque([job])
    while queue and left:
        for dependent in dependents.get(queue.popleft(), ()):
            if dependent not in seen:
                seen.add(dependent)
                left.discard(dependent)
                queue.append(dependent)
    return not left


def unmet_needs(spec: Mapping[str, Any], specs: Mapping[str, Any]) -> int:
    """How many distinct jobs of the workflow ``spec`` needs: its ``unmet`` count when the run starts."""
    return sum(1 for need in dict.fromkeys(spec.get("needs", ())) if need in specs)


COUNTERS_VERSION: Final = 4
"""The run document's ``counters``: 2 = the counters cover failure paths (``paths``), 3 = and ``always``
jobs (``always_left``, ``waits``), 4 = and the ``timers`` map (job -> due time) the timer sweep reads
instead of the jobs; absent in runs started by a flowkit that decided those workflows on
the whole ``jobs`` map."""
_MOVED: Final = TERMINAL - {JobState.CANCELLED}
"""Terminal states whose transition moves the counters (cancelling, on an ended run, moves only
``remaining``: nothing is decided on an ended run, and a redrive computes them again)."""


def initial_counters(config: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """``(run counters, job name -> unmet)`` of a new run: every job pending, nothing failed."""
    specs = {spec["name"]: spec for spec in config.get("jobs") or ()}
    return {"remaining": len(specs), "unhandled": 0}, {
        name: unmet_needs(spec, specs) for name, spec in specs.items()
    }


def initial_paths(plan: Plan) -> dict[str, Any]:
    """The run document's ``paths`` of a new run: per job with failure paths, ``left`` (its failure
    paths not skipped) and ``taken`` (one of them was claimed)."""
    return {name: {"left": len(handlers), "taken": False} for name, handlers in plan.paths.items()}


def initial_waits(plan: Plan) -> dict[str, int]:
    """The run document's ``waits`` of a new run: per ``always`` job, its needs that are ``always``
    jobs (nothing is claimed yet)."""
    return {
        name: sum(1 for need in dict.fromkeys(plan.specs[name].get("needs", ())) if need in plan.always)
        for name in plan.always
    }


def _waits_on(plan: Plan, need: str, state: str | None) -> bool:
    """Whether a need in ``state`` keeps an ``always`` job waiting on a draining run: it is not
    terminal, and it was claimed or is an ``always`` job itself (a pending ordinary job never runs).
    A cancelled need counts as it was when the run ended (cancelling moves no ``waits``): an ``always``
    one still does, an ordinary one (pending) does not."""
    if state == JobState.CANCELLED:
        return need in plan.always
    return state not in TERMINAL and (state != JobState.PENDING or need in plan.always)


def _satisfies(plan: Plan, job: str, state: str) -> bool:
    """Whether a job in ``state`` takes one off the ``unmet`` of the jobs that need it.

    A failure does when the job has failure paths (its non-path dependents then also wait for its
    ``paths.<job>.taken``: ``gates``), or is marked handled without naming them (older documents).
    """
    if state in _SATISFIED:
        return True
    if state not in FAILED:
        return False
    spec = plan.specs.get(job, {})
    return job in plan.paths or (bool(spec.get("failure_handled", False)) and spec.get("handled_by") is None)


def increments(
    plan: Plan, job: str, state: str, *, doomed: int = 0, pathless: bool = False
) -> dict[str, int]:
    """The ``$inc`` that goes with ``job`` becoming ``state`` (folded into that very update).

    A terminal state takes the job off ``remaining`` (an ``always`` job also off ``always_left``); one
    that satisfies its dependents takes one off each dependent's ``unmet`` (an ``always`` dependent's
    whatever the state); a failure no failure path can handle adds one to ``unhandled``. A skipped
    failure path takes one off ``paths.<job>.left`` of every job it handles; ``doomed``: how many of
    those it leaves failed with no failure path left (the caller knows: it is a compare-and-set on
    their ``left``), each one more ``unhandled``. An outcome (and the skip of an ``always`` job) takes
    one off the ``waits`` of its ``always`` dependents. A non-terminal state moves nothing.

    ``pathless``: the job has failure paths and every one of them was skipped before it failed (on a
    draining run an ``always`` failure path can be decided before the job it handles ended, when
    what lies between them is an ordinary job that will never run); its failure, recorded with a
    compare-and-set on ``paths.<job>.left`` being 0, adds one to ``unhandled`` (rule 3).
    """
    if state not in TERMINAL:
        return {}
    inc = {"remaining": -1}
    if job in plan.always and state in _MOVED:
        inc["always_left"] = -1
    satisfies = _satisfies(plan, job, state)
    for dependent in plan.dependents.get(job, ()):
        if dependent in plan.always:
            if state in _MOVED:
                inc[f"jobs.{dependent}.unmet"] = -1
                if state != JobState.SKIPPED or job in plan.always:
                    inc[f"waits.{dependent}"] = -1
        elif satisfies:
            inc[f"jobs.{dependent}.unmet"] = -1
    if state in FAILED and (not satisfies or (pathless and job in plan.paths)):
        inc["unhandled"] = 1
    if state == JobState.SKIPPED:
        for handled in plan.handles.get(job, ()):
            inc[f"paths.{handled}.left"] = -1
        if doomed:
            inc["unhandled"] = doomed
    return inc


def claim_increments(plan: Plan, job: str, *, claimed: bool = True) -> dict[str, int]:
    """The ``$inc`` of claiming an ordinary job (``claimed=False``: releasing the claim): one more (less)
    need its ``always`` dependents wait for on a draining run."""
    if job in plan.always:
        return {}
    step = 1 if claimed else -1
    return {f"waits.{d}": step for d in plan.dependents.get(job, ()) if d in plan.always}


def counters(run: Doc, plan: Plan | None = None) -> dict[str, Any]:
    """The counters of a run as its jobs' states say they are (``$set`` paths -> values): what the
    increments keep up transition by transition, computed from the whole document.

    Used where a run changes in one go (a redrive) and by the tests, which check that the counters the
    handlers moved are these. ``unmet`` is given for every job (an ``always`` job's counts its needs not
    ended), ``waits`` for every ``always`` job; ``paths.<job>.left`` counts the failure paths not
    skipped, ``taken`` whether one is past ``pending`` and was not skipped or cancelled
    (``failure_taken``). Jobs are cancelled only on an ended run, where nothing is decided any more,
    and cancelling moves only ``remaining``: a cancelled failure path still counts in ``left``.
    """
    plan = plan or Plan.of(run["config"])
    jobs = run["jobs"]
    states = {name: job["state"] for name, job in jobs.items()}
    values: dict[str, Any] = {"remaining": sum(1 for state in states.values() if state not in TERMINAL)}
    unhandled = 0
    for name, handlers in plan.paths.items():
        left = sum(1 for h in handlers if states.get(h, JobState.SKIPPED) != JobState.SKIPPED)
        taken = any(states.get(h, JobState.SKIPPED) not in (*_NOT_TAKEN, JobState.PENDING) for h in handlers)
        values[f"paths.{name}.left"] = left
        values[f"paths.{name}.taken"] = taken
        if states.get(name) in FAILED and left == 0:
            unhandled += 1
    for name, state in states.items():
        if state in FAILED and name in plan.specs and not _satisfies(plan, name, state):
            unhandled += 1
    values["unhandled"] = unhandled
    values["always_left"] = sum(1 for name in plan.always if states.get(name) not in _MOVED)
    for name in states:
        spec = plan.specs.get(name, {})
        needs = [need for need in dict.fromkeys(spec.get("needs", ())) if need in plan.specs]
        if name in plan.always:
            values[f"jobs.{name}.unmet"] = sum(1 for need in needs if states.get(need) not in _MOVED)
            values[f"waits.{name}"] = sum(1 for need in needs if _waits_on(plan, need, states.get(need)))
        else:
            values[f"jobs.{name}.unmet"] = sum(
                1 for need in needs if need not in states or not _satisfies(plan, need, states[need])
            )
    return values


def claim_sets(plan: Plan, job: str) -> dict[str, bool]:
    """The ``$set`` that goes with claiming ``job``: a failure path taken for every job it handles."""
    return {f"paths.{handled}.taken": True for handled in plan.handles.get(job, ())}


def ready(snapshot: Doc, candidates: Iterable[str], plan: Plan | None = None) -> list[str]:
    """Rule 3 on counters: the ``candidates`` that are pending with no unmet need, in order.

    ``snapshot`` holds the run's ``status``, ``unhandled`` and ``draining`` and at least the candidates'
    ``state`` and ``unmet``. Nothing is ready on a run that has ended, nor on one that shows an
    unhandled failure, except on a draining run (rule 9) the ``always`` jobs with no ``waits`` (each
    need ended, or is an ordinary job that will never run). With a ``plan``, an ordinary candidate with
    ``gates`` also needs each of those needs not failed, or failed with a failure path taken (the
    snapshot holds their ``state`` and ``paths.<need>.taken``).
    """
    if snapshot.get("status", RunStatus.RUNNING) != RunStatus.RUNNING:
        return []
    failing = bool(snapshot.get("unhandled", 0))
    if failing and (plan is None or not snapshot.get("draining")):
        return []
    jobs = snapshot.get("jobs", {})
    paths = snapshot.get("paths") or {}
    waits = snapshot.get("waits") or {}
    found = []
    for name in candidates:
        job = jobs.get(name)
        if job is None or job.get("state") != JobState.PENDING:
            continue
        if plan is not None and name in plan.always:
            if (waits.get(name) if failing else job.get("unmet")) == 0:
                found.append(name)
            continue
        if failing or job.get("unmet") != 0:
            continue
        if plan is not None and not all(
            need in jobs
            and jobs[need].get("state") is not None
            and (jobs[need]["state"] not in FAILED or bool((paths.get(need) or {}).get("taken")))
            for need in plan.gates.get(name, ())
        ):
            continue
        found.append(name)
    return found


def draining(snapshot: Doc) -> bool:
    """Rule 9 on counters: the run must drain (or is draining): failing with ``always`` jobs left."""
    return (
        snapshot.get("status", RunStatus.RUNNING) == RunStatus.RUNNING
        and bool(snapshot.get("unhandled", 0))
        and snapshot.get("always_left", 0) > 0
    )


def ended(snapshot: Doc) -> RunStatus | None:
    """Rule 5 on counters: ``failed`` once a failure is unhandled and no ``always`` job is left,
    ``succeeded`` once nothing remains."""
    if snapshot.get("unhandled", 0):
        return RunStatus.FAILED if snapshot.get("always_left", 0) <= 0 else None
    if snapshot.get("remaining", 1) <= 0:
        return RunStatus.SUCCEEDED
    return None


def retryable(spec: Mapping[str, Any], attempt: int, error_type: str | None) -> bool:
    """Whether a failed or timed-out ``attempt`` of the job gets another one (Step Functions' rules).

    ``max_attempts`` counts every try; ``on`` (None: every type) and ``not_on`` filter by error type;
    a ``DispatchError`` (the job cannot be handed to its target at all) is never retried.
    """
    policy: Mapping[str, Any] = spec.get("retry") or {}
    if attempt >= int(policy.get("max_attempts", 1)):
        return False
    if error_type == "DispatchError":
        return False
    if error_type in (policy.get("not_on") or ()):
        return False
    on = policy.get("on")
    return on is None or error_type in on


def retry_delay(spec: Mapping[str, Any], attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed ``attempt`` (1-based) before the next one.

    ``interval * backoff ** (attempt - 1)``, capped by ``max_delay``; with full jitter a uniform
    random time between 0 and that.
    """
    policy: Mapping[str, Any] = spec.get("retry") or {}
    interval = float(policy.get("interval_seconds", 1.0))
    backoff = float(policy.get("backoff_rate", 2.0))
    try:
        delay = interval * backoff ** max(attempt - 1, 0)
    except OverflowError:
        delay = float("inf")
    cap = policy.get("max_delay_seconds")
    if cap is not None:
        delay = min(delay, float(cap))
    delay = min(delay, 366 * 86400.0)  # a year: keeps a due time a valid date whatever the policy
    if policy.get("jitter") == "full":
        delay = (rng or random).uniform(0, delay)
    return max(delay, 0.0)
