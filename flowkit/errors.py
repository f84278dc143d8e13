"""Every error flowkit raises, under one root.

    FlowkitError
    ├── InvalidWorkflow          a workflow definition is broken (DSL misuse, failed validation)
    │   └── ConditionError       a condition cannot be built, serialized or is malformed
    ├── LoadError                a CLI target cannot be found or the user's module fails to import
    ├── BadArgument              a command-line value (--input, --mock, --diagram, ...) cannot be used
    ├── InvalidMock              a local-run mock (--mock, mock file) is malformed or names no job
    ├── ConfigError              bad configuration: a missing MongoDB URI, a malformed environment
    │                            variable, a notifier without credentials or with a bad URL
    ├── MissingDependency        an optional extra is not installed (message carries the pip command)
    ├── EventError               a malformed EventBridge / Atlas-trigger event
    ├── RunError                 something about a run is wrong
    │   ├── UnknownRun           the run id does not exist
    │   ├── RejectedReport       a job report that does not match the run's state (wrong attempt, ...)
    │   └── RunReplaced          the run was deleted and started again while a handler read it (retry)
    ├── StoreError               the MongoDB store cannot be used
    │   ├── StoreUnavailable     MongoDB cannot be reached (the message names the host, never a password)
    │   └── IndexConflict        a collection holds an index flowkit cannot work with
    ├── DispatchError            a job could not be started (e.g. payload over the size limit)
    │   └── DispatchUncertain    the start request may have reached the target (e.g. a read timeout)
    ├── LimitExceeded            a write over a service's limit (MongoDB's 16 MB or 100 levels, ...)
    ├── DeployError              a Lambda artifact or the CloudFormation template cannot be built
    ├── NotifyError              a notification could not be delivered (Slack error code in ``code``)
    └── RenderError              a diagram could not be rendered (e.g. the `dot` binary is missing)

Outside the tree, on purpose: ``TypeError`` for misuse of the Python API while a workflow is written
(a non-job passed to ``sequence``, ``retry=3`` instead of ``Retry(...)``, an operator between a condition
and a non-value: Python's own convention, raised where the mistake is made), and the
``TypeError``/``ValueError``/``InvalidDocument`` of the embedded store, which are pymongo's. The test
``tests/house/test_error_tree.py`` walks every ``raise`` of the package and holds it to this.

Errors carry their context as attributes (``workflow``, ``job``, ``run_id``) so that callers can
react without parsing messages. Chain with ``raise ... from exc``. The command line maps each class to
an exit code in one table (``flowkit.cli._exit``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BadArgument",
    "ConditionError",
    "ConfigError",
    "DeployError",
    "DispatchError",
    "DispatchUncertain",
    "EventError",
    "FlowkitError",
    "IndexConflict",
    "InvalidMock",
    "InvalidWorkflow",
    "LimitExceeded",
    "LoadError",
    "MissingDependency",
    "NotifyError",
    "RejectedReport",
    "RenderError",
    "RunError",
    "RunReplaced",
    "StoreError",
    "StoreUnavailable",
    "UnknownRun",
]


class FlowkitError(Exception):
    """Root of every flowkit error."""

    def __init__(
        self,
        message: str,
        *,
        workflow: str | None = None,
        job: str | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.workflow = workflow
        self.job = job
        self.run_id = run_id


class InvalidWorkflow(FlowkitError):
    """A workflow definition is broken. ``problems`` holds one line per problem, sorted."""

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[str] = (),
        workflow: str | None = None,
        job: str | None = None,
    ) -> None:
        self.problems: list[str] = list(problems) or [message]
        super().__init__(message, workflow=workflow, job=job)


class ConditionError(InvalidWorkflow):
    """A condition cannot be built, serialized, or is malformed."""


class LoadError(FlowkitError):
    """A CLI target (``module:attr``, file or folder) cannot be loaded."""


class BadArgument(FlowkitError):
    """A command-line value that cannot be used; the message names the option (and the file)."""


class InvalidMock(FlowkitError):
    """A local-run mock is malformed, names a job the workflow does not have, or a job lacks one."""


class ConfigError(FlowkitError):
    """Bad configuration: a missing or malformed setting (environment variable, notifier, store URI)."""


class MissingDependency(FlowkitError):
    """An optional dependency is missing; the message says which extra to install."""


class EventError(FlowkitError):
    """A malformed event: it is rejected before anything is written."""


class RunError(FlowkitError):
    """Something about a run is wrong."""


class UnknownRun(RunError):
    """The run id does not exist in the store."""


class RejectedReport(RunError):
    """A job report that does not match the stored run (job not dispatched/running at that attempt)."""


class RunReplaced(RunError):
    """The run was deleted and started again under the same id while it was being read: retry."""


class StoreError(FlowkitError):
    """The MongoDB store cannot be used."""


class StoreUnavailable(StoreError):
    """MongoDB cannot be reached; the message names the host (credentials masked)."""


class IndexConflict(StoreError):
    """A collection already holds an index flowkit cannot work with (e.g. not unique where it must be)."""


class DispatchError(FlowkitError):
    """A job could not be started."""


class DispatchUncertain(DispatchError):
    """The start request may have reached the target (sent, then no answer): it must not be sent again.

    The claim is kept; the job's deadline recovers it if the request was in fact lost.
    """


class LimitExceeded(FlowkitError):
    """A write refused by a service's limit: MongoDB's document size or nesting depth, an event's size."""


class DeployError(FlowkitError):
    """A Lambda artifact (``flowkit package``) or the template (``flowkit template``) cannot be built."""


class NotifyError(FlowkitError):
    """A notification could not be delivered; ``code`` is the platform's error code when it gave one."""

    def __init__(self, message: str, *, code: str | None = None, delivered: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.delivered = delivered


class RenderError(FlowkitError):
    """A diagram could not be rendered."""
