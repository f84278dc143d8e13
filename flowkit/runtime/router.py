"""The job router: one Lambda function serving every ``@job`` body of the workflows it is given.

Handler string ``flowkit.runtime.handlers.job_router``; ``FLOWKIT_WORKFLOW_MODULES`` names the modules
holding the workflows (comma-separated, importable from the package root, e.g.
``workflows.nightly_etl``). The orchestrator's payload names the workflow and the job; the router calls
that job's body through ``reported``, so ``started`` and ``success`` / ``failed`` are reported for it.
The same function can be deployed once per job (each job's ``target`` naming its own function) or once
for the workflow (``Defaults(jobs_function=...)``): the code is the same.

A payload naming a job the modules do not define is reported as ``failed`` (``UnknownJob``) rather than
left hanging. A crash the body cannot report (timeout, out of memory, a killed process) is reported by
the function's on-failure destination (``flowkit.runtime.destinations``).

This is job-side code: it imports the user's workflow modules (and with them the DSL), never the
orchestration handlers' hot path.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flowkit.errors import ConfigError, RejectedReport
from flowkit.runtime.destinations import REPORTED_MARKER
from flowkit.runtime.report import Reporter, reported
from flowkit.vocab import EventStatus

if TYPE_CHECKING:
    from flowkit.runtime.config import Settings

__all__ = ["Registry", "route"]

logger = logging.getLogger(__name__)

Body = Callable[..., Any]


class Registry:
    """Workflow name -> job name -> body, from the workflows defined in some modules."""

    def __init__(self, modules: list[str]) -> None:
        from flowkit.dsl import Workflow

        self.bodies: dict[str, dict[str, Body]] = {}
        for name in modules:
            module = importlib.import_module(name)
            for value in vars(module).values():
                if isinstance(value, Workflow):
                    self.bodies.setdefault(value.name, {}).update(value.bodies())
        if not self.bodies:
            raise ConfigError(f"no workflow found in {', '.join(modules) or '(no modules)'}")

    @classmethod
    def from_setting(cls, value: str | None) -> Registry:
        modules = [part.strip() for part in (value or "").split(",") if part.strip()]
        if not modules:
            raise ConfigError(
                "the job router needs FLOWKIT_WORKFLOW_MODULES: the modules holding your workflows, "
                "e.g. 'workflows.nightly_etl'"
            )
        return cls(modules)

    def body(self, workflow: str, job: str) -> Body | None:
        return self.bodies.get(workflow, {}).get(job)


_registry: Registry | None = None
_reporter: Reporter | None = None
_lock = threading.Lock()


def _settings_from_env() -> Settings:
    from flowkit.runtime.config import Settings, resolve_secrets

    return resolve_secrets(Settings.from_env())


def _container(settings_of: Callable[[], Settings] | None = None) -> tuple[Registry, Reporter]:
    """The container's registry and reporter, built once from ``settings_of()`` (default: the environment)."""
    global _registry, _reporter
    if _registry is None or _reporter is None:
        with _lock:
            if _registry is None or _reporter is None:
                from flowkit.runtime.store import Store

                settings = (settings_of or _settings_from_env)()
                _registry = Registry.from_setting(settings.workflow_modules)
                _reporter = Reporter(Store.from_settings(settings))
    return _registry, _reporter


def route(
    event: Any,
    context: Any = None,
    *,
    registry: Registry | None = None,
    reporter: Reporter | None = None,
    settings: Callable[[], Settings] | None = None,
) -> dict[str, Any]:
    """Run the body ``event`` names and report it; returns ``{"flowkit_reported": True, ...}``.

    ``settings`` gives the container's settings when the registry and reporter are built (the Lambda
    entry point ``flowkit.runtime.handlers.job_router`` passes its own, secrets already read).
    """
    if registry is None or reporter is None:
        default_registry, default_reporter = _container(settings)
        registry, reporter = registry or default_registry, reporter or default_reporter
    if not isinstance(event, Mapping) or not all(k in event for k in ("run_id", "job", "attempt")):
        raise RejectedReport("the job router receives a flowkit job payload (run_id, workflow, job, attempt)")
    workflow, job = str(event.get("workflow", "")), str(event["job"])
    body = registry.body(workflow, job)
    if body is None:
        known = ", ".join(sorted(registry.bodies.get(workflow, {}))) or "none"
        message = f"no @job body for job {job!r} of workflow {workflow!r} here (bodies: {known})"
        logger.error("%s", message)
        reporter.failed(str(event["run_id"]), job, int(event["attempt"]), "UnknownJob", message)
        return {
            REPORTED_MARKER: True,
            "status": EventStatus.FAILED.value,
            "error": {"type": "UnknownJob", "message": message},
        }
    result = reported(reporter=reporter)(body)(event, context)
    return {REPORTED_MARKER: True, "job": job, "result": result}
