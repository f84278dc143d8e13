"""What one transition costs, by workflow shape and size: store commands, bytes, end-to-end time.

    python benchmarks/bench_transitions.py [--sizes 100,1000,10000] [--shapes chain,fan,layered]
                                           [--store embedded|wire] [--mongo-uri URI] [--workers 16]

Each run is a real local run (``flowkit.local.run_workflow``: the runtime handlers, the in-process bus,
the job-side reporter) of N no-op jobs in one of three shapes: ``chain`` (``a >> b >> ...``), ``fan``
(``start >> parallel(N - 2 jobs) >> finish``), ``layered`` (a ``sequence`` of ``parallel`` layers of
10 jobs, each job needing the 10 of the layer before) and ``paths`` (failure paths: N/3 segments
``a >> when(a.failed, then=h, otherwise=o)`` in a sequence, every other ``a`` failing and handled, so
half the segments take the failure path and half skip it) and ``always`` (N/2 segments
``a >> always(c)`` in a sequence: every other job an ``always`` job, nothing failing) and ``drain``
(``start >> parallel(N - 2) >> always(cleanup)`` with one parallel job failing: the run drains and
ends ``failed`` once cleanup ran).

How the store is counted:

- ``--store embedded`` (default): calls made on the embedded store's collections are counted by a
  proxy around them; bytes are ``len(bson.encode(...))`` of what each call sends (filter, update,
  projection or inserted document) and of what it returns (the document, if any).
- ``--store wire``: an ``nx-27017 --db memory`` server is started on 127.0.0.1 (or ``--mongo-uri`` is
  used); every MongoDB command is counted by a ``pymongo.monitoring.CommandListener``, bytes are the
  BSON size of each command and of its reply.

A *transition* is one change of a job's state: claimed (``dispatched``), ``running``, its outcome, or
``skipped``; a run of N jobs that all succeed has 3N (a skipped job counts 1). Printed per run: commands and KB sent and
received per transition, the commands that read a whole run document (``whole reads``: the runner's
one final read of the finished run; the handlers read none for these workflows), wall time and jobs/s.
``claims/win`` (embedded store only) is claim attempts per claim won: 1.00 means no orchestrator raced
another for the same job. Per-transition figures that stay flat from 100 to 10,000 jobs are the goal.
``--output-bytes B`` makes every job return ``{"blob": <B bytes>}`` (default: no output): outputs over
``vocab.INLINE_LIMIT`` go to the results collection, so ``KB results/tr`` (the part of sent + received
that went to or came from that collection, also counted in the two columns before) grows with B while
the run document's round trips stay as small as without outputs. Shapes whose joins need many jobs
(``fan``, ``always``, ``drain``) would send the join N outputs in one payload, over the 1 MiB limit:
use ``chain``, ``layered`` or ``paths`` with large B.
``dup cmds`` is what a duplicate delivery costs: commands ``statemachine_job`` / ``orchestrator_job``
take for an outcome that is already recorded, measured on a second run of the same shape and size
held running (see ``redelivered``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import bson
from pymongo import monitoring

from flowkit import compile, job, parallel, sequence, workflow
from flowkit.dsl import Job, Node
from flowkit.local.runner import run_workflow


def noop(event: dict[str, Any], context: Any = None) -> None:
    return None


OUTPUT_BYTES = 0
"""``--output-bytes``: the size of the string every job's body returns (0: no output)."""


def body(event: dict[str, Any], context: Any = None) -> dict[str, str] | None:
    return {"blob": "x" * OUTPUT_BYTES} if OUTPUT_BYTES else None


def _jobs(n: int) -> list[Job]:
    return [job(name=f"j{i}")(noop) for i in range(n)]


def chain(n: int) -> Node:
    jobs = _jobs(n)
    root: Node = jobs[0]
    for item in jobs[1:]:
        root = root >> item
    return root


def fan(n: int) -> Node:
    head, *middle, tail = _jobs(n)
    return head >> parallel(*middle) >> tail


def layered(n: int) -> Node:
    jobs = _jobs(n)
    return sequence(*(parallel(*jobs[i : i + 10]) for i in range(0, n, 10)))


