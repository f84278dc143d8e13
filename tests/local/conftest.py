"""Fixtures for the local-runner tests (helpers live in ``_localrun.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.local.runner import LocalRun


@pytest.fixture
def states() -> Any:
    """``states(run)``: job name -> state, as plain strings."""

    def states_of(run: LocalRun) -> dict[str, str]:
        return {name: job.state.value for name, job in run.jobs.items()}

    return states_of
