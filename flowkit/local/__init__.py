"""Run workflows on one machine: an in-process event bus, a thread-pool dispatcher, an embedded store.

    from flowkit.local import run_workflow, failure

    run = run_workflow(order_pipeline, {"order_id": "o-1"}, mocks={"charge": failure("CardDeclined")})

The names below are imported on first use, so ``import flowkit.local.embedded`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.local.environment import LocalEnvironment, LocalRunHandle
    from flowkit.local.mocks import Mocks, Outcome, failure, load_mock_file, success
    from flowkit.local.result import LocalRun, RunLocation
    from flowkit.local.runner import run_workflow

__all__ = [
    "LocalEnvironment",
    "LocalRun",
    "LocalRunHandle",
    "Mocks",
    "Outcome",
    "RunLocation",
    "failure",
    "load_mock_file",
    "run_workflow",
    "success",
]

_LAZY = {
    "LocalEnvironment": "flowkit.local.environment",
    "LocalRun": "flowkit.local.result",
    "LocalRunHandle": "flowkit.local.environment",
    "RunLocation": "flowkit.local.result",
    "run_workflow": "flowkit.local.runner",
    "Mocks": "flowkit.local.mocks",
    "Outcome": "flowkit.local.mocks",
    "failure": "flowkit.local.mocks",
    "load_mock_file": "flowkit.local.mocks",
    "success": "flowkit.local.mocks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowkit.local' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
