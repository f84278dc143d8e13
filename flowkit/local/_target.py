"""What a local run runs: a compiled workflow and the Python bodies of its jobs.

``resolve`` accepts what users hold (a DSL workflow, a compiled ``WorkflowDocument``, a CLI target
string) and ``check_runnable`` refuses, before anything starts, a mock for a job that does not exist
or a job that has neither a body nor a mock.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowkit.document import WorkflowDocument
from flowkit.errors import InvalidMock, LoadError
from flowkit.local.dispatcher import Body
from flowkit.local.mocks import Mocks

__all__ = ["Runnable", "check_runnable", "resolve"]


def _import_handler(job: str, handler: str) -> Body:
    module_name, _, qualname = handler.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise LoadError(f"job '{job}': cannot import its body {handler!r}: {exc}", job=job) from exc
    # a decorated job may wrap its function; the compiled handler names the job object
    body = getattr(target, "body", None) or getattr(target, "fn", None) or target
    if not callable(body):
        raise LoadError(f"job '{job}': {handler!r} is not callable", job=job)
    return body  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Runnable:
    """A compiled workflow with the Python bodies of its jobs (job name -> body)."""

    document: WorkflowDocument
    bodies: Mapping[str, Body]


def resolve(workflow: Any) -> Runnable:
    """The compiled document and the Python bodies of ``workflow``.

    ``workflow`` is a DSL workflow, a ``WorkflowDocument`` (bodies imported from each job's
    ``handler``), a ``Runnable``, or a CLI target string naming exactly one workflow.
    """
    if isinstance(workflow, Runnable):
        return workflow
    if isinstance(workflow, str):
        from flowkit.loader import load_workflows

        found = load_workflows(workflow)
        if len(found) != 1:
            names = ", ".join(sorted(str(getattr(w, "name", w)) for w in found))
            raise LoadError(
                f"{workflow}: expected one workflow, found {len(found)} ({names}); use file.py:attr"
            )
        workflow = found[0]
    if isinstance(workflow, WorkflowDocument):
        bodies = {
            spec.name: _import_handler(spec.name, spec.handler) for spec in workflow.jobs if spec.handler
        }
        return Runnable(workflow, bodies)
    if callable(getattr(workflow, "bodies", None)):
        from flowkit.compiler import compile as compile_workflow
        from flowkit.errors import FlowkitError, InvalidWorkflow
        from flowkit.loader import describe_user_error

        try:
            document = compile_workflow(workflow)
        except FlowkitError:
            raise
        except Exception as exc:  # the workflow function itself raised: as `flowkit validate` says it
            name = getattr(workflow, "name", "?")
            message = describe_user_error(f"workflow {name!r} could not be built", exc)
            raise InvalidWorkflow(message, workflow=name) from exc
        return Runnable(document, dict(workflow.bodies()))
    raise LoadError(
        f"cannot run {type(workflow).__name__!s} {workflow!r}: expected a workflow, a WorkflowDocument "
        "or a target such as workflows/nightly_etl.py"
    )


def check_runnable(document: WorkflowDocument, bodies: Mapping[str, Body], mocks: Mocks) -> None:
    """Every mock names a job, and every job has a body or a mock; else ``InvalidMock``."""
    mocks.check_jobs(document)
    missing = [spec for spec in document.jobs if spec.name not in bodies and spec.name not in mocks]
    if not missing:
        return
    lines = []
    for spec in missing:
        target = f" (it runs Lambda '{spec.target.function}')" if spec.target.function else ""
        lines.append(
            f"job '{spec.name}' has no Python body{target}, so a local run needs its outcome mocked: "
            f"--mock {spec.name}=@output.json, a mock file entry "
            f'{{"jobs": {{"{spec.name}": [{{"success": {{...}}}}]}}}}, '
            f"or run_workflow(..., mocks={{'{spec.name}': {{...}}}})"
        )
    raise InvalidMock("; ".join(lines), workflow=document.name, job=missing[0].name)
