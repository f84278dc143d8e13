"""``flowkit_run``: run a workflow locally in a test and get the finished run back.

    def test_nothing_to_load_skips_load(flowkit_run):
        run = flowkit_run(nightly_etl, input={"date": "2026-11-27"}, mocks={"extract": {"rows": 0}})
        assert run.jobs["load"].state == "skipped"

The callable takes the parameters of ``flowkit.local.runner.run_workflow`` and returns its ``LocalRun``.
Runs go through one ``LocalEnvironment`` per test session (``flowkit_environment``: an embedded store,
a bus, a job pool, built once); a call that asks for its own store (``database=``, ``mongo_uri=``,
``settings=``, ``workers=``, ``clock=``) gets a one-run environment of its own. Nothing heavy is
imported until a fixture is used.

The session's environment runs on a virtual clock: a retry's backoff or a job's timeout is jumped
over as soon as nothing else runs, so a test of a one-hour timeout takes milliseconds. Pass
``clock="wall"`` for a run in real time. ``cancel_after=SECONDS`` cancels the run that long after it
started, in that virtual time; ``flowkit_environment.redrive(workflow, run.id, mocks=...)`` redrives a
run that ended unsuccessfully.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from flowkit.local.environment import LocalEnvironment
    from flowkit.local.result import LocalRun

__all__ = ["flowkit_environment", "flowkit_run"]

# run_workflow's options that belong to the environment, not to one run
_OWN_ENVIRONMENT = ("database", "mongo_uri", "settings", "workers", "clock")


@pytest.fixture(scope="session")
def flowkit_environment() -> Iterator[LocalEnvironment]:
    """One ``LocalEnvironment`` (embedded store, virtual clock) for the whole test session."""
    from flowkit.local.environment import LocalEnvironment

    with LocalEnvironment(clock="virtual") as environment:
        yield environment


@pytest.fixture
def flowkit_run(flowkit_environment: LocalEnvironment) -> Callable[..., LocalRun]:
    """``(workflow, input=None, *, mocks=None, chaos=None, ...) -> LocalRun``, like ``run_workflow``."""
    from flowkit.local.runner import run_workflow

    def run(workflow: Any, input: Any = None, **options: Any) -> LocalRun:
        if any(options.get(name) is not None for name in _OWN_ENVIRONMENT):
            return run_workflow(workflow, input, **options)
        for name in _OWN_ENVIRONMENT:
            options.pop(name, None)
        return flowkit_environment.run(workflow, input, **options)

    return run
