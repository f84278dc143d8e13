"""Builders and a simulated world for runtime tests: documents, a recording dispatcher, a job side.

``World`` wires the real store, the real handlers and the real Reporter together. Status inserts become
real EventBridge envelopes (``flowkit.runtime.events.to_envelope``) queued as *deliveries* to the
handlers that the EventBridge rules route them to; dispatches become *job executions* that report
through the Reporter. A test (or a hypothesis schedule) decides what happens next.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowkit.document import JobSpec, Phase, Target, WorkflowDocument, content_version
from flowkit.errors import RejectedReport
from flowkit.runtime import engine, timers
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
    retry: dict[str, Any] | None = None,
    timeout: float | None = None,
    heartbeat: float | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "phase": phase or name,
        "target": {"function": function or f"fn-{name}", "qualifier": qualifier},
        "needs": sorted(needs),
        "condition": condition,
        "failure_handled": failure_handled,
        "input": input or {},
    }
    if retry is not None:
        spec["retry"] = retry
    if timeout is not None:
        spec["timeout_seconds"] = timeout
    if heartbeat is not None:
        spec["heartbeat_seconds"] = heartbeat
    return spec


def document(
    name: str,
    jobs: Sequence[Mapping[str, Any]],
    phases: Sequence[tuple[str, Sequence[str]]] | None = None,
    *,
    timeout: float | None = None,
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
        "timeout_seconds": timeout,
    }
    body["version"] = content_version(WorkflowDocument.model_validate(body).model_dump(mode="json"))
    return WorkflowDocument.model_validate(body)


def status_is(job_name: str, state: str) -> dict[str, Any]:
    return {"op": "eq", "args": [{"ref": ["jobs", job_name, "status"]}, {"const": state}]}


def input_eq(key: str, value: Any) -> dict[str, Any]:
    return {"op": "eq", "args": [{"ref": ["input", key]}, {"const": value}]}


def output_gt(job_name: str, key: str, value: Any) -> dict[str, Any]:
    return {"op": "gt", "args": [{"ref": ["jobs", job_name, "output", key]}, {"const": value}]}


_SEQUENCE = itertools.count()
"""One order of dispatches and outcome events across a world (``next`` is atomic in CPython)."""


class RecordingDispatcher:
    """Records every dispatch; thread-safe. ``when`` gives each dispatch its place in ``_SEQUENCE``."""

    def __init__(self, *, fail_for: Sequence[str] = (), payload_limit: int | None = None) -> None:
        self.dispatched: list[tuple[str, str, int]] = []
        self.when: dict[tuple[str, str, int], int] = {}
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
            self.when[payload["run_id"], payload["job"], payload["attempt"]] = next(_SEQUENCE)


# Which handler gets which status (the EventBridge rules, docs/architecture.md).
def routes(status: Mapping[str, Any]) -> list[str]:
    if status["job"] is None:
        return ["orchestrator"] if status["status"] == "started" else []
    if status["status"] in ("success", "failed", "timed_out"):
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
    # job -> "success" | "fail" | "hang" (default success), or one of those per attempt (the last repeats)
    outcomes: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    payload_limit: int | None = None
    error_types: Mapping[str, str] = field(default_factory=dict)  # job -> error type of "fail" (ValueError)
    messages: Mapping[str, str] = field(
        default_factory=dict
    )  # job -> error message of "fail" ("<job> broke")
    clock: Any = None  # a flowkit.local.clock.VirtualClock for runs with timers
    timers: bool = False
    """With timers, an attempt may time out before it reports: its job side then stops quietly (as a
    Lambda whose report is rejected does) instead of raising."""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.statuses: list[dict[str, Any]] = []
        self.store = Store(
            self.database, runs=RUNS, statuses=STATUSES, on_status=self._on_status, clock=self.clock
        )
        self.store.ensure_indexes()
        self.dispatcher = RecordingDispatcher(payload_limit=self.payload_limit)
        self.runtime = Runtime(self.store, self.dispatcher)
        self.reporter = Reporter(self.store)
        self.executed = 0
        self.stale_reports: list[tuple[str, str, int]] = []
        self.controls: list[tuple[str, str]] = []
        self.outcome_at: dict[tuple[str, str], int] = {}

    def _on_status(self, doc: dict[str, Any]) -> None:
        envelope = to_envelope(doc, database=self.store.database.name, collection=STATUSES)
        with self.lock:
            self.statuses.append(doc)
            if doc["job"] is not None and doc["status"] in ("success", "failed", "timed_out"):
                self.outcome_at.setdefault((doc["run_id"], doc["job"]), next(_SEQUENCE))
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

    def take_job(self, index: int = 0) -> tuple[str, str, int]:
        """Mark the ``index``-th not-yet-run dispatch as taken by the job side and return it."""
        with self.lock:
            chosen = self.dispatcher.dispatched.pop(self.executed + index)
            self.dispatcher.dispatched.insert(self.executed, chosen)
            self.executed += 1
            return chosen

    def outcome(self, name: str, attempt: int) -> str:
        """The scripted outcome of ``name`` at ``attempt``: success, fail or hang."""
        script = self.outcomes.get(name, "success")
        if isinstance(script, str):
            return script
        return script[min(attempt, len(script)) - 1]

    def report_job(self, dispatch: tuple[str, str, int]) -> None:
        """The job side of one dispatch: report ``started``, then its scripted outcome.

        With ``timers``, a report that is rejected (the attempt timed out first) ends the job side
        there, as a Lambda whose start is refused does not run its body; ``hang`` never reports.
        """
        run_id, name, attempt = dispatch
        try:
            self.reporter.started(run_id, name, attempt)
        except RejectedReport:
            if not self.timers:
                raise
            return
        outcome = self.outcome(name, attempt)
        try:
            if outcome == "hang":
                return
            if outcome == "fail":
                self.reporter.failed(
                    run_id,
                    name,
                    attempt,
                    self.error_types.get(name, "ValueError"),
                    self.messages.get(name, f"{name} broke"),
                )
            else:
                self.reporter.succeeded(run_id, name, attempt, self.outputs.get(name, {"job": name}))
        except RejectedReport:
            if not self.timers:
                raise  # the attempt timed out meanwhile: its outcome is stale

    def fire_timers(self) -> list[dict[str, Any]]:
        """What the timer handler does on its schedule: fire every due timer at the clock's now."""
        return timers.sweep(self.runtime, self.store.now())

    def report_job_or_stale(self, dispatch: tuple[str, str, int]) -> None:
        """``report_job``, where the Reporter refusing a stale attempt (after a redrive) is an answer."""
        from flowkit.errors import RejectedReport

        try:
            self.report_job(dispatch)
        except RejectedReport:
            with self.lock:
                self.stale_reports.append(dispatch)

    def control(self, run_id: str, action: str) -> None:
        """An operator's ``cancel`` or ``redrive``; refusals (the run already ended / is running) are answers."""
        from flowkit.errors import RunError
        from flowkit.runtime.control import cancel_run, redrive_run

        try:
            if action == "cancel":
                won = cancel_run(self.store, run_id, reason="test")
                result = "cancelled" if won else "already cancelled"
            else:
                result = f"redrive {redrive_run(self.store, run_id).redrive_count}"
        except RunError as exc:
            result = f"refused: {exc.message}"
        with self.lock:
            self.controls.append((action, result))

    def execute(self, index: int = 0) -> None:
        """Take the ``index``-th not-yet-run dispatch and report it."""
        self.report_job(self.take_job(index))

    def drain(self, *, jobs: bool = True) -> None:
        """Deliver everything and run every job (``jobs=False``: none), in FIFO order, until quiet."""
        while True:
            with self.lock:
                delivery = self.deliveries.pop(0) if self.deliveries else None
            if delivery is not None:
                self.deliver(delivery)
                continue
            if jobs and self.pending_jobs():
                self.execute(0)
                continue
            return

    def end_events(self, run_id: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.store.statuses.find({"run_id": run_id, "job": None})
            if s["status"] in ("success", "failed")
        ]


