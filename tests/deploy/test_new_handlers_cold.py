"""The starter and the destinations handler stay on the light path: no pydantic, no authoring code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from flowkit import compile
from workflows.order_pipeline import order_pipeline

HEAVY = ["pydantic", "pydantic_core", "flowkit.document", "networkx", "flowkit.dsl", "flowkit.compiler"]


def loaded_after(code: str) -> list[str]:
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


def heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in HEAVY))


def test_starting_a_published_run_and_handling_a_result_load_no_pydantic() -> None:
    # given a published definition (as `flowkit publish` stores it: the compiled document's JSON)
    document = json.dumps(compile(order_pipeline).model_dump(mode="json"))
    modules = loaded_after(
        f"""
        import json
        from flowkit.local.embedded import embedded_database
        from flowkit.runtime.definitions import Definitions
        from flowkit.runtime.destinations import handle_result
        from flowkit.runtime.starter import start_published
        from flowkit.runtime.store import Store

        store = Store(embedded_database("cold"))
        Definitions(store.database).publish(json.loads({document!r}))
        # when the starter starts it and a Lambda destination reports a job's failure
        started = start_published(store, {{"workflow": "order-pipeline", "input": {{"order_id": "o"}}, "run_id": "o-1"}})
        assert started["status"] == "running", started
        assert store.claim("o-1", "validate-order", 0)
        record = {{
            "requestContext": {{"condition": "RetriesExhausted"}},
            "requestPayload": {{"run_id": "o-1", "job": "validate-order", "attempt": 1}},
            "responsePayload": {{"errorType": "Runtime.ExitError", "errorMessage": "signal: killed"}},
        }}
        assert handle_result(store, record)["action"] == "reported"
        """
    )
    # then neither loaded pydantic nor any authoring code
    assert "flowkit.runtime.starter" in modules and "flowkit.runtime.destinations" in modules
    assert heavy(modules) == []
