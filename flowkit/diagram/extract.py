"""Compiled document (+ optional run state) -> ``DiagramGraph``.

Edges follow the document's ``needs``. An edge that enters a ``when`` arm is routed through that
``when``'s decision node and leaves it on an edge labelled with the condition (``then``) or
``otherwise``; nested arms chain decisions, outermost first. An empty arm (a ``when`` without
``otherwise``) is drawn as an ``otherwise`` edge from the decision to whatever follows the ``when``
(or to the end). A job with a condition but no enclosing ``branches`` entry gets a decision of its own,
so every conditional job is drawn behind a labelled edge.

Arms are taken as the compiler writes them: the jobs of an arm form one block whose entry jobs need
the jobs before the ``when``, so one decision node can stand for all of them. Needs implied by other
needs are not drawn (``_reduced_needs``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from flowkit import conditions
from flowkit.diagram import _text
from flowkit.diagram.model import (
    DiagramCluster,
    DiagramEdge,
    DiagramGraph,
    DiagramNode,
    EdgeKind,
    NodeKind,
)
from flowkit.document import JobRun, JobState, Run, WorkflowDocument
from flowkit.errors import RenderError

__all__ = ["END", "LEGEND_STATES", "START", "RunState", "extract"]

logger = logging.getLogger(__name__)

START = "@start"
END = "@end"

RunState = Run | Mapping[str, JobState | str]
"""What a diagram can colour jobs from: a stored ``Run``, or ``{job name: state}``."""

LEGEND_STATES = (
    JobState.PENDING,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.SKIPPED,
)
"""Always in the legend of a run diagram; other states are added when a job is in them."""


@dataclass(frozen=True, slots=True)
class _Arm:
    decision: str
    kind: EdgeKind
    label: str
    jobs: frozenset[str]


@dataclass(slots=True)
class _RunInfo:
    states: dict[str, JobState]
    jobs: dict[str, JobRun]
    label: str | None


def extract(document: WorkflowDocument, run: RunState | None = None) -> DiagramGraph:
    """Build the neutral diagram of a compiled workflow, coloured by ``run`` when given."""
    return _Extractor(document, _run_info(document, run)).graph()


def _run_info(document: WorkflowDocument, run: RunState | None) -> _RunInfo | None:
    if run is None:
        return None
    names = {spec.name for spec in document.jobs}
    if isinstance(run, Run):
        if run.workflow != document.name:
            raise RenderError(
                f"run {run.id!r} is a run of workflow {run.workflow!r}, not of {document.name!r}",
                workflow=document.name,
                run_id=run.id,
            )
        if run.version != document.version:
            logger.warning(
                "run %s was started with version %s of %s; drawing version %s",
                run.id,
                run.version,
                document.name,
                document.version,
            )
        info = _RunInfo(
            {n: j.state for n, j in run.jobs.items()}, dict(run.jobs), f"run {run.id}: {run.status}"
        )
    elif isinstance(run, Mapping):
        states: dict[str, JobState] = {}
        bad = []
        for name, value in run.items():
            try:
                states[str(name)] = JobState(value)
            except ValueError:
                bad.append(f"job {name!r}: {value!r}")
        if bad:
            allowed = ", ".join(state.value for state in JobState)
            raise RenderError(
                f"run state is not a job state for {'; '.join(sorted(bad))} (allowed: {allowed})",
                workflow=document.name,
            )
        info = _RunInfo(states, {}, None)
    else:
        raise RenderError(
            f"run must be a flowkit.document.Run or a mapping {{job name: state}}, got {type(run).__name__}",
            workflow=document.name,
        )
    unknown = sorted(set(info.states) - names)
    if unknown:
        raise RenderError(
            f"the run has states for {', '.join(map(repr, unknown))}, which workflow "
            f"{document.name!r} does not define",
            workflow=document.name,
        )
    return info


class _Extractor:
    def __init__(self, document: WorkflowDocument, run: _RunInfo | None) -> None:
        self.doc = document
        self.run = run
        self.specs = {spec.name: spec for spec in document.jobs}
        self.nodes: dict[str, DiagramNode] = {}
        self.order: list[str] = []
        self.phase_of: dict[str, str | None] = {}
        self.edges: dict[tuple[str, str, EdgeKind], DiagramEdge] = {}
        self.arms_of: dict[str, list[_Arm]] = defaultdict(list)
        self.empty_arms: list[tuple[str, frozenset[str], _Arm]] = []

    # ------------------------------------------------------------------ building blocks

    def _add_node(self, node: DiagramNode, phase: str | None = None) -> None:
        if node.id not in self.nodes:
            self.nodes[node.id] = node
            self.order.append(node.id)
            self.phase_of[node.id] = phase

    def _add_edge(self, source: str, target: str, kind: EdgeKind = EdgeKind.NORMAL, label: str = "") -> None:
        self.edges.setdefault((source, target, kind), DiagramEdge(source, target, kind, label))

    def _common_phase(self, jobs: Iterable[str]) -> str | None:
        phases = {
            self.phase_of.get(job, self.specs[job].phase if job in self.specs else None) for job in jobs
        }
        return phases.pop() if len(phases) == 1 else None

    # ------------------------------------------------------------------ steps

    def graph(self) -> DiagramGraph:
        self._add_node(DiagramNode(START, NodeKind.START, "start"))
        self._collect_arms()
        needs = _reduced_needs(self.doc)
        for spec in self.doc.jobs:
            unknown = sorted(need for need in spec.needs if need not in self.specs)
            if unknown:
                logger.warning("job %r needs undefined job(s) %s; drawn without them", spec.name, unknown)
            for source in needs[spec.name] or [START]:
                self._route(source, frozenset() if source == START else {source}, spec.name, None)
            self._add_job(spec.name)
        for decision, arm_jobs, arm in self.empty_arms:
            # what directly follows the when: jobs outside it with a (non-implied) need inside it
            after = [
                spec.name
                for spec in self.doc.jobs
                if spec.name not in arm_jobs and any(need in arm_jobs for need in needs[spec.name])
            ]
            for job in after:
                self._route(decision, arm_jobs, job, arm)
            if not after:
                self._add_edge(decision, END, arm.kind, arm.label)
        needed = {need for spec in self.doc.jobs for need in spec.needs}
        sinks = [spec.name for spec in self.doc.jobs if spec.name not in needed]
        for job in sinks if self.doc.jobs else [START]:
            self._add_edge(job, END)
        self._add_node(DiagramNode(END, NodeKind.END, "end"))
        self._insert_forks()
        self._insert_joins()
        return self._build()

    def _collect_arms(self) -> None:
        in_branch: set[str] = set()
        branches = [
            (
                f"@when/{b.id}".replace(":", "_"),
                _condition_text(b.condition, f"branch {b.id!r}"),
                b.then,
                b.otherwise,
            )
            for b in self.doc.branches
        ]
        for branch in self.doc.branches:
            in_branch.update(branch.then, branch.otherwise)
        for spec in self.doc.jobs:
            if spec.condition is not None and spec.name not in in_branch:
                branches.append(
                    (
                        f"@if/{spec.name}",
                        _condition_text(spec.condition, f"job {spec.name!r}"),
                        [spec.name],
                        [],
                    )
                )
        for decision, text, then, otherwise in branches:
            then_jobs = frozenset(job for job in then if job in self.specs)
            else_jobs = frozenset(job for job in otherwise if job in self.specs)
            all_jobs = then_jobs | else_jobs
            if not all_jobs:
                logger.warning("%s has no defined jobs; not drawn", decision)
                continue
            self.phase_of[decision] = self._common_phase(all_jobs)
            for kind, label, jobs in (
                (EdgeKind.THEN, text, then_jobs),
                (EdgeKind.OTHERWISE, "otherwise", else_jobs),
            ):
                arm = _Arm(decision, kind, label, jobs)
                if jobs:
                    for job in jobs:
                        self.arms_of[job].append(arm)
                else:
                    self.empty_arms.append((decision, all_jobs, arm))
        for arms in self.arms_of.values():
            arms.sort(key=lambda arm: -len(arm.jobs))  # outermost arm first (arms nest)

    def _route(self, source: str, source_jobs: frozenset[str] | set[str], job: str, arm: _Arm | None) -> None:
        """Edges from ``source`` to ``job`` through the decision of every arm entered on the way."""
        previous, previous_arm = source, arm
        for entered in self.arms_of.get(job, []):
            if source_jobs & entered.jobs:
                continue
            self._add_decision(entered.decision)
            self._add_arm_edge(previous, entered.decision, previous_arm)
            previous, previous_arm = entered.decision, entered
        self._add_arm_edge(previous, job, previous_arm)

    def _add_arm_edge(self, source: str, target: str, arm: _Arm | None) -> None:
        if arm is None:
            self._add_edge(source, target)
        else:
            self._add_edge(source, target, arm.kind, arm.label)

    def _add_decision(self, decision: str) -> None:
        self._add_node(DiagramNode(decision, NodeKind.DECISION), self.phase_of.get(decision))

    def _add_job(self, name: str) -> None:
        spec = self.specs[name]
        details = _text.job_details(spec)
        tooltip = [spec.description] if spec.description else []
        state = None
        if self.run is not None:
            state = self.run.states.get(name, JobState.PENDING)
            job_run = self.run.jobs.get(name)
            details.append(state.value + _attempts(job_run, spec.retry.max_attempts))
            if job_run is not None and job_run.error is not None:
                tooltip.append(f"{job_run.error.type}: {job_run.error.message}")
            elif job_run is not None and job_run.error_ref is not None:
                # a run exported without its results (flowkit status --diagram reads them back)
                tooltip.append(
                    f"error too long for the run document: results collection, {job_run.error_ref}"
                )
        self._add_node(
            DiagramNode(name, NodeKind.JOB, name, tuple(details), "\n".join(tooltip), state), spec.phase
        )

    def _insert_forks(self) -> None:
        """One arm entering several jobs: label one edge into a fork point, not every edge."""
        by_arm: dict[tuple[str, EdgeKind], list[DiagramEdge]] = defaultdict(list)
        for edge in self.edges.values():
            if edge.kind is not EdgeKind.NORMAL and self.nodes[edge.source].kind is NodeKind.DECISION:
                by_arm[edge.source, edge.kind].append(edge)
        for (decision, kind), edges in by_arm.items():
            if len(edges) < 2:
                continue
            fork = f"@fork/{decision[1:]}/{kind.value}"
            self._insert_before(edges[0].target, DiagramNode(fork, NodeKind.FORK), self.phase_of[decision])
            for edge in edges:
                del self.edges[edge.source, edge.target, edge.kind]
            self._add_edge(decision, fork, kind, edges[0].label)
            for edge in edges:
                self._add_edge(fork, edge.target, kind)

    def _insert_joins(self) -> None:
        """Several nodes waiting for the same set of jobs: route them through one join point."""
        preds: dict[str, list[str]] = defaultdict(list)
        for edge in self.edges.values():
            if edge.kind is EdgeKind.NORMAL:
                preds[edge.target].append(edge.source)
        groups: dict[frozenset[str], list[str]] = defaultdict(list)
        for target, incoming in preds.items():
            if len(incoming) >= 2 and target != END:
                groups[frozenset(incoming)].append(target)
        count = 0
        for sources, targets in groups.items():
            if len(targets) < 2:
                continue
            count += 1
            join = f"@join/{count}"
            self._insert_before(targets[0], DiagramNode(join, NodeKind.JOIN), self._common_phase(targets))
            ordered = [node for node in self.order if node in sources]
            for target in targets:
                for source in ordered:
                    del self.edges[source, target, EdgeKind.NORMAL]
            for source in ordered:
                self._add_edge(source, join)
            for target in targets:
                self._add_edge(join, target)

    def _insert_before(self, anchor: str, node: DiagramNode, phase: str | None) -> None:
        self.nodes[node.id] = node
        self.phase_of[node.id] = phase
        self.order.insert(self.order.index(anchor), node.id)

    def _build(self) -> DiagramGraph:
        by_phase: dict[str | None, list[str]] = defaultdict(list)
        for node in self.order:
            by_phase[self.phase_of.get(node)].append(node)
        clusters = []
        for index, phase in enumerate(self.doc.phases):
            members = tuple(by_phase.pop(phase.name, ()))  # pop: a phase listed twice is drawn once
            if members:
                clusters.append(DiagramCluster(f"cluster_{index}", phase.name, members))
        legend: tuple[JobState, ...] = ()
        if self.run is not None:
            used = {node.state for node in self.nodes.values() if node.state is not None}
            legend = tuple(s for s in JobState if s in LEGEND_STATES or s in used)
        return DiagramGraph(
            name=self.doc.name,
            description=self.doc.description,
            nodes=tuple(self.nodes[node] for node in self.order),
            edges=tuple(self.edges.values()),
            clusters=tuple(clusters),
            run_label=self.run.label if self.run is not None else None,
            legend=legend,
        )


def _attempts(job: JobRun | None, max_attempts: int) -> str:
    """Attempts used, after the state: `` (attempt 2 of 3)``; after a redrive, counted from it."""
    if job is None or job.attempt == 0:
        return ""
    if job.attempt_base:
        used = job.attempt - job.attempt_base
        return f" (attempt {job.attempt}: {used} of {max_attempts} since the redrive)"
    if max_attempts > 1:
        return f" (attempt {job.attempt} of {max_attempts})"
    return f" (attempt {job.attempt})" if job.attempt > 1 else ""


def _reduced_needs(document: WorkflowDocument) -> dict[str, list[str]]:
    """Each job's needs without those already implied by another need (a transitive reduction).

    ``report`` needing both ``extract`` and ``load`` (which needs ``extract``) is drawn with one edge
    from ``load``. Needs of undefined jobs are dropped; a cyclic document keeps every need.
    """
    index = {spec.name: i for i, spec in enumerate(document.jobs)}
    needs = {spec.name: [n for n in spec.needs if n in index] for spec in document.jobs}
    ancestors: dict[str, int] = {}  # bit set of every job a job transitively needs
    pending = {name: len(deps) for name, deps in needs.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for name, deps in needs.items():
        for dep in deps:
            dependents[dep].append(name)
    ready = [name for name, count in pending.items() if count == 0]
    while ready:
        name = ready.pop()
        bits = 0
        for dep in needs[name]:
            bits |= ancestors[dep] | (1 << index[dep])
        ancestors[name] = bits
        for dependent in dependents[name]:
            pending[dependent] -= 1
            if pending[dependent] == 0:
                ready.append(dependent)
    if len(ancestors) < len(needs):  # a cycle: the validator reports it; draw what is declared
        return needs
    reduced = {}
    for name, deps in needs.items():
        implied = 0
        for dep in deps:
            implied |= ancestors[dep]
        reduced[name] = [dep for dep in deps if not implied >> index[dep] & 1]
    return reduced


def _condition_text(condition: Mapping[str, object], where: str) -> str:
    conditions.check(condition, where=f"condition of {where}")
    return conditions.to_text(condition)