# ---------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """A workflow, how its jobs behave, and what must be true once everything has been delivered."""

    name: str
    document: WorkflowDocument
    input: dict[str, Any]
    states: dict[str, str | frozenset[str]]  # expected final state of every job (or the possible ones)
    status: str  # expected run status
    outcomes: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def allows(self, job_name: str, state: str) -> bool:
        expected = self.states[job_name]
        return state == expected if isinstance(expected, str) else state in expected

    @property
    def dispatched(self) -> set[str]:
        """Jobs that are always dispatched."""
        return {name for name, state in self.states.items() if state in ("succeeded", "failed")}


def _dsl_documents() -> dict[str, WorkflowDocument]:
    """Workflows written with the DSL and compiled by the real compiler (effective conditions,
    ``failure_handled``, phases and needs as production documents have them)."""
    from dsl_builders import mk as j

    from flowkit import always, compile, input, parallel, sequence, when, workflow

    charge = j("charge")

    @workflow(name="payment")
    def payment() -> Any:
        return sequence(
            j("validate"),
            j("reserve"),
            charge,
            when(charge.failed, then=j("release") >> j("apologise"), otherwise=j("ship") >> j("receipt")),
            j("close"),
        )

    extract = j("extract")

    @workflow(name="etl")
    def etl() -> Any:
        return (
            extract
            >> parallel(j("dedupe"), j("enrich"))
            >> when(extract.output["rows"] > 0, then=j("load"))
            >> j("report")
        )

    @workflow(name="nested")
    def nested() -> Any:
        regions = parallel(
            sequence(j("fetch-eu"), j("clean-eu"), j("score")), sequence(j("fetch-us"), j("clean-us"))
        )
        return j("prepare") >> regions >> when(input["publish"] == True, then=j("publish")) >> j("summary")  # noqa: E712

    declined = j("charge")

    @workflow(name="declined")
    def declined_flow() -> Any:
        # the failure paths test the error type: a ValueError is not handled, so the failure counts;
        # refund also needs audit, so the two paths may be decided by different invocations at once
        paths = parallel(j("apologise"), j("refund", needs=["audit"]))
        return parallel(
            sequence(declined, when(declined.error_type == "CardDeclined", then=paths)), j("audit")
        ) >> j("close", needs=["charge"])

    paid = j("charge")

    @workflow(name="otherwise")
    def otherwise_flow() -> Any:
        # the otherwise arm is the failure path; both arms' tails join in close
        return (
            paid >> when(paid.succeeded, then=j("ship") >> j("receipt"), otherwise=j("refund")) >> j("close")
        )

    @workflow(name="cleanup")
    def cleanup_flow() -> Any:
        # cleanup runs once load and audit ended, however; report only if nothing failed
        return parallel(j("load") >> j("transform"), j("audit")) >> always(j("cleanup")) >> j("report")

    return {
        doc.name: doc
        for doc in (
            compile(cleanup_flow),
            compile(payment),
            compile(etl),
            compile(nested),
            compile(declined_flow),
            compile(otherwise_flow),
        )
    }


