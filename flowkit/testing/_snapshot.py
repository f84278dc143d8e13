"""``flow_snapshot``: a syrupy snapshot of a compiled workflow, stored as pretty, sorted JSON.

    from flowkit import compile
    from myproject.flows import nightly_etl

    def test_nightly_etl_config(flow_snapshot):
        assert compile(nightly_etl) == flow_snapshot

Each snapshot is one ``.json`` file under ``__snapshots__/<test file>/<test name>.json``, written in
the same canonical form as ``flowkit compile``; regenerate on purpose with ``pytest --snapshot-update``.
syrupy is imported only when the fixture is used.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from flowkit.errors import MissingDependency

__all__ = ["flow_snapshot"]


def to_snapshot_json(data: Any) -> str:
    """The stored text of a snapshot: a ``WorkflowDocument`` / pydantic model / JSON value as canonical JSON."""
    from pydantic import BaseModel

    from flowkit.document import canonical_json

    if isinstance(data, BaseModel):  # a WorkflowDocument: exactly its to_json()
        return canonical_json(data.model_dump(mode="json"))
    try:
        return canonical_json(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"flow_snapshot stores a WorkflowDocument, a pydantic model or JSON data, got {type(data).__name__}"
        ) from exc


@functools.cache
def _extension() -> type[Any]:
    try:
        from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode
    except ImportError as exc:
        raise MissingDependency(
            "the flow_snapshot fixture needs syrupy: pip install 'flowkit[test]' (or pip install syrupy)"
        ) from exc

    class FlowSnapshotExtension(SingleFileSnapshotExtension):
        """One ``.json`` file per snapshot, in flowkit's canonical JSON."""

        _write_mode = WriteMode.TEXT
        file_extension = "json"

        def serialize(self, data: Any, **kwargs: Any) -> str:
            return to_snapshot_json(data)

    return FlowSnapshotExtension


@pytest.fixture
def flow_snapshot(request: pytest.FixtureRequest) -> Any:
    """syrupy's ``snapshot``, storing compiled workflows as canonical JSON files."""
    extension = _extension()
    snapshot = request.getfixturevalue("snapshot")
    return snapshot.use_extension(extension)
