"""Deterministic interleaving of concurrent handler invocations, one database operation at a time.

Each invocation (a handler call, or a job reporting) runs in its own thread, but a ``SteppedDatabase``
makes the thread stop before every collection operation until the scheduler lets it through. Only one
thread ever runs at a time, so the schedule - which invocation takes its next step - is a choice the
test makes (hypothesis draws it, and can shrink it). This explores the interleavings *inside*
handlers (a snapshot read by one handler going stale while another writes), not only the order in
which whole invocations happen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Stepper:
    """Hands control to exactly one invocation thread at a time."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.cv = threading.Condition()
        self.waiting: dict[int, str] = {}  # invocation id -> the operation it waits to perform
        self.steps: dict[int, int] = {}  # invocation id -> operations performed so far
        self.busy = False  # an invocation is running between two operations
        self.grant: int | None = None
        self.errors: list[tuple[str, BaseException]] = []
        self.local = threading.local()
        self.next_id = 0
        self.timeout = timeout

    def gate(self, label: str) -> None:
        wid = getattr(self.local, "wid", None)
        if wid is None:
            return  # the test's own thread (setup, checks) is never stepped
        with self.cv:
            self.waiting[wid] = label
            self.busy = False
            self.cv.notify_all()
            if not self.cv.wait_for(lambda: self.grant == wid, timeout=self.timeout):
                raise TimeoutError(f"invocation {wid} was never scheduled")
            self.grant = None
            del self.waiting[wid]

    def spawn(self, name: str, fn: Callable[[], Any]) -> None:
        """Start an invocation and let it run up to its first database operation (or its end)."""
        with self.cv:
            wid = self.next_id
            self.next_id += 1
            self.busy = True

        def body() -> None:
            self.local.wid = wid
            try:
                fn()
            except BaseException as exc:
                self.errors.append((name, exc))
            finally:
                with self.cv:
                    self.busy = False
                    self.cv.notify_all()

        threading.Thread(target=body, name=f"{name}-{wid}", daemon=True).start()
        self._settle()

    def step(self, wid: int) -> None:
        """Let invocation ``wid`` perform its next operation and run up to the one after (or its end)."""
        with self.cv:
            if wid not in self.waiting:
                raise KeyError(wid)
            self.busy = True
            self.grant = wid
            self.steps[wid] = self.steps.get(wid, 0) + 1
            self.cv.notify_all()
        self._settle()

    def _settle(self) -> None:
        with self.cv:
            if not self.cv.wait_for(lambda: not self.busy, timeout=self.timeout):
                raise TimeoutError("an invocation did not reach its next operation")

    def ready(self) -> list[int]:
        with self.cv:
            return sorted(self.waiting)


class _SteppedCollection:
    def __init__(self, collection: Any, stepper: Stepper) -> None:
        self._collection = collection
        self._stepper = stepper

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._stepper.gate(f"{self._collection.name}.{name}")
            return attr(*args, **kwargs)

        return call


class SteppedDatabase:
    def __init__(self, database: Any, stepper: Stepper) -> None:
        self._database = database
        self._stepper = stepper

    def __getitem__(self, name: str) -> _SteppedCollection:
        return _SteppedCollection(self._database[name], self._stepper)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)
