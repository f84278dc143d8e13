"""Colours shared by both renderers, so a run looks the same in Graphviz and in Mermaid."""

from __future__ import annotations

from typing import Final, NamedTuple

from flowkit.vocab import JobState


class StateStyle(NamedTuple):
    fill: str
    border: str
    dashed: bool = False
    bold: bool = False


JOB_STYLE: Final = StateStyle("#eef2fb", "#4a5a8a")
"""A job when no run is drawn."""

STATE_STYLES: Final = {
    JobState.PENDING: StateStyle("#ffffff", "#9aa3b2"),
    JobState.DISPATCHED: StateStyle("#e0f2fe", "#0284c7"),
    JobState.RUNNING: StateStyle("#bfdbfe", "#1d4ed8", bold=True),
    JobState.WAITING: StateStyle("#fef9c3", "#a16207", dashed=True),
    JobState.SUCCEEDED: StateStyle("#bbf7d0", "#15803d"),
    JobState.FAILED: StateStyle("#fecaca", "#b91c1c", bold=True),
    JobState.SKIPPED: StateStyle("#e5e7eb", "#6b7280", dashed=True),
    JobState.TIMED_OUT: StateStyle("#fed7aa", "#c2410c", bold=True),
    JobState.CANCELLED: StateStyle("#d6d3d1", "#57534e", dashed=True),
}

THEN_COLOR: Final = "#1d4ed8"
OTHERWISE_COLOR: Final = "#b45309"
EDGE_COLOR: Final = "#4b5563"
DECISION_FILL: Final = "#fde68a"
