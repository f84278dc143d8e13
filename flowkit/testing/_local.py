"""``flowkit_run``: run a workflow locally in a test and get the finished run back.

    def test_nothing_to_load_skips_load(flowkit_run):
        run = flowkit_run(nightly_etl, input={"date": "2026-11-27"}, mocks={"extract": {"rows": 0}})
        assert run.jobs["load"].state == "skipped"

The callable takes the same parameters as ``flowkit.local.runner.run_workflow`` and returns its
``LocalRun``. Nothing heavy is imported until the fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flowkit.local.runner import LocalRun

__all__ = ["flowkit_run"]


@pytest.fixture
def flowkit_run() -> Callable[..., LocalRun]:
    """``run_workflow`` itself: ``(workflow, input=None, *, mocks=None, chaos=None, ...) -> LocalRun``."""
    from flowkit.local.runner import run_workflow

    return run_workflow
