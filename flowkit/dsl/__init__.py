"""The authoring DSL: jobs, compositions, condition builders and workflows.

Users import these from ``flowkit`` directly; this package is the implementation.
"""

from __future__ import annotations

from flowkit.dsl.expressions import Cond, Ref, input
from flowkit.dsl.job import Job, always, job
from flowkit.dsl.nodes import Node, Parallel, Serial, When, parallel, sequence, when
from flowkit.dsl.options import Defaults, Notify, Retry
from flowkit.dsl.workflow import Workflow, workflow

__all__ = [
    "Cond",
    "Defaults",
    "Job",
    "Node",
    "Notify",
    "Parallel",
    "Ref",
    "Retry",
    "Serial",
    "When",
    "Workflow",
    "always",
    "input",
    "job",
    "parallel",
    "sequence",
    "when",
    "workflow",
]
