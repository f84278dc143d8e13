"""Fixtures of the diagram tests: the example workflows compiled, and a DOT snapshot fixture."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

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


class DotSnapshotExtension(SingleFileSnapshotExtension):
    """One ``.dot`` file per snapshot: the DOT text as written by ``flowkit diagram -o x.dot``."""

    _write_mode = WriteMode.TEXT
    file_extension = "dot"

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return str(data)


@pytest.fixture
def dot_snapshot(snapshot: Any) -> Any:
    return snapshot.use_extension(DotSnapshotExtension)
