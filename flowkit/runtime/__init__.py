"""What runs in AWS Lambda. Must never import the DSL, the CLI, networkx or graphviz.

``cancel_run`` and ``redrive_run`` (``flowkit.runtime.control``) are what an operator does to a run;
they are imported on first use so the handlers' cold start does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.runtime.control import cancel_run, redrive_run

__all__ = ["cancel_run", "redrive_run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("flowkit.runtime.control"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowkit.runtime' has no attribute {name!r}")
