"""How long a local run of an N-job fan-out / fan-in of no-op jobs takes, end to end.

    python benchmarks/bench_local.py [--jobs 1000] [--repeat 1] [--chaos SEED] [--store embedded|dict]
                                     [--mongo-uri URI] [--profile]

The workflow is ``start >> parallel(noop-0 ... noop-{N-1}) >> finish``: N + 2 jobs, every one
dispatched through the real runtime handlers, the in-process bus and a store. Prints total seconds
and jobs per second (goal: 1,000 jobs in a few seconds).

``--store embedded`` (default) is what ``flowkit run`` uses: ``flowkit.local.embedded``.
``--store dict`` swaps in ``DictDatabase`` below, a minimal in-memory implementation of exactly the
pymongo calls ``flowkit.runtime.store.Store`` makes, whose updates copy only the dicts along the
updated path. It is not a product: it is here to separate the cost of the runner and the runtime
from the cost of the store, and to show what an embedded store could cost.

``--profile`` samples every thread's stack (cProfile sees one thread only) and prints the functions
seen most often, on top of the stack and anywhere in it.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from flowkit import job, parallel, workflow
from flowkit.local.runner import run_workflow


def noop(event: dict[str, Any], context: Any = None) -> None:
    return None


def fan_out(width: int) -> Any:
    start = job(name="start")(noop)
    finish = job(name="finish")(noop)
    middle = [job(name=f"noop-{i}")(noop) for i in range(width)]

    @workflow(name=f"fan-out-{width}")
    def wide() -> Any:
        return start >> parallel(*middle) >> finish

    return wide


# --------------------------------------------------------------------------- a minimal dict store

_MISSING = object()


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _get(doc: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(doc, dict):
            return _MISSING
        doc = doc.get(key, _MISSING)
    return doc


def _matches(doc: dict[str, Any], spec: dict[str, Any]) -> bool:
    for path, cond in spec.items():
        value = _get(doc, path)
        if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
            for op, arg in cond.items():
                if op == "$in" and value not in arg:
                    return False
                if op == "$lt" and (value is _MISSING or value is None or not value < arg):
                    return False
                if op not in ("$in", "$lt"):
                    raise NotImplementedError(op)
        elif (None if value is _MISSING else value) != cond:
            return False
    return True


def _with(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A new document with ``path`` set; only the dicts along the path are copied."""
    keys = path.split(".")
    root = dict(doc)
    node = root
    for key in keys[:-1]:
        child = node.get(key)
        node[key] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[keys[-1]] = value
    return root


