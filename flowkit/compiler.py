"""DSL -> ``WorkflowDocument``: deterministic, versioned by content hash, validated.

How a composition becomes a document:

- **Phases** are the top-level stages of the root sequence (a root that is not a sequence is one
  stage). A stage that is a single job is named after the job; any other stage is ``stage-N`` (N is
  its 1-based position).
- **needs**: a job needs the tails of what came before it in its sequence (the tails of a ``parallel``
  are the tails of all its branches; of a ``when``, the tails of both arms, and the upstream tails
  in place of an absent or empty arm), plus its explicit ``needs=``. Sorted. (The upstream tails of
  an absent arm are implied transitively through the other arm anyway; the direct need keeps the
  join explicit and gives the job their outputs in ``event["needs"]``.)
- **when**: every job inside an arm carries ``condition`` = AND of the guards of every enclosing arm
  (``cond`` for ``then``, ``not cond`` for ``otherwise``); one ``Branch`` per ``when`` (``when-1``,
  ``when-2``, ... in compile order) keeps the raw condition and the job names of each arm.
- **handled_by** of a job lists the jobs whose effective condition is a *failure path* of it
  (``flowkit.conditions.failure_paths``: the condition can hold when the job failed, never when it
  succeeded, e.g. ``charge.failed`` or ``charge.error_type == "CardDeclined"``); **failure_handled**
  is set when that list is not empty. At run time the failure is handled only if one of those jobs
  actually runs (docs/dsl.md, "Failure paths").
- **run_on** is ``all_done`` for ``always(job)``, else ``all_success``.
- Jobs are listed by phase, then in declaration order. ``version`` is ``content_version`` of the dump.

Problems that only exist in the DSL (a job object used twice, an empty ``parallel()``, a body-less
job without target, ...) are collected here; graph problems come from ``flowkit.validation``. ``compile``
reports all of them at once in ``InvalidWorkflow.problems``.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowkit.conditions import failure_paths
from flowkit.document import SCHEMA_VERSION, RetryPolicy, WorkflowDocument, content_version_and_size
from flowkit.dsl.job import Job
from flowkit.dsl.nodes import Node, Parallel, Serial, When
from flowkit.dsl.options import Retry, seconds
from flowkit.dsl.workflow import Workflow, iter_jobs
from flowkit.errors import InvalidWorkflow
from flowkit.naming import FUNCTION_NAME_LIMIT, function_name
from flowkit.vocab import (
    DEFAULT_NOTIFY_ON,
    ERROR_MESSAGE_LIMIT,
    INLINE_LIMIT,
    NOTIFY_KINDS,
    RUN_DOCUMENT_BOUND,
)

if TYPE_CHECKING:
    from flowkit.validation import Report

__all__ = ["compile", "compile_with_report", "validate"]

logger = logging.getLogger(__name__)

_NOTIFY_KINDS = tuple(kind.value for kind in NOTIFY_KINDS)
_JITTERS = ("none", "full")
_NO_RETRY = RetryPolicy().model_dump(mode="json")
_NO_NOTIFY = {
    "slack_channel": None,
    "on": [kind.value for kind in DEFAULT_NOTIFY_ON],
    "mention": None,
    "webhook": False,
}


@dataclass
class _Entry:
    job: Job
    phase: str
    needs: set[str]
    guards: tuple[dict[str, Any], ...]


@dataclass
class _Builder:
    workflow: Workflow
    problems: list[str] = field(default_factory=list)
    entries: list[_Entry] = field(default_factory=list)
    branches: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[int, Job] = field(default_factory=dict)

    def build(self, root: Node) -> tuple[list[dict[str, Any]], list[_Entry]]:
        stages = root.items if isinstance(root, Serial) else (root,)
        if not stages:
            self.problems.append(f"workflow {self.workflow.name!r}: empty sequence() (it has no jobs)")
        phases: list[dict[str, Any]] = []
        used: set[str] = set()
        upstream: frozenset[str] = frozenset()
        for i, stage in enumerate(stages, start=1):
            name = stage.name if isinstance(stage, Job) else f"stage-{i}"
            if name in used:  # a job used twice: keep phase names unique
                name = f"stage-{i}"
            used.add(name)
            first = len(self.entries)
            upstream = self.visit(stage, upstream, (), name)
            phases.append({"name": name, "jobs": [e.job.name for e in self.entries[first:]]})
        return phases, self.entries

    def visit(
        self, node: Node, upstream: frozenset[str], guards: tuple[dict[str, Any], ...], phase: str
    ) -> frozenset[str]:
        """Add the jobs of ``node`` after ``upstream``; return the tails the next stage must wait for."""
        if isinstance(node, Job):
            return self.add_job(node, upstream, guards, phase)
        if isinstance(node, Serial | Parallel) and not node.items:
            kind = "sequence" if isinstance(node, Serial) else "parallel"
            self.problems.append(
                f"workflow {self.workflow.name!r}: empty {kind}() {_where(upstream)}: give it at least one job"
            )
            return upstream
        if isinstance(node, Serial):
            tails = upstream
            for item in node.items:
                tails = self.visit(item, tails, guards, phase)
            return tails
        if isinstance(node, Parallel):
            result: set[str] = set()
            for item in node.items:
                result |= self.visit(item, upstream, guards, phase)
            return frozenset(result)
        if isinstance(node, When):
            return self.add_when(node, upstream, guards, phase)
        raise TypeError(f"not a flowkit node: {node!r}")  # unreachable through the public API

    def add_job(
        self, job: Job, upstream: frozenset[str], guards: tuple[dict[str, Any], ...], phase: str
    ) -> frozenset[str]:
        if id(job) in self.seen:
            self.problems.append(
                f"job {job.name!r} is used twice in workflow {self.workflow.name!r}: "
                f"use {job.name}.named('<another-name>') for the second use"
            )
            return frozenset({job.name})
        self.seen[id(job)] = job
        self.entries.append(_Entry(job, phase, set(upstream) | set(job.needs), guards))
        return frozenset({job.name})

    def add_when(
        self, node: When, upstream: frozenset[str], guards: tuple[dict[str, Any], ...], phase: str
    ) -> frozenset[str]:
        cond = node.condition.ast
        branch = {"id": f"when-{len(self.branches) + 1}", "condition": cond, "then": [], "otherwise": []}
        self.branches.append(branch)
        then_tails = self.visit(node.then, upstream, (*guards, cond), phase)
        if node.otherwise is None:
            otherwise_tails = upstream
        else:
            negated = {"op": "not", "args": [cond]}
            otherwise_tails = self.visit(node.otherwise, upstream, (*guards, negated), phase)
        branch["then"] = [j.name for j in iter_jobs(node.then)]
        if node.otherwise is not None:
            branch["otherwise"] = [j.name for j in iter_jobs(node.otherwise)]
        return then_tails | otherwise_tails


def _where(upstream: frozenset[str]) -> str:
    if not upstream:
        return "at the start"
    return "after " + ", ".join(repr(n) for n in sorted(upstream))


def _json(value: Any, *, what: str, problems: list[str]) -> Any:
    if not value:
        return {}
    try:
        return json.loads(json.dumps(value, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as exc:
        problems.append(f"{what} is not JSON: {exc}")
        return None


class _Specs:
    """Turns builder entries into dumped ``JobSpec``s, applying the workflow defaults.

    The compiler writes the JSON form directly (exactly what ``model_dump(mode="json")`` gives) and
    validates the whole document once at the end: far cheaper than one model per object.
    """

    def __init__(self, workflow: Workflow, problems: list[str]) -> None:
        self.workflow = workflow
        self.defaults = workflow.defaults
        self.problems = problems

    def retry(self, job: Job) -> dict[str, Any]:
        retry: Retry | None = job.retry if job.retry is not None else self.defaults.retry
        if retry is None:
            return dict(_NO_RETRY)
        jitter = retry.jitter
        if jitter not in _JITTERS:
            self.problems.append(
                f"job {job.name!r} has Retry(jitter={jitter!r}): use one of {', '.join(map(repr, _JITTERS))}"
            )
            jitter = "none"
        return {
            "max_attempts": retry.attempts,
            "interval_seconds": seconds(retry.interval, what="interval") or 0.0,
            "backoff_rate": float(retry.backoff),
            "max_delay_seconds": seconds(retry.max_delay, what="max_delay"),
            "jitter": jitter,
            "on": list(retry.on) if retry.on is not None else None,
            "not_on": list(retry.not_on),
        }

    def target(self, job: Job) -> dict[str, Any]:
        function = job.target
        if function is None:
            if job.fn is None:
                self.problems.append(
                    f"job {job.name!r} has no body and no target: pass "
                    f"job({job.name!r}, target='<function name or ARN>')"
                )
            function = self.defaults.jobs_function if job.fn is not None else None
            if function is None:
                prefix = self.defaults.function_prefix
                function = prefix + function_name(job.name, limit=max(1, FUNCTION_NAME_LIMIT - len(prefix)))
        qualifier = job.qualifier if job.qualifier is not None else self.defaults.qualifier
        return {"function": function, "qualifier": qualifier}

    def spec(self, entry: _Entry, condition: dict[str, Any] | None, handled_by: list[str]) -> dict[str, Any]:
        job = entry.job
        job_input = _json(dict(job.input), what=f"job {job.name!r}: input", problems=self.problems)
        timeout = job.timeout if job.timeout is not None else seconds(self.defaults.timeout, what="timeout")
        return {
            "name": job.name,
            "description": job.description or "",
            "phase": entry.phase,
            "target": self.target(job),
            "handler": _handler(job),
            "needs": sorted(entry.needs),
            "condition": condition,
            "failure_handled": bool(handled_by),
            "handled_by": handled_by,
            "run_on": str(job.run_on),
            "retry": self.retry(job),
            "timeout_seconds": timeout,
            "heartbeat_seconds": job.heartbeat,
            "input": job_input or {},
        }


def _handler(job: Job) -> str | None:
    if job.fn is None:
        return None
    module = getattr(job.fn, "__module__", None) or "?"
    qualname = getattr(job.fn, "__qualname__", None) or getattr(job.fn, "__name__", "?")
    return f"{module}:{qualname}"


def _condition(guards: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    if not guards:
        return None
    if len(guards) == 1:
        return guards[0]
    return {"op": "and", "args": list(guards)}


def _notifications(workflow: Workflow, problems: list[str]) -> dict[str, Any]:
    notify = workflow.notify
    if notify is None:
        return dict(_NO_NOTIFY)
    events: list[Any] = []
    for event in notify.on:
        if event in _NOTIFY_KINDS:
            events.append(str(event))
        else:
            problems.append(
                f"workflow {workflow.name!r}: Notify(on=...) has unknown event {event!r} "
                f"(use {', '.join(_NOTIFY_KINDS)})"
            )
    return {
        "slack_channel": notify.slack_channel,
        "on": events,
        "mention": notify.mention,
        "webhook": bool(notify.webhook),
    }


def build_document(workflow: Workflow) -> tuple[WorkflowDocument, list[str]]:
    """The document and the DSL-level problems (not yet the graph checks)."""
    if not isinstance(workflow, Workflow):
        raise TypeError(f"compile() expects a @workflow, got {workflow!r} ({type(workflow).__name__})")
    builder = _Builder(workflow)
    phases, entries = builder.build(workflow.build())
    problems = builder.problems
    conditions = [_condition(e.guards) for e in entries]
    handled_by: dict[str, list[str]] = {}
    for entry, cond in zip(entries, conditions, strict=True):
        if cond is not None:
            for failed in sorted(failure_paths(cond)):
                handled_by.setdefault(failed, []).append(entry.job.name)
    specs = _Specs(workflow, problems)
    jobs = [
        specs.spec(e, c, sorted(handled_by.get(e.job.name, ())))
        for e, c in zip(entries, conditions, strict=True)
    ]
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": workflow.name,
        "version": "",
        "description": workflow.description,
        "timeout_seconds": workflow.timeout,
        "phases": phases,
        "jobs": jobs,
        "branches": builder.branches,
        "notifications": _notifications(workflow, problems),
    }
    data["version"], json_size = content_version_and_size(data)
    if _may_outgrow_a_run_document(data, json_size):
        # A run document must stay under its bound whatever its jobs return (start_run checks it
        # again with the input): measured exactly, which needs bson and the runtime's sizes.
        from flowkit.runtime.start import config_problem

        too_big = config_problem(data)
        if too_big is not None:
            problems.append(too_big)
    return WorkflowDocument.model_validate(data), problems


def _may_outgrow_a_run_document(data: dict[str, Any], json_size: int) -> bool:
    """A quick upper bound of a run's worst size (no bson): False means it surely fits the bound.

    BSON takes at most 7 bytes for each byte of compact JSON (the worst: long arrays of one-digit
    numbers, whose BSON elements carry their index as a key: 12 bytes for the 2 of ``1,`` at index
    100,000); a job's entry, with its worst growth, takes at
    most 2 KiB plus ``INLINE_LIMIT + 256`` bytes per attempt; the run's own fields at most 4 bytes per
    character of a cut cancel reason plus 4 KiB. Small workflows never load bson this way.
    """
    jobs = data.get("jobs") or []
    per_jobs = sum(
        2048 + INLINE_LIMIT + int((spec.get("retry") or {}).get("max_attempts", 1)) * (INLINE_LIMIT + 256)
        for spec in jobs
    )
    return 7 * json_size + per_jobs + 4 * ERROR_MESSAGE_LIMIT + 4096 > RUN_DOCUMENT_BOUND


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects.

    Compiling allocates a few objects per job and frees nothing, so each generation-2 collection
    rescans an ever larger heap: measured, that made 10,000 jobs cost 2x more than 10 x 1,000
    (``benchmarks/bench_compile.py``). Reference counting still frees everything; the previous
    state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_with_report(workflow: Workflow) -> tuple[WorkflowDocument, Report]:
    """Compile without raising: the document and a ``flowkit.validation.Report`` with every problem."""
    from flowkit.validation import Report, validate_document

    with _gc_paused():
        doc, problems = build_document(workflow)
        report = validate_document(doc)
    return doc, Report(errors=sorted(set(problems) | set(report.errors)), warnings=report.warnings)


def validate(target: WorkflowDocument | Workflow) -> Report:  # the public verb
    """Validate a compiled document, or a workflow (DSL problems included); never raises for problems."""
    if isinstance(target, WorkflowDocument):
        from flowkit.validation import validate_document

        return validate_document(target)
    return compile_with_report(target)[1]


def compile(workflow: Workflow) -> WorkflowDocument:  # the public verb
    """Compile a workflow to its document; ``InvalidWorkflow`` lists every problem at once."""
    doc, report = compile_with_report(workflow)
    if report.errors:
        count = len(report.errors)
        raise InvalidWorkflow(
            f"workflow {workflow.name!r} is invalid ({count} problem{'s' if count > 1 else ''}): "
            + "; ".join(report.errors),
            problems=report.errors,
            workflow=workflow.name,
        )
    logger.debug("compiled workflow %s: %d jobs, version %s", doc.name, len(doc.jobs), doc.version)
    return doc