def paths(n: int) -> Node:
    """Segments ``a >> when(a.failed, then=h, otherwise=o)``, each needing the one before (then a job or
    two to make N); every other ``a`` fails (``failing``) and its failure path ``h`` handles it, so the
    run succeeds."""
    from flowkit import when

    segments = []
    for i in range(max(n // 3, 1)):
        attempt, handler, other = (job(name=f"{kind}{i}")(noop) for kind in ("a", "h", "o"))
        segments.append(attempt >> when(attempt.failed, then=handler, otherwise=other))
    segments += [job(name=f"t{k}")(noop) for k in range(n - 3 * len(segments))]  # N jobs in all
    return sequence(*segments)


def cleanups(n: int) -> Node:
    """Segments ``a >> always(c)``, each needing the one before: half the jobs are ``always`` jobs."""
    from flowkit import always

    segments: list[Node] = []
    for i in range(n // 2):
        segments.append(job(name=f"a{i}")(noop) >> always(job(name=f"c{i}")(noop)))
    segments += [job(name=f"t{k}")(noop) for k in range(n - 2 * len(segments))]
    return sequence(*segments)


def drain(n: int) -> Node:
    """``start >> parallel(N - 2 jobs) >> always(cleanup)``; one of the parallel jobs fails (``failing``),
    so the run drains: nothing new starts, cleanup waits for the jobs in flight, then the run fails."""
    from flowkit import always

    head, *middle = _jobs(n - 1)
    return head >> parallel(*middle) >> always(job(name="cleanup")(noop))


SHAPES: dict[str, Callable[[int], Node]] = {
    "chain": chain,
    "fan": fan,
    "layered": layered,
    "paths": paths,
    "always": cleanups,
    "drain": drain,
}
ENDS = {"drain": "failed"}
"""How a run of a shape ends when it is not ``succeeded``."""


def failing(shape: str, n: int) -> dict[str, Any]:
    """The mocks of a shape: ``paths`` fails every other ``a`` job (a handled failure)."""
    from flowkit.local.mocks import failure

    if shape == "drain":
        return {"j1": failure("ValueError", "planned")}
    if shape != "paths":
        return {}
    return {f"a{i}": failure("ValueError", "planned") for i in range(1, max(n // 3, 1), 2)}


# How many recorded outcomes are delivered again to measure what a duplicate delivery costs.
DUPLICATES = 100
RESULTS = "results"
"""The results collection's name (``Settings.results_collection``'s default)."""


class Tally:
    """Commands, bytes sent and received, whole-run reads; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commands = 0
        self.sent = 0
        self.received = 0
        self.whole_reads = 0
        self.results = 0
        self.claims = 0
        self.claims_won = 0

    def claim(self, won: bool) -> None:
        with self.lock:
            self.claims += 1
            self.claims_won += won

    def add(self, sent: int, received: int, *, whole: bool = False, results: bool = False) -> None:
        with self.lock:
            self.commands += 1
            self.sent += sent
            self.received += received
            self.whole_reads += whole
            if results:
                self.results += sent + received


def _size(value: Any) -> int:
    return len(bson.encode(value)) if isinstance(value, dict) else 0


def _is_claim(update: Any) -> bool:
    changes = update.get("$set", {}) if isinstance(update, dict) else {}
    return any(key.endswith(".state") and value == "dispatched" for key, value in changes.items())


class CountedCollection:
    """The embedded collection, every call counted (the calls ``flowkit.runtime.store.Store`` makes)."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner = inner
        self._tally = tally
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def insert_one(self, doc: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._tally.add(_size(doc), 0, results=self.name == RESULTS)
        return self._inner.insert_one(doc, *args, **kwargs)

    def find(self, spec: Any = None, projection: Any = None, *args: Any, **kwargs: Any) -> Any:
        """One command; the documents it returns counted as received (the results' ``_id $in`` read)."""
        if self.name != RESULTS:
            return self._inner.find(spec, projection, *args, **kwargs)  # the timer sweep's: not counted
        found = list(self._inner.find(spec, projection, *args, **kwargs))
        sent = _size({"filter": spec or {}, "projection": projection or {}})
        self._tally.add(sent, sum(_size(doc) for doc in found), results=True)
        return found

    def find_one(self, spec: Any = None, projection: Any = None, *args: Any, **kwargs: Any) -> Any:
        found = self._inner.find_one(spec, projection, *args, **kwargs)
        sent = _size({"filter": spec or {}, "projection": projection or {}})
        self._tally.add(sent, _size(found), whole=projection is None)
        return found

    def update_one(self, spec: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        self._tally.add(_size({"filter": spec, "update": update}), 0)
        result = self._inner.update_one(spec, update, *args, **kwargs)
        if _is_claim(update):
            self._tally.claim(result.modified_count == 1)
        return result

    def find_one_and_update(self, spec: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        found = self._inner.find_one_and_update(spec, update, *args, **kwargs)
        if _is_claim(update):
            self._tally.claim(found is not None)
        projection = kwargs.get("projection")
        sent = _size({"filter": spec, "update": update, "projection": projection or {}})
        self._tally.add(sent, _size(found), whole=projection is None)
        return found


class CountedDatabase:
    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner = inner
        self._tally = tally
        self.name = inner.name

    def __getitem__(self, name: str) -> CountedCollection:
        return CountedCollection(self._inner[name], self._tally)


class Listener(monitoring.CommandListener):
    """Every MongoDB command of the client: its BSON size and its reply's."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.pending: dict[int, tuple[int, bool]] = {}
        self.lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        results = command.get(event.command_name) == RESULTS
        whole = (
            event.command_name in ("find", "findAndModify")
            and not command.get("projection", command.get("fields"))
            and not results
        )
        with self.lock:
            self.pending[event.request_id] = (len(bson.encode(command)), whole, results)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        with self.lock:
            sent, whole, results = self.pending.pop(event.request_id, (0, False, False))
        if event.command_name in ("endSessions", "hello", "isMaster", "ping"):
            return
        self.tally.add(sent, len(bson.encode(event.reply)), whole=whole, results=results)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        with self.lock:
            self.pending.pop(event.request_id, None)


class _NoDispatch:
    """A redelivered outcome finds every job already claimed: nothing may be dispatched."""

    def dispatch(self, spec: Any, payload: Any) -> None:
        raise AssertionError(f"job {spec['name']!r} dispatched by a redelivered outcome")


def redelivered(shape: str, n: int, database: Any, tally: Tally, workers: int) -> tuple[float, float]:
    """Commands a handler takes for an outcome already recorded: (statemachine_job, orchestrator_job).

    A second run of the same shape and size whose last job never reports (a ``hang`` mock) stays
    ``running`` with every other job done. Up to ``DUPLICATES`` of its ``success`` events are then
    delivered again to each handler (EventBridge delivers at least once), after one uncounted delivery
    that fills the handlers' run cache.
    """
    from flowkit.errors import RunError
    from flowkit.local.mocks import hang
    from flowkit.runtime.config import Settings
    from flowkit.runtime.events import to_envelope
    from flowkit.runtime.handlers import Runtime
    from flowkit.runtime.store import Store

    runnable = _runnable(shape, n)
    last = runnable.document.jobs[-1].name
    run_id = f"{shape}-{n}-redelivered"
    with contextlib.suppress(RunError):  # it stalls on purpose: the last job never reports
        run_workflow(
            runnable,
            {},
            mocks={**failing(shape, n), last: hang()},
            database=database,
            timeout=3600,
            workers=workers,
            run_id=run_id,
        )
    settings = Settings.from_env()
    store = Store(database, runs=settings.runs_collection, statuses=settings.statuses_collection)
    runtime = Runtime(store, _NoDispatch())
    outcomes = list(store.statuses.find({"run_id": run_id, "status": "success"}))
    envelopes = [
        json.dumps(to_envelope(doc, database=database.name, collection=store.statuses.name))
        for doc in outcomes[: DUPLICATES + 1]
    ]
    result = []
    for handler in (runtime.statemachine_job, runtime.orchestrator_job):
        handler(json.loads(envelopes[0]))
        before = tally.commands
        for envelope in envelopes[1:]:
            answer = handler(json.loads(envelope))
            if answer.get("dispatched") or answer.get("ended"):
                raise SystemExit(f"a redelivered outcome changed the run: {answer}")
        result.append((tally.commands - before) / max(len(envelopes) - 1, 1))
    return result[0], result[1]


def _runnable(shape: str, n: int) -> Any:
    from flowkit.local._target import Runnable

    root = SHAPES[shape](n)
    wf = workflow(name=f"{shape}-{n}")(lambda: root)
    document = compile(wf)
    return Runnable(document=document, bodies={spec.name: body for spec in document.jobs})


def one_run(
    shape: str, n: int, database: Any, tally: Tally, workers: int, *, redeliver: bool = True
) -> dict[str, Any]:
    runnable = _runnable(shape, n)
    document = runnable.document
    before = (tally.commands, tally.sent, tally.received, tally.whole_reads, tally.results)
    claims_before = (tally.claims, tally.claims_won)
    began = time.perf_counter()
    cpu = time.process_time()
    run = run_workflow(
        runnable, {}, mocks=failing(shape, n), database=database, timeout=3600, workers=workers
    )
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu
    if run.status != ENDS.get(shape, "succeeded"):
        raise SystemExit(f"{shape} {n}: the run ended {run.status}")
    transitions = sum(1 if job.state == "skipped" else 3 for job in run.jobs.values())
    commands, sent, received, whole, results = (
        now - then
        for now, then in zip(
            (tally.commands, tally.sent, tally.received, tally.whole_reads, tally.results),
            before,
            strict=True,
        )
    )
    claims, won = tally.claims - claims_before[0], tally.claims_won - claims_before[1]
    duplicates = "-"
    if redeliver:
        statemachine, orchestrator = redelivered(shape, n, database, tally, workers)
        duplicates = f"{statemachine:.2f}/{orchestrator:.2f}"
    return {
        "redelivered": duplicates,
        "claims": f"{claims / won:.2f}" if won else "-",
        "shape": shape,
        "jobs": len(document.jobs),
        "commands": commands / transitions,
        "sent": sent / transitions / 1024,
        "received": received / transitions / 1024,
        "results": results / transitions / 1024,
        "whole": whole,
        "wall": wall,
        "cpu": cpu,
        "rate": len(document.jobs) / wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated job counts")
    parser.add_argument(
        "--shapes",
        default="chain,fan,layered,paths,always,drain",
        help="comma-separated: chain, fan, layered, paths, always, drain",
    )
    parser.add_argument("--store", choices=("embedded", "wire"), default="embedded")
    parser.add_argument(
        "--mongo-uri", default=None, help="with --store wire: this server, not a new nx-27017"
    )
    parser.add_argument("--workers", type=int, default=16, help="local job threads (default 16)")
    parser.add_argument(
        "--output-bytes",
        type=int,
        default=0,
        help="every job returns a string of this many bytes (default 0: no output)",
    )
    parser.add_argument(
        "--no-dup", action="store_true", help="skip the redelivered-outcome run (the dup cmds column)"
    )
    args = parser.parse_args(argv)
    global OUTPUT_BYTES
    OUTPUT_BYTES = args.output_bytes
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes {sorted(unknown)}")
    tally = Tally()
    process = client = None
    if args.store == "embedded":
        from flowkit.local.embedded import embedded_database

        def database(name: str) -> Any:
            return CountedDatabase(embedded_database(name), tally)

        how = "embedded store, counted calls"
    else:
        from pymongo import MongoClient

        uri = args.mongo_uri
        if uri is None:
            from bench_runtime import start_server

            process, uri = start_server()
        client = MongoClient(uri, tz_aware=True, event_listeners=[Listener(tally)])

        def database(name: str) -> Any:
            return client[name]

        # nx-27017 refuses collection names with "-": the runs go to "state_machines"
        os.environ["FLOWKIT_RUNS_COLLECTION"] = "state_machines"

        how = f"MongoDB commands over the wire ({'nx-27017' if process else uri})"
    print(f"store: {how}; per transition (3 per job: claimed, running, outcome)")
    print(
        f"{'shape':<9}{'jobs':>7}{'cmds/tr':>9}{'KB sent/tr':>12}{'KB recv/tr':>12}{'KB results/tr':>15}"
        f"{'whole reads':>13}"
        f"{'wall s':>9}{'CPU s':>8}{'jobs/s':>9}{'claims/win':>12}{'dup cmds':>11}"
    )
    try:
        for shape in shapes:
            for n in sizes:
                db = database(f"bench_{shape}_{n}")
                row = one_run(shape, n, db, tally, args.workers, redeliver=not args.no_dup)
                print(
                    f"{row['shape']:<9}{row['jobs']:>7}{row['commands']:>9.2f}{row['sent']:>12.3f}"
                    f"{row['received']:>12.3f}{row['results']:>15.3f}{row['whole']:>13}{row['wall']:>9.2f}{row['cpu']:>8.2f}"
                    f"{row['rate']:>9.0f}{row['claims']:>12}{row['redelivered']:>11}",
                    flush=True,
                )
                if client is not None:
                    client.drop_database(f"bench_{shape}_{n}")
    finally:
        if client is not None:
            client.close()
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
