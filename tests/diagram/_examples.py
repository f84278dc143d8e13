"""The example workflows, compiled: shared by the diagram tests (imported as a sibling module).

Kept out of ``conftest.py`` because ``from conftest import ...`` resolves to whichever conftest module
pytest imported first when the whole suite runs.
"""

from __future__ import annotations

import functools
from pathlib import Path

from flowkit.document import WorkflowDocument

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"


@functools.cache
def example_documents() -> dict[str, WorkflowDocument]:
    """Every workflow under workflows/, compiled (by the real loader and compiler)."""
    from flowkit.compiler import compile
    from flowkit.loader import load_workflows

    return {wf.name: compile(wf) for wf in load_workflows(str(WORKFLOWS))}


def example_names() -> list[str]:
    from flowkit.loader import load_workflows

    return [wf.name for wf in load_workflows(str(WORKFLOWS))]
