"""The public surface of flowkit.diagram, pinned."""

from __future__ import annotations

import flowkit.diagram


def test_public_names() -> None:
    assert sorted(flowkit.diagram.__all__) == [
        "EXTENSIONS",
        "FORMATS",
        "Format",
        "RunState",
        "format_for_path",
        "render",
        "to_digraph",
        "to_dot",
        "to_mermaid",
    ]
    for name in flowkit.diagram.__all__:
        assert hasattr(flowkit.diagram, name), name
