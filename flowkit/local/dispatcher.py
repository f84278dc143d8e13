"""The local dispatcher: starts a job by running its Python body (or its mock) in a thread pool.

It implements the runtime's ``Dispatcher`` protocol, so the orchestrator cannot tell it from the
Lambda dispatcher. A job run does what a business Lambda does with the job-side client: report
``started``, call the body with the dispatch payload as the event, then report ``success`` with the
returned output or ``failed`` with the exception's class name and message. Parallel jobs run in
parallel, one pool thread each.

One dispatcher serves many runs (``flowkit.local.environment.LocalEnvironment``): ``register`` gives a
run its bodies and mocks, looked up by the payload's ``run_id``; ``forget`` drops them when it is over.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from flowkit.document import JobError
from flowkit.errors import DispatchError, RejectedReport
from flowkit.local._activity import Activity
from flowkit.local._context import LambdaContext
from flowkit.local._pool import DaemonPool
from flowkit.local.mocks import Mocks
from flowkit.runtime.limits import clean_text
from flowkit.runtime.report import Reporter
from flowkit.runtime.timers import as_datetime

__all__ = ["Body", "LocalDispatcher"]

logger = logging.getLogger(__name__)

Body = Callable[[dict[str, Any], Any], Any]
Spec = Mapping[str, Any]


class LocalDispatcher:
    """Runs jobs on this machine; ``dispatch`` returns at once, like an asynchronous Lambda invoke."""

    def __init__(
        self,
        reporter: Reporter,
        bodies: Mapping[str, Body] | None = None,
        mocks: Mocks | None = None,
        *,
        workers: int = 16,
        activity: Activity | None = None,
    ) -> None:
        self._reporter = reporter
        self._default: tuple[dict[str, Body], Mocks] = (dict(bodies or {}), mocks or Mocks())
        self._runs: dict[str, tuple[dict[str, Body], Mocks]] = {}
        self._redriven: set[str] = set()
        self._pool = DaemonPool(workers, "flowkit-job")
        self.activity = activity or Activity()
        self._lock = threading.Lock()
        self._closed = False
        self.dispatched = 0

    def dispatch(self, spec: Spec, payload: dict[str, Any]) -> None:
        name = str(spec["name"])
        with self._lock:
            if self._closed:
                raise DispatchError(f"job '{name}' cannot be started: the local run is over", job=name)
            self.dispatched += 1
        self.activity.add()
        try:
            self._pool.submit(self._run, name, spec, payload)
        except RuntimeError as exc:  # the pool shut down between the check and the submit
            self.activity.done()
            raise DispatchError(f"job '{name}' cannot be started: {exc}", job=name) from exc

    def register(
        self,
        run_id: str,
        bodies: Mapping[str, Body],
        mocks: Mocks | None = None,
        *,
        count_from_redrive: bool = False,
    ) -> None:
        """The bodies and mocks of the jobs of run ``run_id`` (before it starts).

        ``count_from_redrive``: the run is being redriven; a mock's outcome per attempt counts from the
        job's ``attempt_base`` (its first attempt since the redrive is outcome #1).
        """
        with self._lock:
            self._runs[run_id] = (dict(bodies), mocks or Mocks())
            if count_from_redrive:
                self._redriven.add(run_id)
            else:
                self._redriven.discard(run_id)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            self._redriven.discard(run_id)

    def close(self, *, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait)

    # ------------------------------------------------------------------ one job run

    def _context(self, name: str, spec: Spec, run_id: str, attempt: int) -> LambdaContext:
        """The body's ``context``: remaining time from the job's own timeout, a ``heartbeat()``."""
        store = self._reporter.store
        timeout = spec.get("timeout_seconds")
        deadline = None
        if timeout is not None:
            _, job = store.read_job(run_id, name)
            dispatched = as_datetime((job or {}).get("dispatched_at")) or store.now()
            deadline = dispatched + timedelta(seconds=float(timeout))
        return LambdaContext(
            function_name=(spec.get("target") or {}).get("function") or name,
            timeout_seconds=float(timeout) if timeout is not None else 900.0,
            deadline=deadline,
            clock=store.now,
            heartbeat=functools.partial(self._reporter.heartbeat, run_id, name, attempt),
        )

    def _run(self, name: str, spec: Spec, payload: dict[str, Any]) -> None:
        try:
            self._execute(name, spec, payload)
        except Exception:
            logger.exception("local job %s crashed outside its body", name)
        finally:
            self.activity.done()

    def _execute(self, name: str, spec: Spec, payload: dict[str, Any]) -> None:
        run_id = str(payload["run_id"])
        attempt = int(payload["attempt"])
        try:
            if not self._reporter.started(run_id, name, attempt):
                # The attempt has started elsewhere: a body runs at most once per attempt.
                logger.warning("job %s attempt %d has already started; not run again", name, attempt)
                return
        except RejectedReport as exc:
            # A Lambda whose `started` report is rejected does not run its body either.
            logger.warning("job %s attempt %d not run: %s", name, attempt, exc)
            return
        with self._lock:
            bodies, mocks = self._runs.get(run_id, self._default)
            redriven = run_id in self._redriven
        output: Any = None
        error: JobError | None = None
        if name in mocks.outcomes:
            base = 0
            if redriven:
                _, job = self._reporter.store.read_job(run_id, name)
                base = int((job or {}).get("attempt_base") or 0)
            outcome = mocks.outcome(name, attempt - base)
            if outcome.hang is not None:
                logger.info("job %s attempt %d hangs (mocked): it never reports", name, attempt)
                return
            if outcome.failure is not None:
                error = outcome.failure.to_error()
            else:
                output = outcome.success
        else:
            body = mocks.bodies.get(name) or bodies.get(name)
            if body is None:  # the runner checks this before starting; kept as a clear failure
                error = JobError(type="NoLocalBody", message=f"job '{name}' has no Python body or mock")
            else:
                context = self._context(name, spec, run_id, attempt)
                try:
                    output = body(payload, context)
                except BaseException as exc:  # sys.exit() in a body fails the job, as under @reported
                    error = JobError(type=type(exc).__name__, message=clean_text(exc))
                    logger.info("job %s attempt %d raised %s: %s", name, attempt, error.type, exc)
        # The same report as @reported makes: an output that cannot be stored unchanged fails the job
        # with InvalidOutput (mocks included), so a local run ends the way production would.
        try:
            self._reporter.finish(
                run_id,
                name,
                attempt,
                output=output,
                error=None if error is None else (error.type, error.message),
            )
        except RejectedReport as exc:
            # The attempt is over (it timed out, or the run was redriven): its outcome is stale.
            logger.warning("job %s attempt %d: outcome not recorded: %s", name, attempt, exc)
