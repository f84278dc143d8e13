"""Lambda cold start: what importing (and using) the handlers loads, checked in a fresh interpreter.

Import times are measured by ``benchmarks/bench_runtime.py``, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

EVENTS = Path(__file__).resolve().parent.parent / "events"

# Never in a Lambda container running the handlers.
FORBIDDEN = [
    "networkx",
    "graphviz",
    "rich",
    "flowkit.dsl",
    "flowkit.compiler",
    "flowkit.validation",
    "flowkit.cli",
    "flowkit.diagram",
    "flowkit.loader",
]
# Not at import time: loaded on first use (the event parser and the notifier; boto3 and slack_sdk with
# their clients), so that importing the handlers costs next to nothing beyond pymongo. pydantic and the
# document models are never loaded by the handlers, not even by the first event (test below).
DEFERRED = [
    "pydantic",
    "boto3",
    "botocore",
    "slack_sdk",
    "flowkit.document",
    "flowkit.runtime.events",
    "flowkit.runtime.notify",
    "flowkit.runtime._slack_message",
]


def loaded_after(code: str) -> list[str]:
    """Top-level modules and flowkit modules loaded after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        print(json.dumps(sorted(sys.modules)))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


def found(modules: list[str], names: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_the_handlers_loads_nothing_heavy() -> None:
    modules = loaded_after("import flowkit.runtime.handlers, flowkit.runtime.report")
    assert "pymongo" in modules  # the check sees what was imported
    assert found(modules, FORBIDDEN) == []
    assert found(modules, DEFERRED) == []


def test_handling_events_still_loads_no_authoring_code() -> None:
    modules = loaded_after(
        """
        from flowkit.local.embedded import embedded_database
        from flowkit.runtime.events import to_envelope
        from flowkit.runtime.handlers import Runtime
        from flowkit.runtime.store import Store, make_status

        class Dispatcher:
            def dispatch(self, spec, payload):
                pass

        store = Store(embedded_database("cold"))
        store.runs.insert_one({
            "_id": "r", "workflow": "wf", "version": "v", "input": {}, "status": "running", "phase": "a",
            "phase_index": 0, "remaining": 1, "unhandled": 0,
            "config": {"name": "wf", "phases": [{"name": "a", "jobs": ["a"]}],
            "jobs": [{"name": "a", "phase": "a", "target": {"function": "fn"}, "needs": []}]},
            "jobs": {"a": {"state": "pending", "attempt": 0, "unmet": 0, "output": None}},
        })
        event = to_envelope(make_status("r", "wf", None, 0, "started"), database="cold", collection="statuses")
        result = Runtime(store, Dispatcher()).orchestrator_job(event, None)
        assert result["dispatched"] == ["a"], result
        """
    )
    assert "flowkit.runtime.handlers" in modules
    assert found(modules, FORBIDDEN) == []


def test_the_first_event_loads_no_pydantic() -> None:
    # given a fresh interpreter with the handlers, a run whose job 'load' is running, and the real
    # Atlas-trigger event of its failure (tests/events/job_failed_relaxed.json)
    fixture = EVENTS / "job_failed_relaxed.json"
    modules = loaded_after(
        f"""
        import json
        from flowkit.local.embedded import embedded_database
        from flowkit.runtime.handlers import Runtime
        from flowkit.runtime.store import Store

        class Dispatcher:
            def dispatch(self, spec, payload):
                raise AssertionError("nothing is ready")

        class Notifier:
            messages = []

            def send(self, message):
                self.messages.append(message)
                return True

        store = Store(embedded_database("flowkit"))
        store.runs.insert_one({{
            "_id": "nightly-etl-2026-11-27", "workflow": "nightly-etl", "version": "v", "input": {{}},
            "status": "running", "phase": "load", "phase_index": 0, "remaining": 1, "unhandled": 0,
            "config": {{
                "name": "nightly-etl", "phases": [{{"name": "load", "jobs": ["load"]}}],
                "jobs": [{{"name": "load", "phase": "load", "target": {{"function": "fn"}}, "needs": []}}],
                "notifications": {{"slack_channel": "#etl", "on": ["job.failed", "run.failed"]}},
            }},
            "jobs": {{"load": {{"state": "running", "attempt": 1, "output": None}}}},
        }})
        event = json.loads(open({str(fixture)!r}, encoding="utf-8").read())
        notifier = Notifier()
        runtime = Runtime(store, Dispatcher(), notifier)

        # when the three handlers each handle it
        recorded = runtime.statemachine_job(event, None)
        scheduled = runtime.orchestrator_job(event, None)
        notified = runtime.notifications_job(event, None)

        assert recorded["action"] == "recorded", recorded
        assert scheduled["action"] == "scheduled", scheduled
        assert notified == {{"run_id": "nightly-etl-2026-11-27", "action": "notified", "sent": True}}, notified
        [message] = notifier.messages
        assert (message.kind, message.channel) == ("job.failed", "#etl"), message
        assert store.get_run("nightly-etl-2026-11-27")["status"] == "failed"
        """
    )
    # then the parser and the notifier ran, and neither pydantic nor the document models were loaded
    assert "flowkit.runtime.events" in modules and "flowkit.runtime.notify" in modules
    assert found(modules, ["pydantic", "pydantic_core", "flowkit.document"]) == []
    assert found(modules, FORBIDDEN) == []
