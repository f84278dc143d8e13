"""The workflow the end-to-end deployment test deploys (tests/deploy/test_end_to_end.py).

``prepare`` and ``crash`` are Python bodies served by one job-router function (``e2e-jobs``); ``score``
is an existing Lambda function (``legacy-score``) that knows nothing about flowkit and reports through
Lambda's destinations. ``crash`` kills its own process before it can report, as an out-of-memory kill
would.
"""

from __future__ import annotations

import os
from typing import Any

from flowkit import Defaults, job, parallel, workflow


@job(timeout=30)
def prepare(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return {"orders": len(event["input"].get("orders", []))}


@job(timeout=30)
def crash(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    os._exit(137)  # the process dies: nothing is reported from here


score = job("score", target="legacy-score", timeout=30)


@workflow(name="e2e", defaults=Defaults(jobs_function="e2e-jobs"))
def e2e() -> Any:
    return prepare >> parallel(score, crash)
