"""The neutral diagram model: what both renderers draw.

``extract.extract(document, run)`` builds a ``DiagramGraph`` from a compiled ``WorkflowDocument``;
``renderers.dot`` and ``renderers.mermaid`` turn it into Graphviz DOT or Mermaid text. Renderers see
nothing else: no DSL objects, no document, so anything that compiles can be drawn.

Nodes are the run's start and end, one node per job, and a few auxiliary shapes that keep the
picture readable: a *decision* per ``when`` (its arms leave it on labelled edges), a *fork* point where
one arm enters several jobs (so the condition is written once), and a *join* point where several jobs
wait for the same set of jobs (so 50 x 50 jobs need 100 edges, not 2,500).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flowkit.document import JobState

__all__ = ["DiagramCluster", "DiagramEdge", "DiagramGraph", "DiagramNode", "EdgeKind", "NodeKind"]


class NodeKind(StrEnum):
    START = "start"
    END = "end"
    JOB = "job"
    DECISION = "decision"
    FORK = "fork"
    JOIN = "join"


class EdgeKind(StrEnum):
    NORMAL = "normal"
    THEN = "then"
    """Taken when the condition holds; labelled with the condition."""
    OTHERWISE = "otherwise"
    """Taken when it does not (the ``otherwise`` arm, or past an empty arm)."""


@dataclass(frozen=True, slots=True)
class DiagramNode:
    id: str
    """Unique among the graph's nodes; a job's id is its name, auxiliary ids start with '@'."""
    kind: NodeKind
    title: str = ""
    """Job name (or 'start' / 'end'); empty for auxiliary points."""
    details: tuple[str, ...] = ()
    """Extra lines under the title: target, retries and timeout, failure handling, run state."""
    tooltip: str = ""
    state: JobState | None = None
    """Run state of a job, when the diagram draws a run."""


@dataclass(frozen=True, slots=True)
class DiagramEdge:
    source: str
    target: str
    kind: EdgeKind = EdgeKind.NORMAL
    label: str = ""
    """Readable condition text on THEN edges, 'otherwise' on OTHERWISE edges."""


@dataclass(frozen=True, slots=True)
class DiagramCluster:
    """A phase: its label and the ids of the nodes drawn inside it, in order."""

    id: str
    label: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DiagramGraph:
    name: str
    description: str
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]
    clusters: tuple[DiagramCluster, ...]
    run_label: str | None = None
    """'run <id>: <status>' when drawing a run, else None."""
    legend: tuple[JobState, ...] = ()
    """States shown in the legend (only when drawing a run)."""

    def node(self, node_id: str) -> DiagramNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)
