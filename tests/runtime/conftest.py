"""Fixtures for runtime tests: a ``World`` (real store + handlers + Reporter) on each backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _harness import World


@pytest.fixture
def make_world(database: Any) -> Callable[..., World]:
    """``make_world(outcomes=..., outputs=...)`` on the embedded database."""

    def make(**kwargs: Any) -> World:
        return World(database, **kwargs)

    return make
