"""One counter of outstanding work shared by the bus and the dispatcher.

Work is counted before the work that caused it is uncounted (a handler dispatches a job before its
delivery ends; a job reports its outcome, publishing events, before it ends), so a count of zero
means the whole local system is quiescent: nothing running, nothing queued, nothing delayed.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Activity"]


class Activity:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._count = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._count += n

    def done(self, n: int = 1) -> None:
        with self._lock:
            self._count -= n
            if self._count <= 0:
                self._lock.notify_all()

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    @property
    def idle(self) -> bool:
        return self.count <= 0

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is outstanding; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._count > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True