def scenarios() -> list[Scenario]:
    """Sequences, parallel joins, `when` with skip propagation, handled and unhandled failures."""
    not_full = {"op": "not", "args": [input_eq("mode", "full")]}
    dsl = _dsl_documents()
    payment, etl, nested = dsl["payment"], dsl["etl"], dsl["nested"]
    declined, otherwise, cleanup = dsl["declined"], dsl["otherwise"], dsl["cleanup"]
    every = {spec.name: "succeeded" for spec in payment.jobs}
    happy = every | {"release": "skipped", "apologise": "skipped"}
    handled = every | {"charge": "failed", "ship": "skipped", "receipt": "skipped"}
    return [
        Scenario(
            "sequence",
            document("sequence", [job("a"), job("b", "a"), job("c", "b")]),
            {},
            {"a": "succeeded", "b": "succeeded", "c": "succeeded"},
            "succeeded",
        ),
        Scenario(
            "join",
            document(
                "join", [job("a"), job("b", "a"), job("c", "a"), job("d", "a"), job("e", "b", "c", "d")]
            ),
            {},
            dict.fromkeys("abcde", "succeeded"),
            "succeeded",
        ),
        Scenario(
            "when-skip",
            document(
                "when-skip",
                [
                    job("a"),
                    job("b", "a", condition=input_eq("mode", "full")),
                    job("c", "b", condition=input_eq("mode", "full")),
                    job("d", "a", condition=not_full),
                    job("e", "c", "d"),
                ],
            ),
            {"mode": "quick"},
            {"a": "succeeded", "b": "skipped", "c": "skipped", "d": "succeeded", "e": "succeeded"},
            "succeeded",
        ),
        Scenario(
            "skip-at-start",
            document("skip-at-start", [job("x", condition=input_eq("go", True)), job("y", "x")]),
            {"go": False},
            {"x": "skipped", "y": "succeeded"},
            "succeeded",
        ),
        Scenario(
            "skip-race",
            document("skip-race", [job("p"), job("q", "p", condition=input_eq("go", True)), job("r")]),
            {"go": False},
            {"p": "succeeded", "q": "skipped", "r": "succeeded"},
            "succeeded",
        ),
        Scenario(
            "output-condition",
            etl,
            {},
            {spec.name: "succeeded" for spec in etl.jobs} | {"load": "skipped"},
            "succeeded",
            outputs={"extract": {"rows": 0}},
        ),
        Scenario(
            # outputs far over the inline size: kept in the results collection, passed on in payloads
            # and read by the condition from there, whatever the order of deliveries
            "big-outputs",
            etl,
            {},
            {spec.name: "succeeded" for spec in etl.jobs},
            "succeeded",
            outputs={spec.name: {"rows": 3, "blob": spec.name * 700} for spec in etl.jobs},
        ),
        Scenario("payment-happy", payment, {}, happy, "succeeded"),
        Scenario("handled-failure", payment, {}, handled, "succeeded", outcomes={"charge": "fail"}),
        Scenario(
            # both failure paths are skipped (concurrently): exactly one of the skips makes it count
            "failure-not-handled",
            declined,
            {},
            {
                "charge": "failed",
                "apologise": "skipped",
                "refund": "skipped",
                "audit": "succeeded",
                "close": "cancelled",
            },
            "failed",
            outcomes={"charge": "fail"},
        ),
        Scenario(
            "failure-paths-skipped",
            declined,
            {},
            dict.fromkeys(["charge", "audit", "close"], "succeeded")
            | dict.fromkeys(["apologise", "refund"], "skipped"),
            "succeeded",
        ),
        Scenario(
            "always-happy",
            cleanup,
            {},
            {spec.name: "succeeded" for spec in cleanup.jobs},
            "succeeded",
        ),
        Scenario(
            # load fails: transform never runs, cleanup waits for audit (claimed with load) and runs,
            # then the run fails and report is cancelled
            "always-after-failure",
            cleanup,
            {},
            {
                "load": "failed",
                "transform": "cancelled",
                "audit": "succeeded",
                "cleanup": "succeeded",
                "report": "cancelled",
            },
            "failed",
            outcomes={"load": "fail"},
        ),
        Scenario(
            # transform fails while audit may still run: cleanup waits for it either way
            "always-waits-in-flight",
            cleanup,
            {},
            {
                "load": "succeeded",
                "transform": "failed",
                "audit": "succeeded",
                "cleanup": "succeeded",
                "report": "cancelled",
            },
            "failed",
            outcomes={"transform": "fail"},
        ),
        Scenario(
            # cleanup itself fails: the run fails, report never runs
            "always-fails",
            cleanup,
            {},
            {
                "load": "succeeded",
                "transform": "succeeded",
                "audit": "succeeded",
                "cleanup": "failed",
                "report": "cancelled",
            },
            "failed",
            outcomes={"cleanup": "fail"},
        ),
        Scenario(
            "otherwise-failure-path",
            otherwise,
            {},
            {
                "charge": "failed",
                "ship": "skipped",
                "receipt": "skipped",
                "refund": "succeeded",
                "close": "succeeded",
            },
            "succeeded",
            outcomes={"charge": "fail"},
        ),
        Scenario(
            "unhandled-failure",
            document("unhandled", [job("a"), job("b", "a"), job("c", "a"), job("d", "b", "c")]),
            {},
            # c is claimed by the same invocation as b, before b starts: it runs whatever b does; d can
            # never run once b failed, and is cancelled when the run ends
            {"a": "succeeded", "b": "failed", "c": "succeeded", "d": "cancelled"},
            "failed",
            outcomes={"b": "fail"},
        ),
        Scenario(
            "nested",
            nested,
            {"publish": False},
            {spec.name: "succeeded" for spec in nested.jobs} | {"publish": "skipped"},
            "succeeded",
        ),
        Scenario(
            # on a draining run an always failure path can be decided before the job it handles ended
            # (only an ordinary job that never runs lies between them): skipped then, the failure after
            # is unhandled; claimed, if that job failed before the run drained
            "always-path-before-its-failure",
            path_before_failure_document(),
            {},
            {
                "bad": "failed",
                "j": "failed",
                "k": "cancelled",
                "h": frozenset({"skipped", "succeeded"}),
            },
            "failed",
            outcomes={"bad": "fail", "j": "fail"},
        ),
        Scenario("empty", document("empty", [], phases=[]), {}, {}, "succeeded"),
    ]


