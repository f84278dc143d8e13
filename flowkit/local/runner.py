"""Run a workflow to completion on this machine, through the real runtime: the one-call form.

``run_workflow`` builds a ``LocalEnvironment`` (store, in-process event bus, local dispatcher, the
runtime handlers; see ``flowkit.local.environment``) for one run, runs the workflow through it and
closes it. Many runs in a row (a test session) reuse one environment instead:
``with LocalEnvironment() as env: env.run(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flowkit.local._target import Runnable, check_runnable, resolve
from flowkit.local.clock import Clock, ClockName
from flowkit.local.environment import LocalEnvironment
from flowkit.local.mocks import Mocks, mocks_from
from flowkit.local.result import LocalRun, RunLocation
from flowkit.runtime.config import Settings

__all__ = [
    "LocalEnvironment",
    "LocalRun",
    "RunLocation",
    "Runnable",
    "check_runnable",
    "resolve",
    "run_workflow",
]


def run_workflow(
    workflow_or_document: Any,
    input: Mapping[str, Any] | None = None,
    *,
    mocks: Mocks | Mapping[str, Any] | None = None,
    chaos: int | None = None,
    database: Any = None,
    mongo_uri: str | None = None,
    timeout: float = 60,
    display: bool | None = None,
    settings: Settings | None = None,
    run_id: str | None = None,
    workers: int = 16,
    console: Any = None,
    clock: ClockName | Clock | None = None,
    cancel_after: float | timedelta | None = None,
) -> LocalRun:
    """Run a workflow locally to completion and return the finished run.

    ``mocks`` replaces job outcomes (see ``flowkit.local.mocks``); ``chaos=SEED`` makes the bus
    duplicate, reorder and delay deliveries. The store is ``database`` (a pymongo ``Database``) if
    given, else MongoDB at ``mongo_uri``, else a fresh embedded store. Collection names come from
    ``settings`` (default: the environment). ``display=True`` shows the live table on stdout (or on
    ``console``, a rich ``Console``). ``clock="virtual"`` runs on a virtual clock that jumps to the
    next due time (a retry's backoff, a timeout) whenever nothing else is in flight; the default
    ``"wall"`` waits for real. ``cancel_after`` (seconds or a ``timedelta``) cancels the run that long
    after it started, on that clock, unless it ended before (``LocalEnvironment.cancel`` does it from
    another thread).

    Raises ``InvalidMock`` before starting if a job has neither a body nor a mock, ``RunError`` if
    the run has not ended after ``timeout`` seconds or stalls (naming the unfinished jobs).
    """
    # Checked before the store is opened, so a bad mock is reported whatever the store's state.
    runnable = resolve(workflow_or_document)
    mocks = mocks_from(mocks)
    check_runnable(runnable.document, runnable.bodies, mocks)
    with LocalEnvironment(
        database=database, mongo_uri=mongo_uri, settings=settings, chaos=chaos, workers=workers, clock=clock
    ) as environment:
        return environment.run(
            runnable,
            input,
            mocks=mocks,
            timeout=timeout,
            display=display,
            console=console,
            run_id=run_id,
            cancel_after=cancel_after,
        )
