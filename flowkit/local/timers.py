"""The local timer loop: fires the due timers of the local store, like the timer handler in AWS.

One thread sweeps (``flowkit.runtime.timers.sweep``, the very code of the ``timer_job`` handler)
whenever the earliest stored due time has come, of the runs ``runs()`` names (the environment's own:
a MongoDB shared with other runs keeps their timers to their own handlers). It waits for that time on the wall clock, woken
early when a transition arms a nearer one (it is the runtime's ``Waker``). On a virtual clock it
waits until nothing else is in flight (no delivery, no job body running) and then moves the clock
to the next due time.

Besides the store's timers, the loop fires local actions at a time on the same clock (``at``): a
run's ``cancel_after``. They count as due times like the store's, so a virtual clock jumps to them too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowkit.local._activity import Activity
from flowkit.local.clock import Clock, VirtualClock
from flowkit.runtime import timers

if TYPE_CHECKING:
    from flowkit.runtime.handlers import Runtime

__all__ = ["Scheduled", "TimerLoop"]

logger = logging.getLogger(__name__)

# Longest wait between two looks at the store on the wall clock (a backstop, like the schedule).
_BACKSTOP = 0.5


class Scheduled:
    """A local action ``TimerLoop.at`` will run at ``due``; ``withdraw()`` takes it back."""

    def __init__(self, loop: TimerLoop, due: datetime, action: Callable[[], None]) -> None:
        self.loop = loop
        self.due = due
        self.action = action
        self.fired = False

    @property
    def pending(self) -> bool:
        """Not yet run, nor withdrawn."""
        with self.loop._cv:
            return self in self.loop._scheduled

    def withdraw(self) -> None:
        with self.loop._cv:
            if self in self.loop._scheduled:
                self.loop._scheduled.remove(self)


class TimerLoop:
    """Fires due timers until ``close()``; ``arm`` (the ``Waker`` protocol) wakes it early."""

    def __init__(
        self,
        runtime: Runtime,
        clock: Clock,
        activity: Activity,
        *,
        runs: Callable[[], list[str]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.runs = runs
        self.clock = clock
        self.activity = activity
        self.sweeps = 0
        self.fired = 0
        self._cv = threading.Condition()
        self._armed = False
        self._closed = False
        self._scheduled: list[Scheduled] = []
        self._thread = threading.Thread(target=self._loop, name="flowkit-timers", daemon=True)

    def start(self) -> TimerLoop:
        self._thread.start()
        return self

    def arm(self, run_id: str, due: datetime) -> None:
        with self._cv:
            self._armed = True
            self._cv.notify_all()

    def at(self, due: datetime, action: Callable[[], None]) -> Scheduled:
        """Run ``action`` on the loop's thread once the clock reaches ``due`` (before the store's timers
        due at the same time); on a virtual clock, ``due`` is a time to jump to like theirs."""
        scheduled = Scheduled(self, due, action)
        with self._cv:
            self._scheduled.append(scheduled)
            self._armed = True
            self._cv.notify_all()
        return scheduled

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def pending(self) -> datetime | None:
        """The earliest due time stored (of ``runs()`` only, if given) or scheduled; None: nothing will fire."""
        stored = self.runtime.store.earliest_due(run_ids=self._run_ids())
        local = self._local_due()
        return min((due for due in (stored, local) if due is not None), default=None)

    def _local_due(self) -> datetime | None:
        with self._cv:
            return min((s.due for s in self._scheduled), default=None)

    def _fire_local(self, now: datetime) -> None:
        with self._cv:
            due = [s for s in self._scheduled if s.due <= now]
            for scheduled in due:
                self._scheduled.remove(scheduled)
        for scheduled in sorted(due, key=lambda s: s.due):
            scheduled.fired = True
            try:
                scheduled.action()
            except Exception:
                logger.exception("a scheduled local action failed")

    def _run_ids(self) -> list[str] | None:
        return None if self.runs is None else self.runs()

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while True:
            with self._cv:
                if self._closed:
                    return
                self._armed = False
            try:
                self._turn()
            except Exception:  # keep the loop alive: a broken sweep is retried on the next turn
                logger.exception("local timer sweep failed")
                self._wait(_BACKSTOP)

    def _turn(self) -> None:
        stored = self.runtime.store.earliest_due(run_ids=self._run_ids())
        local = self._local_due()
        due = min((d for d in (stored, local) if d is not None), default=None)
        now = self.clock()
        if due is not None and due <= now:
            self.activity.add()
            try:
                if local is not None and local <= now:
                    self._fire_local(now)
                if stored is not None and stored <= now:
                    results = timers.sweep(self.runtime, now, run_ids=self._run_ids())
                    self.sweeps += 1
                    self.fired += sum(
                        len(r["expired"]) + len(r["retried"]) + bool(r["ended"]) for r in results
                    )
            finally:
                self.activity.done()
            return
        if isinstance(self.clock, VirtualClock):
            # Jump only when the system is quiescent: everything that happens "now" happens first.
            if self.activity.wait_idle(0.05) and due is not None and not self._was_armed():
                again = self.pending()
                if again is not None and again == due and self.activity.idle:
                    self.clock.advance_to(due)
                    return
            if due is None:
                self._wait(0.05)
            return
        wait = _BACKSTOP if due is None else min(_BACKSTOP, max((due - now).total_seconds(), 0.0))
        self._wait(wait)

    def _was_armed(self) -> bool:
        with self._cv:
            return self._armed

    def _wait(self, seconds: float) -> None:
        with self._cv:
            if not self._closed and not self._armed:
                self._cv.wait(seconds)

    def stats(self) -> dict[str, Any]:
        return {"sweeps": self.sweeps, "fired": self.fired}
