"""Builders and a simulated world for runtime tests: documents, a recording dispatcher, a job side.

``World`` wires the real store, the real handlers and the real Reporter together. Status inserts become
real EventBridge envelopes (``flowkit.runtime.events.to_envelope``) queued as *deliveries* to the
handlers that the EventBridge rules route them to; dispatches become *job executions* that report
through the Reporter. A test (or a hypothesis schedule) decides what happens next.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowkit.document import JobSpec, Phase, Target, WorkflowDocument, content_version
from flowkit.runtime.events import to_envelope
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.report import Reporter
from flowkit.runtime.store import Store

RUNS = "state_machines"
STATUSES = "statuses"


def job(
    name: str,
    *needs: str,
    phase: str | None = None,
    condition: dict[str, Any] | None = None,
    failure_handled: bool = False,
    input: dict[str, Any] | None = None,
    function: str | None = None,
    qualifier: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "phase": phase or name,
        "target": {"function": function or f"fn-{name}", "qualifier": qualifier},
        "needs": sorted(needs),
        "condition": condition,
        "failure_handled": failure_handled,
        "input": input or {},
    }


def document(
    name: str, jobs: Sequence[Mapping[str, Any]], phases: Sequence[tuple[str, Sequence[str]]] | None = None
) -> WorkflowDocument:
    """A compiled workflow built directly from the models (phases default to one per job)."""
    if phases is None:
        order: list[str] = []
        for spec in jobs:
            if spec["phase"] not in order:
                order.append(spec["phase"])
        phases = [(p, [s["name"] for s in jobs if s["phase"] == p]) for p in order]
    body = {
        "schema_version": 1,
        "name": name,
        "version": "",
        "phases": [Phase(name=p, jobs=list(js)).model_dump(mode="json") for p, js in phases],
        "jobs": [
            JobSpec(**{**spec, "target": Target(**spec["target"])}).model_dump(mode="json") for spec in jobs
        ],
    }
    body["version"] = content_version(WorkflowDocument.model_validate(body).model_dump(mode="json"))
    return WorkflowDocument.model_validate(body)


def status_is(job_name: str, state: str) -> dict[str, Any]:
    return {"op": "eq", "args": [{"ref": ["jobs", job_name, "status"]}, {"const": state}]}


def input_eq(key: str, value: Any) -> dict[str, Any]:
    return {"op": "eq", "args": [{"ref": ["input", key]}, {"const": value}]}


def output_gt(job_name: str, key: str, value: Any) -> dict[str, Any]:
    return {"op": "gt", "args": [{"ref": ["jobs", job_name, "output", key]}, {"const": value}]}


class RecordingDispatcher:
    """Records every dispatch; thread-safe."""

    def __init__(self, *, fail_for: Sequence[str] = (), payload_limit: int | None = None) -> None:
        self.dispatched: list[tuple[str, str, int]] = []
        self.payloads: list[dict[str, Any]] = []
        self.fail_for = set(fail_for)
        self._lock = threading.Lock()
        if payload_limit is not None:
            self.payload_limit = payload_limit

    def dispatch(self, spec: Mapping[str, Any], payload: dict[str, Any]) -> None:
        if spec["name"] in self.fail_for:
            self.fail_for.discard(spec["name"])
            raise ConnectionError(f"cannot reach the target of {spec['name']}")
        with self._lock:
            self.dispatched.append((payload["run_id"], payload["job"], payload["attempt"]))
            self.payloads.append(payload)


# Which handler gets which status (the EventBridge rules, docs/architecture.md).
def routes(status: Mapping[str, Any]) -> list[str]:
    if status["job"] is None:
        return ["orchestrator"] if status["status"] == "started" else []
    if status["status"] in ("success", "failed"):
        return ["statemachine", "orchestrator"]
    return []


@dataclass
class Delivery:
    handler: str
    envelope: dict[str, Any]
    key: str


@dataclass
class World:
    """The real store + handlers + Reporter, with queued deliveries and pending job executions."""

    database: Any
    outcomes: Mapping[str, str] = field(default_factory=dict)  # job -> "success" | "fail" (default success)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    payload_limit: int | None = None

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.statuses: list[dict[str, Any]] = []
        self.store = Store(self.database, runs=RUNS, statuses=STATUSES, on_status=self._on_status)
        self.store.ensure_indexes()
        self.dispatcher = RecordingDispatcher(payload_limit=self.payload_limit)
        self.runtime = Runtime(self.store, self.dispatcher)
        self.reporter = Reporter(self.store)
        self.executed = 0

    def _on_status(self, doc: dict[str, Any]) -> None:
        envelope = to_envelope(doc, database="flowkit", collection=STATUSES)
        with self.lock:
            self.statuses.append(doc)
            for handler in routes(doc):
                self.deliveries.append(Delivery(handler, envelope, doc["key"]))

    def deliver(self, delivery: Delivery) -> dict[str, Any]:
        method = {
            "statemachine": self.runtime.statemachine_job,
            "orchestrator": self.runtime.orchestrator_job,
        }
        return method[delivery.handler](delivery.envelope, None)

    def pending_jobs(self) -> list[tuple[str, str, int]]:
        with self.lock:
            return self.dispatcher.dispatched[self.executed :]

    def execute(self, index: int = 0) -> None:
        """The job side: the ``index``-th not-yet-run dispatch reports started, then its outcome."""
        with self.lock:
            pending = self.dispatcher.dispatched[self.executed :]
            run_id, name, attempt = pending[index]
            # keep the list order meaningful: move the chosen one to the executed prefix
            chosen = self.dispatcher.dispatched.pop(self.executed + index)
            self.dispatcher.dispatched.insert(self.executed, chosen)
            self.executed += 1
        self.reporter.started(run_id, name, attempt)
        if self.outcomes.get(name, "success") == "fail":
            self.reporter.failed(run_id, name, attempt, "ValueError", f"{name} broke")
        else:
            self.reporter.succeeded(run_id, name, attempt, self.outputs.get(name, {"job": name}))

    def drain(self) -> None:
        """Deliver everything and run every job, in FIFO order, until quiet."""
        while True:
            with self.lock:
                delivery = self.deliveries.pop(0) if self.deliveries else None
            if delivery is not None:
                self.deliver(delivery)
                continue
            if self.pending_jobs():
                self.execute(0)
                continue
            return

    def end_events(self, run_id: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.store.statuses.find({"run_id": run_id, "job": None})
            if s["status"] in ("success", "failed")
        ]
