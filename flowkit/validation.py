"""Checks on a compiled workflow's graph; every problem reported at once.

``validate_document(doc) -> Report``. The checks read the ``WorkflowDocument`` only (so a document
loaded from JSON is checked the same way, and this module never sees the DSL), through the graph with an
edge ``need -> job`` for every known need. ``flowkit.validate(workflow_or_document)`` (in
``flowkit.compiler``) compiles a workflow first and adds the DSL-level problems. Each check is a small ``_check_*`` function returning its messages; the report sorts them.
Errors make ``compile`` fail; warnings (a job without timeout) do not.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from flowkit.conditions import check, referenced_jobs, to_text, undistinguished_failures
from flowkit.document import WorkflowDocument
from flowkit.errors import ConditionError
from flowkit.vocab import NAME_MAX_LENGTH, NAME_PATTERN

__all__ = ["NAME_PATTERN", "Report", "validate_document"]


@dataclass(frozen=True)
class Report:
    """Sorted error and warning messages, one line each."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Doc:
    """The document with its graph and indexes, built once for all checks.

    The graph is plain adjacency lists (``children``: need -> jobs that need it, known names only),
    checked for cycles with Kahn's algorithm: linear, and far cheaper than a networkx graph for the
    common case. networkx is used only to describe cycles when there are some.
    """

    doc: WorkflowDocument
    names: list[str]
    known: set[str]
    children: dict[str, list[str]]
    in_degree: dict[str, int]
    cycles: list[set[str]] = field(default_factory=list)

    @property
    def ambiguous(self) -> bool:
        """Two jobs share a name: the graph by name is meaningless until that is fixed."""
        return len(self.known) != len(self.names)

    @classmethod
    def of(cls, doc: WorkflowDocument) -> _Doc:
        names = [j.name for j in doc.jobs]
        known = set(names)
        children: dict[str, list[str]] = {name: [] for name in names}
        in_degree = dict.fromkeys(names, 0)
        for j in doc.jobs:
            name = j.name
            for need in j.needs:
                if need in known:  # a repeated need is a repeated edge: counted both ways, harmless
                    children[need].append(name)
                    in_degree[name] += 1
        d = cls(doc, names, known, children, in_degree)
        if not d._acyclic():
            import networkx as nx  # only to describe cycles: a valid workflow never loads it

            graph = d.graph()
            d.cycles = [
                c
                for c in nx.strongly_connected_components(graph)
                if len(c) > 1 or graph.has_edge(next(iter(c)), next(iter(c)))
            ]
        return d

    def _acyclic(self) -> bool:
        remaining = dict(self.in_degree)
        ready = [name for name, count in remaining.items() if count == 0]
        seen = 0
        while ready:
            node = ready.pop()
            seen += 1
            for child in self.children[node]:
                remaining[child] -= 1
                if remaining[child] == 0:
                    ready.append(child)
        return seen == len(remaining)

    def graph(self) -> Any:
        """The same graph as a networkx ``DiGraph`` (only needed to describe cycles)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.children)
        graph.add_edges_from((need, child) for need, kids in self.children.items() for child in kids)
        return graph

    def descendants(self, name: str) -> set[str]:
        """Every job that (transitively) needs ``name``."""
        found: set[str] = set()
        stack = list(self.children.get(name, ()))
        while stack:
            node = stack.pop()
            if node not in found:
                found.add(node)
                stack.extend(self.children[node])
        return found

    @property
    def where(self) -> str:
        return f"workflow {self.doc.name!r}"

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, sorted(self.known), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""


def _check_names(d: _Doc) -> Iterator[str]:
    if not NAME_PATTERN.fullmatch(d.doc.name):
        yield f"workflow name {d.doc.name!r} is invalid: use only letters, digits, '_' and '-'"
    elif len(d.doc.name) > NAME_MAX_LENGTH:
        yield f"workflow name {_shown(d.doc.name)} is {len(d.doc.name)} characters long; the limit is {NAME_MAX_LENGTH}"
    for name in sorted(set(d.names)):
        if not NAME_PATTERN.fullmatch(name):
            yield f"job name {_shown(name)} in {d.where} is invalid: use only letters, digits, '_' and '-'"
        elif len(name) > NAME_MAX_LENGTH:
            yield (
                f"job name {_shown(name)} in {d.where} is {len(name)} characters long; "
                f"the limit is {NAME_MAX_LENGTH}"
            )


def _shown(name: str) -> str:
    """A name for a message: whole when short, its first 60 characters when not."""
    return repr(name) if len(name) <= 80 else f"{name[:60]!r}..."


def _check_not_empty(d: _Doc) -> Iterator[str]:
    if not d.doc.jobs:
        yield f"{d.where} has no jobs"


def _check_duplicate_jobs(d: _Doc) -> Iterator[str]:
    for name, count in sorted(Counter(d.names).items()):
        if count > 1:
            yield (
                f"job name {name!r} is used by {count} different jobs in {d.where}: "
                f"give each its own name (job.named('...'))"
            )


def _check_phases(d: _Doc) -> Iterator[str]:
    counts = Counter(p.name for p in d.doc.phases)
    phase_names = set(counts)
    for name in sorted(n for n, count in counts.items() if count > 1):
        yield f"phase name {name!r} is used twice in {d.where}: rename the job or stage that causes it"
    listed = {job: p.name for p in d.doc.phases for job in p.jobs}
    for job in d.doc.jobs:
        if job.phase not in phase_names:
            yield f"job {job.name!r} is in phase {job.phase!r}, which is not defined in {d.where}"
        elif listed.get(job.name) != job.phase and not d.ambiguous:
            yield f"job {job.name!r} is not listed in its phase {job.phase!r} in {d.where}"
    for phase in d.doc.phases:
        for name in phase.jobs:
            if name not in d.known:
                yield f"phase {phase.name!r} lists job {name!r}, which is not defined in {d.where}"


def _check_needs(d: _Doc) -> Iterator[str]:
    for job in d.doc.jobs:
        for need in job.needs:
            if need not in d.known:
                yield f"job {job.name!r} needs {need!r}, which is not defined in {d.where}{d.suggest(need)}"


def _check_cycles(d: _Doc) -> Iterator[str]:
    if d.ambiguous or not d.cycles:
        return
    import networkx as nx

    graph = d.graph()
    for component in d.cycles:
        start = min(component)
        edges = nx.find_cycle(graph.subgraph(component), source=start)
        path = [u for u, _ in edges]
        first = path.index(min(path))
        path = path[first:] + path[:first]
        yield f"cycle in {d.where}: {' -> '.join([*path, path[0]])} (each needs the one before it)"


def _check_unreachable(d: _Doc) -> Iterator[str]:
    if d.ambiguous:
        return
    in_cycles = set().union(*d.cycles)
    roots = [n for n in d.names if d.in_degree[n] == 0]
    reached: set[str] = set(roots)
    stack = list(roots)
    while stack:
        for child in d.children[stack.pop()]:
            if child not in reached:
                reached.add(child)
                stack.append(child)
    for name in sorted(d.known - reached - in_cycles):
        yield f"job {name!r} is unreachable in {d.where}: it only depends on a cycle, so it never starts"


def _check_conditions(d: _Doc) -> Iterator[str]:
    descendants: dict[str, set[str]] = {}
    for job in d.doc.jobs:
        if job.condition is None:
            continue
        try:
            check(job.condition, where=f"condition of job {job.name!r}")
        except ConditionError as exc:
            yield str(exc)
            continue
        text = to_text(job.condition)
        for ref in sorted(referenced_jobs(job.condition)):
            if ref not in d.known:
                yield (
                    f"job {job.name!r} has condition `{text}`, which references job {ref!r}, "
                    f"not defined in {d.where}{d.suggest(ref)}"
                )
                continue
            if ref not in descendants:
                descendants[ref] = d.descendants(ref)
            if job.name not in descendants[ref]:
                yield (
                    f"job {job.name!r} has condition `{text}`, which references job {ref!r}, not guaranteed "
                    f"to have finished before {job.name!r} (make {ref!r} run before it)"
                )


def _check_targets(d: _Doc) -> Iterator[str]:
    for job in d.doc.jobs:
        if not job.target.function.strip():
            yield f"job {job.name!r} has an empty target function: give a Lambda function name or ARN"
        if job.target.qualifier is not None and not job.target.qualifier.strip():
            yield f"job {job.name!r} has an empty qualifier: give an alias or version, or none"


def _check_timeouts(d: _Doc) -> Iterator[str]:
    for job in d.doc.jobs:
        if job.timeout_seconds is not None and not job.timeout_seconds > 0:
            yield f"job {job.name!r} has timeout {job.timeout_seconds:g}s: a timeout must be positive"
        if job.heartbeat_seconds is not None and not job.heartbeat_seconds > 0:
            yield f"job {job.name!r} has heartbeat {job.heartbeat_seconds:g}s: a heartbeat must be positive"
    if d.doc.timeout_seconds is not None and not d.doc.timeout_seconds > 0:
        yield (f"workflow {d.doc.name!r} has timeout {d.doc.timeout_seconds:g}s: a timeout must be positive")


def _check_retries(d: _Doc) -> Iterator[str]:
    for job in d.doc.jobs:
        retry = job.retry
        if retry.max_attempts < 1:
            yield f"job {job.name!r} has Retry(attempts={retry.max_attempts}): attempts must be at least 1"
        if not retry.interval_seconds >= 0:
            yield f"job {job.name!r} has Retry(interval={retry.interval_seconds:g}): must not be negative"
        if not retry.backoff_rate >= 1:
            yield f"job {job.name!r} has Retry(backoff={retry.backoff_rate:g}): backoff must be at least 1"
        if retry.max_delay_seconds is not None and not retry.max_delay_seconds >= 0:
            yield f"job {job.name!r} has Retry(max_delay={retry.max_delay_seconds:g}): must not be negative"


def _warn_missing_timeouts(d: _Doc) -> Iterator[str]:
    for job in d.doc.jobs:
        if job.timeout_seconds is None:
            yield f"job {job.name!r} has no timeout: set @job(timeout=...) or Defaults(timeout=...)"


def _warn_unimportable_handlers(d: _Doc) -> Iterator[str]:
    for job in d.doc.jobs:
        if job.handler is not None and ("<locals>" in job.handler or job.handler.startswith("__main__:")):
            yield (
                f"job {job.name!r} has body {job.handler!r}, which cannot be imported by name: "
                "define it at the top level of an importable module"
            )


def _warn_undistinguished_failures(d: _Doc) -> Iterator[str]:
    for job in d.doc.jobs:
        if job.condition is None:
            continue
        try:
            check(job.condition)
        except ConditionError:
            continue  # reported as an error by _check_conditions
        for ref in sorted(undistinguished_failures(job.condition) & d.known):
            yield (
                f"job {job.name!r} has condition `{to_text(job.condition)}`, which can hold whether {ref!r} "
                f"failed or succeeded, so it does not handle a failure of {ref!r}: the run fails and "
                f"{job.name!r} does not run after it. To run {job.name!r} whatever {ref!r} did, use "
                f"always({job.name}); to handle the failure, test it: when({ref}.failed, then=...)"
            )


_ERRORS: Final[tuple[Callable[[_Doc], Iterator[str]], ...]] = (
    _check_names,
    _check_not_empty,
    _check_duplicate_jobs,
    _check_phases,
    _check_needs,
    _check_cycles,
    _check_unreachable,
    _check_conditions,
    _check_targets,
    _check_timeouts,
    _check_retries,
)
_WARNINGS: Final[tuple[Callable[[_Doc], Iterator[str]], ...]] = (
    _warn_missing_timeouts,
    _warn_unimportable_handlers,
    _warn_undistinguished_failures,
)


def validate_document(doc: WorkflowDocument) -> Report:
    """Every graph-level problem of a compiled document."""
    d = _Doc.of(doc)
    errors = {message for check_ in _ERRORS for message in check_(d)}
    warnings = {message for check_ in _WARNINGS for message in check_(d)}
    return Report(errors=sorted(errors), warnings=sorted(warnings))
