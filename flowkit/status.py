"""The vocabulary of status events (kept for imports; the words live in ``flowkit.vocab``)."""

from __future__ import annotations

from flowkit.vocab import EventStatus, status_key

__all__ = ["EventStatus", "status_key"]
