"""A small pool of daemon worker threads.

``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter exit, so one job body
that never returns keeps ``flowkit run --timeout 5`` from exiting. These workers are daemon threads:
the run gives up on them at the timeout and the process can still end. Submitting is one queue put.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonPool"]

logger = logging.getLogger(__name__)

_STOP = object()


class DaemonPool:
    def __init__(self, workers: int, name: str) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, got {workers}")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._name = name
        self._size = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker; exceptions are logged (callers catch their own)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"pool {self._name} is shut down")
            if len(self._threads) < self._size:
                # start workers lazily, up to the size: a 3-job run needs no 16 threads
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:
                logger.exception("uncaught error in %s worker", self._name)

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Stop after the queued work; with ``wait``, join the workers (daemons are left behind otherwise)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                thread.join(timeout)
