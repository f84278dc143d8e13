"""The daemon worker pool behind the bus and the dispatcher."""

from __future__ import annotations

import threading

import pytest

from flowkit.local._pool import DaemonPool


def test_work_runs_on_at_most_the_pool_size_of_daemon_threads() -> None:
    pool = DaemonPool(3, "test")
    seen: set[str] = set()
    done = threading.Semaphore(0)

    def work() -> None:
        seen.add(threading.current_thread().name)
        assert threading.current_thread().daemon
        done.release()

    for _ in range(20):
        pool.submit(work)
    for _ in range(20):
        assert done.acquire(timeout=5)
    pool.shutdown()

    assert 1 <= len(seen) <= 3


def test_an_exception_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = DaemonPool(1, "test")
    done = threading.Event()

    def boom() -> None:
        raise ValueError("boom")

    pool.submit(boom)
    pool.submit(done.set)

    assert done.wait(5)
    pool.shutdown()
    assert "uncaught error in test worker" in caplog.text


def test_submit_after_shutdown_is_refused() -> None:
    pool = DaemonPool(1, "test")
    pool.shutdown()

    with pytest.raises(RuntimeError, match="pool test is shut down"):
        pool.submit(print)


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        DaemonPool(0, "test")
