"""Clocks for local runs: the wall clock, or a virtual one that jumps to the next due time.

The runtime takes its time from ``Store.clock`` (every transition records it, every due time is
computed from it). A local run hands the store one of these. With ``VirtualClock`` the local timer
loop (``flowkit.local.timers``) moves time forward to the next due time whenever nothing else is in
flight, so a run with a ten-minute backoff or a one-hour timeout finishes in milliseconds, while the
order of events stays what it would be in real time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Literal

from flowkit.errors import ConfigError

__all__ = ["Clock", "ClockName", "VirtualClock", "WallClock", "make_clock"]

ClockName = Literal["wall", "virtual"]


def _ms(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


class WallClock:
    """The system clock (UTC, at MongoDB's millisecond precision)."""

    virtual = False

    def __call__(self) -> datetime:
        return _ms(datetime.now(UTC))


class VirtualClock:
    """A clock that only moves when told to (``advance_to``), starting at ``start`` (default: now).

    Thread-safe; it never goes backwards.
    """

    virtual = True

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _ms(start or datetime.now(UTC))
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance_to(self, at: datetime) -> None:
        with self._lock:
            if at > self._now:
                # round up to the next millisecond: a due time stored at that precision is then reached
                rounded = _ms(at)
                self._now = rounded if rounded >= at else rounded + timedelta(milliseconds=1)

    def advance(self, seconds: float) -> None:
        self.advance_to(self() + timedelta(seconds=seconds))


Clock = WallClock | VirtualClock


def make_clock(clock: ClockName | Clock | None) -> Clock:
    """``"wall"`` (the default), ``"virtual"``, or a clock object."""
    if clock is None or clock == "wall":
        return WallClock()
    if clock == "virtual":
        return VirtualClock()
    if isinstance(clock, WallClock | VirtualClock):
        return clock
    raise ConfigError(f"clock must be 'wall' or 'virtual', got {clock!r}")