def path_before_failure_document() -> WorkflowDocument:
    """``bad`` fails unhandled; ``j`` (an ``always`` job) has failure path ``h`` (``always``), which
    needs ``j`` only through ``k``, an ordinary job: once the run drains, ``h`` is ready whatever
    ``j`` is doing."""
    j_spec = job("j", failure_handled=True) | {"run_on": "all_done", "handled_by": ["h"]}
    h_spec = job("h", "k", condition=status_is("j", "failed")) | {"run_on": "all_done"}
    return document("path-before-failure", [job("bad"), j_spec, job("k", "j"), h_spec])


def check_timers_map(run: Mapping[str, Any]) -> None:
    """The run's ``timers`` map holds exactly its jobs' due times (the timer sweep reads only the map)."""
    from flowkit.runtime.timers import as_datetime

    dues = {name: as_datetime(j.get("due")) for name, j in run["jobs"].items() if j.get("due") is not None}
    assert {name: as_datetime(due) for name, due in run["timers"].items()} == dues, (run["timers"], dues)


def check_invariants(world: World, scenario: Scenario, run_id: str) -> None:
    """What must hold once every delivery was made and every dispatched job has reported."""
    stored = world.store.get_run(run_id)
    assert stored is not None
    run = world.store.resolve_run(stored)  # outputs over the inline size: from the results collection
    dispatches = [
        (job_name, attempt) for rid, job_name, attempt in world.dispatcher.dispatched if rid == run_id
    ]
    # each job dispatched exactly once per attempt, and only the ones that should run
    assert sorted(dispatches) == sorted(set(dispatches)), f"dispatched twice: {dispatches}"
    assert all(attempt == 1 for _, attempt in dispatches)
    states = {name: j["state"] for name, j in run["jobs"].items()}
    assert set(states) == set(scenario.states)
    wrong = {name: state for name, state in states.items() if not scenario.allows(name, state)}
    assert wrong == {}, f"unexpected final states {wrong} (all: {states})"
    # no outcome lost: a job was dispatched exactly when it ended succeeded or failed
    assert {name for name, _ in dispatches} == {n for n, s in states.items() if s in ("succeeded", "failed")}
    for name, state in states.items():
        if state == "succeeded":
            assert run["jobs"][name]["output"] == scenario.outputs.get(name, {"job": name})
    # every job received its needs' outputs exactly (None for a skipped need)
    for payload in world.dispatcher.payloads:
        if payload["run_id"] == run_id:
            for need, value in payload["needs"].items():
                expected = scenario.outputs.get(need, {"job": need}) if states[need] == "succeeded" else None
                assert value == expected, (payload["job"], need)
    # the run ended exactly once, with one workflow-level end event
    assert (run["status"], run["phase"]) == (scenario.status, None)
    ends = world.end_events(run_id)
    assert [e["status"] for e in ends] == ["success" if scenario.status == "succeeded" else "failed"]
    assert world.runtime.rejections == {}, world.runtime.rejections
    check_timers_map(stored)
    # an always job starts once each of its needs ended (its outcome was reported) or never ran
    for spec in scenario.document.jobs:
        started = world.dispatcher.when.get((run_id, spec.name, 1))
        if spec.run_on != "all_done" or started is None:
            continue
        for need in spec.needs:
            if (need, 1) in dispatches:
                ended = world.outcome_at.get((run_id, need))
                assert ended is not None and ended < started, f"{spec.name} started before {need} ended"
    if engine.Plan.of(run["config"]).counted:
        assert run.get("counters") == engine.COUNTERS_VERSION
        check_counters(run)


def stored_counters(run: Mapping[str, Any]) -> dict[str, Any]:
    """The counters a run document holds, as ``$set`` paths (the shape of ``engine.counters``)."""
    found: dict[str, Any] = {
        "remaining": run["remaining"],
        "unhandled": run["unhandled"],
        "always_left": run["always_left"],
    }
    found.update({f"waits.{name}": value for name, value in run["waits"].items()})
    for name, job in run["jobs"].items():
        found[f"jobs.{name}.unmet"] = job["unmet"]
    for name, entry in (run.get("paths") or {}).items():
        found[f"paths.{name}.left"] = entry["left"]
        found[f"paths.{name}.taken"] = entry["taken"]
    return found


def check_counters(run: Mapping[str, Any]) -> None:
    """The counters the handlers moved, transition by transition, are what the job states say they are
    (``engine.counters``): ``remaining`` jobs not terminal, ``unhandled`` failures no failure path can
    handle, each job's ``unmet`` needs, per job with failure paths those ``left`` and ``taken``,
    ``always_left`` and each ``always`` job's ``waits``.
    """
    expected = engine.counters(run)
    found = stored_counters(run)
    assert found == expected, {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
