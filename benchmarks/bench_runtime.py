"""Runtime costs: MongoDB round trips and latency per handler invocation, and cold import times.

    python benchmarks/bench_runtime.py [--mongo-uri URI] [--repeat 20] [--imports 7]

Without ``--mongo-uri`` an ``nx-27017 --db memory`` server is started on a free 127.0.0.1 port (and
stopped at the end). Round trips are the commands pymongo sends, counted with a
``pymongo.monitoring.CommandListener`` around each invocation, which also sums the BSON size of every
command sent and every reply received (``KB sent`` / ``KB recv``). ``--width 998`` makes it a 1,000-job
run; the row "new container" is an invocation by a fresh ``Runtime`` mid-run (its run cache empty).
Latency is the median wall time of
``--repeat`` invocations over TCP. Goals (issue 4): one round trip to record an outcome, one per job
claimed; importing the handlers adds under 25% to ``import pymongo, boto3, slack_sdk``.

Cold-start times are medians of ``--imports`` fresh interpreters each: the baseline, the handlers on
top of it, and the first event handled end to end (which loads the event parser and the notifier, and
no pydantic).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bson
from pymongo import MongoClient, monitoring

from flowkit.document import JobSpec, Phase, Target, WorkflowDocument, content_version
from flowkit.runtime.events import to_envelope
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.report import Reporter
from flowkit.runtime.start import start_run
from flowkit.runtime.store import Store, make_status


class Counter(monitoring.CommandListener):
    """Commands sent, and the BSON size of what was sent and what came back."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.sent = 0
        self.received = 0

    def clear(self) -> None:
        self.commands.clear()
        self.sent = self.received = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("endSessions",):
            self.commands.append(event.command_name)
            self.sent += len(bson.encode(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name not in ("endSessions",):
            self.received += len(bson.encode(event.reply))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class NoDispatch:
    def dispatch(self, spec: Any, payload: dict[str, Any]) -> None:
        pass


def fan_document(width: int) -> WorkflowDocument:
    """start -> width jobs in parallel -> join."""
    names = [f"w{i}" for i in range(width)]
    jobs = [JobSpec(name="start", phase="start", target=Target(function="fn"))]
    jobs += [JobSpec(name=n, phase="fan", target=Target(function="fn"), needs=["start"]) for n in names]
    jobs += [JobSpec(name="join", phase="join", target=Target(function="fn"), needs=names)]
    phases = [
        Phase(name="start", jobs=["start"]),
        Phase(name="fan", jobs=names),
        Phase(name="join", jobs=["join"]),
    ]
    body = WorkflowDocument(name="bench", version="", phases=phases, jobs=jobs).model_dump(mode="json")
    body["version"] = content_version(body)
    return WorkflowDocument.model_validate(body)


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="bench-nx-"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from nx_27017.nx_27017 import main; sys.exit(main())",
            "--db",
            "memory",
            "-p",
            str(port),
            "--log-file",
            str(folder / "log"),
            "--pid-file",
            str(folder / "pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"mongodb://127.0.0.1:{port}/?directConnection=true"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("nx-27017 did not start")


class Bench:
    def __init__(self, uri: str) -> None:
        self.counter = Counter()
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            uri, tz_aware=True, event_listeners=[self.counter]
        )
        self.database = self.client[f"bench_{uuid.uuid4().hex[:8]}"]
        self.store = Store(self.database, runs="state_machines")
        self.store.ensure_indexes()
        self.runtime = Runtime(self.store, NoDispatch())
        self.reporter = Reporter(self.store)
        self.rows: dict[str, list[tuple[int, float, int, int]]] = {}

    def envelope(self, run_id: str, job: str | None, attempt: int, status: str) -> dict[str, Any]:
        return to_envelope(
            make_status(run_id, "bench", job, attempt, status),
            database=self.database.name,
            collection="statuses",
        )

    def measure(self, label: str, call: Callable[[], Any]) -> Any:
        self.counter.clear()
        began = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - began
        row = (len(self.counter.commands), elapsed, self.counter.received, self.counter.sent)
        self.rows.setdefault(label, []).append(row)
        return result

    def one_run(self, width: int) -> None:
        run_id = f"r-{uuid.uuid4().hex[:10]}"
        self.measure(
            "start_run (insert run + started event)",
            lambda: start_run(self.store, fan_document(width), {}, run_id=run_id),
        )
        rt, rep = self.runtime, self.reporter
        self.measure(
            "orchestrator: run started, claims 1 job",
            lambda: rt.orchestrator_job(self.envelope(run_id, None, 0, "started")),
        )
        self.measure("Reporter.started", lambda: rep.started(run_id, "start", 1))
        self.measure("Reporter.succeeded", lambda: rep.succeeded(run_id, "start", 1, {"ok": True}))
        ok = self.envelope(run_id, "start", 1, "success")
        self.measure("statemachine: record outcome (phase moves)", lambda: rt.statemachine_job(ok))
        self.measure(
            f"orchestrator: outcome already recorded, claims {width}", lambda: rt.orchestrator_job(ok)
        )
        for i in range(width - 1):
            rep.succeeded(run_id, f"w{i}", 1, {"i": i})
            event = self.envelope(run_id, f"w{i}", 1, "success")
            # the orchestrator first this time: it records the outcome itself
            if i == 0:
                # a container that has not seen this run yet (a new Lambda container mid-run)
                cold = Runtime(self.store, NoDispatch())
                self.measure(
                    "orchestrator, new container: records, nothing ready",
                    lambda e=event, c=cold: c.orchestrator_job(e),
                )
            else:
                self.measure(
                    "orchestrator: records outcome, nothing ready", lambda e=event: rt.orchestrator_job(e)
                )
            self.measure("statemachine: outcome already recorded", lambda e=event: rt.statemachine_job(e))
        last = self.envelope(run_id, f"w{width - 1}", 1, "success")
        rep.succeeded(run_id, f"w{width - 1}", 1, None)
        self.measure("statemachine: record outcome (phase moves)", lambda: rt.statemachine_job(last))
        self.measure(
            "orchestrator: outcome already recorded, claims 1 (join)", lambda: rt.orchestrator_job(last)
        )
        rep.succeeded(run_id, "join", 1, None)
        end = self.envelope(run_id, "join", 1, "success")
        self.measure("statemachine: record last outcome, end run", lambda: rt.statemachine_job(end))
        self.measure("orchestrator: late duplicate after the end", lambda: rt.orchestrator_job(end))
        assert self.store.get_run(run_id)["status"] == "succeeded"

    def report(self) -> None:
        print(
            f"{'invocation':58} {'round trips':>11} {'median ms':>10} {'KB recv':>9} {'KB sent':>8} {'n':>5}"
        )
        for label, rows in self.rows.items():
            trips = sorted({r[0] for r in rows})
            shown = str(trips[0]) if len(trips) == 1 else f"{trips[0]}-{trips[-1]}"
            millis = statistics.median(r[1] for r in rows) * 1000
            received = statistics.median(r[2] for r in rows) / 1000
            sent = statistics.median(r[3] for r in rows) / 1000
            print(f"{label:58} {shown:>11} {millis:>10.2f} {received:>9.1f} {sent:>8.1f} {len(rows):>5}")


_IMPORTS = """
import json, sys, time
envelope = json.loads(sys.argv[1])
t0 = time.perf_counter()
import pymongo, boto3, slack_sdk
t1 = time.perf_counter()
import flowkit.runtime.handlers
t2 = time.perf_counter()
# set-up, not timed: an embedded database holding the run, warmed up by one read
from flowkit.local.embedded import embedded_database
from flowkit.runtime.store import Store
store = Store(embedded_database("flowkit"))
run_id = envelope["detail"]["fullDocument"]["run_id"]
store.runs.insert_one({"_id": run_id, "config": {"notifications": {"on": ["job.failed"]}}})
store.read_notifications("warm-up")
class Notifier:
    def send(self, message):
        return True
runtime = flowkit.runtime.handlers.Runtime(store, None, Notifier())
t3 = time.perf_counter()
first = runtime.notifications_job(envelope)
t4 = time.perf_counter()
second = runtime.notifications_job(envelope)
t5 = time.perf_counter()
assert first["sent"] and second["sent"], (first, second)
print((t1 - t0) * 1000, (t2 - t1) * 1000, (t4 - t3) * 1000, (t5 - t4) * 1000, int("pydantic" in sys.modules))
"""


def imports(runs: int) -> None:
    """Each fresh interpreter times the steps in turn, so each pair is measured under the same load.

    The first event is a job failure handled by ``notifications_job`` (parse the envelope, read the
    run's notification settings, build and send the message to a no-op notifier): the handler whose
    first event loads the most. The second, identical event shows what the first paid once.
    """
    doc = make_status(
        "r-cold", "bench", "load", 1, "failed", error={"type": "TimeoutError", "message": "no answer"}
    )
    envelope = json.dumps(to_envelope(doc, database="flowkit", collection="statuses"))
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORTS, envelope], capture_output=True, text=True, check=True
        ).stdout
        samples.append([float(x) for x in out.split()])
    base, handlers, first, second, pydantic = (
        statistics.median(column) for column in zip(*samples, strict=True)
    )
    print(
        f"\n{'cold start (fresh interpreter, median of ' + str(runs) + ')':58} {'ms':>8} {'vs baseline':>12}"
    )
    print(f"{'import pymongo, boto3, slack_sdk (baseline)':58} {base:>8.0f}")
    print(
        f"{'  then import flowkit.runtime.handlers':58} {handlers:>8.0f} {f'+{handlers / base * 100:.0f}%':>12}"
    )
    print(
        f"{'  then the first event (notifications_job, job failed)':58} {first:>8.0f} {f'+{first / base * 100:.0f}%':>12}"
    )
    print(f"{'  then the same event again':58} {second:>8.1f}")
    print(f"{'  pydantic loaded by the handlers':58} {'yes' if pydantic else 'no':>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-uri", help="a MongoDB to measure against (default: a fresh nx-27017)")
    parser.add_argument("--repeat", type=int, default=20, help="runs of the workflow (default 20)")
    parser.add_argument("--width", type=int, default=4, help="parallel jobs in the workflow (default 4)")
    parser.add_argument(
        "--imports", type=int, default=7, help="fresh interpreters per import timing (default 7, 0: skip)"
    )
    args = parser.parse_args(argv)
    server = None
    uri = args.mongo_uri
    if uri is None:
        server, uri = start_server()
    try:
        bench = Bench(uri)
        print(f"server: {uri}  workflow: start -> {args.width} parallel -> join, {args.repeat} runs\n")
        for _ in range(args.repeat):
            bench.one_run(args.width)
        bench.report()
        bench.client.drop_database(bench.database.name)
        bench.client.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    if args.imports > 0:
        imports(args.imports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
