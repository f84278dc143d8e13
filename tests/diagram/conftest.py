"""Fixtures of the diagram tests: the example workflows compiled, and a DOT snapshot fixture."""

from __future__ import annotations

from typing import Any

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode


class DotSnapshotExtension(SingleFileSnapshotExtension):
    """One ``.dot`` file per snapshot: the DOT text as written by ``flowkit diagram -o x.dot``."""

    _write_mode = WriteMode.TEXT
    file_extension = "dot"

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return str(data)


@pytest.fixture
def dot_snapshot(snapshot: Any) -> Any:
    return snapshot.use_extension(DotSnapshotExtension)
