"""Real-shaped EventBridge events from ``tests/events/`` (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """The event ``tests/events/<name>.json`` (``name`` may include ``malformed/``), freshly parsed."""
    path = EVENTS_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(event_names(malformed=None))
        raise FileNotFoundError(f"no event fixture {name!r} in {EVENTS_DIR} (known: {known})")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def event_names(*, malformed: bool | None = False) -> list[str]:
    """Fixture names: the well-formed ones, the malformed ones (``malformed=True``) or all (None)."""
    good = sorted(path.stem for path in EVENTS_DIR.glob("*.json"))
    bad = sorted(f"malformed/{path.stem}" for path in (EVENTS_DIR / "malformed").glob("*.json"))
    if malformed is None:
        return good + bad
    return bad if malformed else good
