"""flowkit: workflows as code, orchestrated on AWS Lambda, MongoDB and EventBridge.

The authoring API::

    from flowkit import job, workflow, when, Retry

    @job(timeout=300, retry=Retry(attempts=3))
    def extract(event, context=None):
        return {"rows": 12}

    @workflow(name="nightly-etl")
    def nightly_etl():
        return extract >> when(extract.output["rows"] > 0, then=load)

``compile(workflow)`` returns the ``WorkflowDocument`` (``InvalidWorkflow`` lists every problem);
``validate(workflow_or_document)`` returns a ``Report`` (``flowkit.validation``) without raising.

The authoring names are imported lazily: the Lambda runtime imports ``flowkit.runtime`` and must not
pay for (or even load) the DSL, the compiler or networkx.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from flowkit.errors import FlowkitError, InvalidWorkflow

if TYPE_CHECKING:
    from flowkit.compiler import compile, validate
    from flowkit.dsl import Defaults, Notify, Retry, always, input, job, parallel, sequence, when, workflow

__all__ = [
    "Defaults",
    "FlowkitError",
    "InvalidWorkflow",
    "Notify",
    "Retry",
    "always",
    "compile",
    "input",
    "job",
    "parallel",
    "sequence",
    "validate",
    "when",
    "workflow",
]

_LAZY = {
    "Defaults": "flowkit.dsl",
    "Notify": "flowkit.dsl",
    "Retry": "flowkit.dsl",
    "always": "flowkit.dsl",
    "input": "flowkit.dsl",
    "job": "flowkit.dsl",
    "parallel": "flowkit.dsl",
    "sequence": "flowkit.dsl",
    "when": "flowkit.dsl",
    "workflow": "flowkit.dsl",
    "compile": "flowkit.compiler",
    "validate": "flowkit.compiler",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


logging.getLogger(__name__).addHandler(logging.NullHandler())
