"""Text shaping for diagram labels: wrapping long names and conditions, short durations and targets."""

from __future__ import annotations

import re
import textwrap

from flowkit.document import JobSpec, Target
from flowkit.vocab import RunOn

NAME_WIDTH = 24
"""Job names longer than this wrap at '_', '-' or '.' (or hard, if there is none)."""
CONDITION_WIDTH = 36
"""Condition labels longer than this wrap at spaces."""
TARGET_WIDTH = 32
"""Target lines (Lambda function names) longer than this wrap like names."""

_NAME_PARTS = re.compile(r"[^_.\-]+[_.\-]*|[_.\-]+")


def wrap_name(name: str, width: int = NAME_WIDTH) -> list[str]:
    """Split an identifier into lines of at most ``width`` characters, after separators if possible."""
    lines: list[str] = []
    line = ""
    for part in _NAME_PARTS.findall(name):
        while len(part) > width:  # a separator-less run longer than a line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(part[:width])
            part = part[width:]
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    if line or not lines:
        lines.append(line)
    return lines


def wrap_text(text: str, width: int = CONDITION_WIDTH) -> list[str]:
    """Wrap free text (a condition) at spaces; words longer than a line are cut."""
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def seconds_text(seconds: float) -> str:
    """``90`` -> ``1m30s``, ``3600`` -> ``1h``, ``0.5`` -> ``0.5s``."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts)


def target_text(target: Target) -> str:
    """The Lambda function a job calls, ARNs shortened to the function name: ``etl-load:prod``."""
    function, qualifier = target.function, target.qualifier
    if not function:
        return "no target"
    parts = function.split(":")
    if function.startswith("arn:") and len(parts) >= 7:
        function = parts[6]
        if qualifier is None and len(parts) >= 8:
            qualifier = parts[7]
    return f"{function}:{qualifier}" if qualifier else function


def job_details(spec: JobSpec) -> list[str]:
    """The lines under a job's name: its target, then retries / timeout, then failure handling."""
    lines = wrap_name(f"\u2192 {target_text(spec.target)}", TARGET_WIDTH)
    policy = []
    if spec.retry.max_attempts > 1:
        policy.append(f"{spec.retry.max_attempts} attempts")
    if spec.timeout_seconds is not None:
        policy.append(f"timeout {seconds_text(spec.timeout_seconds)}")
    if policy:
        lines.append(", ".join(policy))
    if spec.failure_handled:
        lines.append("failure handled")
    if spec.run_on == RunOn.ALL_DONE:
        lines.append("always: after any outcome")
    return lines