def _apply(doc: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for op, fields in update.items():
        for path, value in fields.items():
            if op == "$set":
                doc = _with(doc, path, _copy(value))
            elif op == "$inc":
                current = _get(doc, path)
                doc = _with(doc, path, (0 if current in (_MISSING, None) else current) + value)
            else:
                raise NotImplementedError(op)
    return doc


def _project(doc: dict[str, Any], projection: dict[str, Any] | None) -> dict[str, Any]:
    if not projection:
        return doc  # stored documents are never mutated in place: sharing them is safe for readers
    out: dict[str, Any] = {"_id": doc["_id"]}
    for path, include in projection.items():
        value = _get(doc, path)
        if include and value is not _MISSING:
            out = _with(out, path, value)
    return out


@dataclass
class _Result:
    matched_count: int = 0
    modified_count: int = 0
    inserted_id: Any = None


class DictCollection:
    def __init__(self, name: str, lock: threading.Lock) -> None:
        self.name = name
        self._lock = lock
        self._docs: dict[Any, dict[str, Any]] = {}
        self._unique: dict[str, set[Any]] = {}

    def create_index(self, keys: Any, *, unique: bool = False, name: str | None = None) -> str:
        if unique and len(keys) == 1:
            with self._lock:
                self._unique.setdefault(keys[0][0], {_get(d, keys[0][0]) for d in self._docs.values()})
        return name or "index"

    def _find(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        if "_id" in spec and not isinstance(spec["_id"], dict):
            doc = self._docs.get(spec["_id"])
            return doc if doc is not None and _matches(doc, spec) else None
        return next((d for d in self._docs.values() if _matches(d, spec)), None)

    def insert_one(self, doc: dict[str, Any]) -> _Result:
        with self._lock:
            doc.setdefault("_id", ObjectId())
            keys = {field: _get(doc, field) for field in self._unique}
            if doc["_id"] in self._docs or any(keys[f] in self._unique[f] for f in keys):
                raise DuplicateKeyError(f"duplicate key {doc['_id']!r} / {keys}")
            self._docs[doc["_id"]] = _copy(doc)
            for field, key in keys.items():
                self._unique[field].add(key)
            return _Result(inserted_id=doc["_id"])

    def find_one(self, spec: dict[str, Any] | None = None, projection: dict[str, Any] | None = None) -> Any:
        with self._lock:
            doc = self._find(spec or {})
        return None if doc is None else _project(doc, projection)

    def update_one(self, spec: dict[str, Any], update: dict[str, Any]) -> _Result:
        with self._lock:
            doc = self._find(spec)
            if doc is None:
                return _Result()
            self._docs[doc["_id"]] = _apply(doc, update)
            return _Result(1, 1)

    def find_one_and_update(
        self,
        spec: dict[str, Any],
        update: dict[str, Any],
        projection: dict[str, Any] | None = None,
        return_document: Any = ReturnDocument.BEFORE,
    ) -> Any:
        with self._lock:
            doc = self._find(spec)
            if doc is None:
                return None
            self._docs[doc["_id"]] = after = _apply(doc, update)
        return _project(after if return_document == ReturnDocument.AFTER else doc, projection)


class DictDatabase:
    name = "flowkit"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collections: dict[str, DictCollection] = {}

    def __getitem__(self, name: str) -> DictCollection:
        with self._lock:
            return self._collections.setdefault(name, DictCollection(name, self._lock))


# --------------------------------------------------------------------------- a sampling profiler


class Sampler:
    """Samples the stacks of every other thread every ``interval`` seconds."""

    IDLE = ("_worker", "wait", "get", "_timer_loop", "select", "poll", "sleep")

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.top: collections.Counter[str] = collections.Counter()
        self.anywhere: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me = threading.get_ident()
        while not self._stop.is_set():
            for ident, frame in sys._current_frames().items():
                stack = traceback.extract_stack(frame) if ident != me else []
                if not stack or stack[-1].name in self.IDLE:
                    continue
                self.samples += 1
                last = stack[-1]
                self.top[f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} {last.name}"] += 1
                for key in {f"{f.filename.rsplit('/', 1)[-1]} {f.name}" for f in stack}:
                    self.anywhere[key] += 1
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, limit: int = 25) -> None:
        print(f"{self.samples} busy-thread samples; on top of the stack:")
        for key, count in self.top.most_common(limit):
            print(f"  {100 * count / max(self.samples, 1):5.1f}%  {key}")
        print("anywhere in the stack:")
        for key, count in self.anywhere.most_common(limit + 15):
            print(f"  {100 * count / max(self.samples, 1):5.1f}%  {key}")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="width of the fan-out (default 1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs to time (the best is reported too)")
    parser.add_argument("--chaos", type=int, default=None, help="bus chaos seed")
    parser.add_argument("--workers", type=int, default=16, help="dispatcher threads (default 16)")
    parser.add_argument("--store", choices=("embedded", "dict"), default="embedded")
    parser.add_argument("--mongo-uri", default=None, help="run against this MongoDB instead")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--profile", action="store_true", help="sample every thread and print hot spots")
    args = parser.parse_args(argv)

    wf = fan_out(args.jobs)
    total_jobs = args.jobs + 2
    store = "mongodb" if args.mongo_uri else args.store
    timings = []
    for _ in range(args.repeat):
        database = DictDatabase() if args.store == "dict" and not args.mongo_uri else None
        sampler = Sampler() if args.profile else None
        began, cpu_began = time.perf_counter(), time.process_time()
        if sampler is not None:
            sampler.__enter__()
        try:
            run = run_workflow(
                wf,
                {},
                chaos=args.chaos,
                database=database,
                mongo_uri=args.mongo_uri,
                timeout=args.timeout,
                workers=args.workers,
            )
        finally:
            if sampler is not None:
                sampler.__exit__()
        seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
        timings.append(seconds)
        if run.status != "succeeded":
            print(f"run {run.id} ended {run.status}", file=sys.stderr)
            return 1
        print(
            f"{total_jobs} jobs ({args.jobs}-wide fan-out/fan-in, store={store}, chaos={args.chaos}): "
            f"{seconds:.2f} s total, {total_jobs / seconds:.0f} jobs/s, {cpu:.2f} s CPU "
            f"({len(run.events)} status events, {run.deliveries} handler deliveries)"
        )
        if sampler is not None:
            sampler.report()
    if args.repeat > 1:
        best = min(timings)
        print(f"best of {args.repeat}: {best:.2f} s, {total_jobs / best:.0f} jobs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
