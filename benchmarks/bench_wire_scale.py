"""What keeps a 10,000-job run from completing over nx-27017, measured: time per command by run size.

    python benchmarks/bench_wire_scale.py [--sizes 100,1000,3000,10000] [--repeat 20] [--mongo-uri URI]

For each size a new run document of an N-job chain (``flowkit.runtime.start.new_run_document``, the
document every run starts with) is inserted, then timed: a projected read of one job (what a handler's
read is) and a projected ``findAndModify`` of one job with a counter ``$inc`` (what recording an outcome
or claiming a job is). A store that updates in place (MongoDB) takes about the same time at every size;
the figures then give the time of a whole run: ``bench_transitions.py`` counts about 2.7 commands per
transition, 3 transitions per job.

Then one update with ``k`` nested ``$inc`` paths (a job's outcome takes one off each dependent's
``unmet``, all in one update) for k around 63: how many of them the server applies.

By default an ``nx-27017 --db memory`` server is started on 127.0.0.1; ``--mongo-uri`` measures another.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import bson
from bench_runtime import start_server
from bench_transitions import _runnable
from pymongo import MongoClient, ReturnDocument

from flowkit.runtime.start import new_run_document

COMMANDS_PER_JOB = 2.7 * 3  # bench_transitions: ~2.7 commands per transition, 3 transitions per job


def per_command(collection: Any, n: int, repeat: int) -> tuple[int, float, float]:
    """(run document bytes, seconds per projected read, seconds per projected update) at ``n`` jobs."""
    run_id = f"chain-{n}"
    doc = new_run_document(_runnable("chain", n).document, {}, run_id)
    collection.insert_one(dict(doc))
    projection = {"status": 1, "remaining": 1, "jobs.j1": 1}
    began = time.perf_counter()
    for _ in range(repeat):
        collection.find_one({"_id": run_id}, projection)
    read = (time.perf_counter() - began) / repeat
    began = time.perf_counter()
    for i in range(repeat):
        collection.find_one_and_update(
            {"_id": run_id},
            {"$set": {"jobs.j1.output": i}, "$inc": {"remaining": 0, "jobs.j2.unmet": 0}},
            projection=projection,
            return_document=ReturnDocument.AFTER,
        )
    update = (time.perf_counter() - began) / repeat
    collection.delete_one({"_id": run_id})
    return len(bson.encode(doc)), read, update


def nested_incs(collection: Any, paths: int) -> int:
    """How many of ``paths`` nested ``$inc`` paths one update applies."""
    collection.delete_many({})
    collection.insert_one({"_id": 1, "jobs": {f"j{i}": {"unmet": 1} for i in range(paths)}})
    collection.update_one({"_id": 1}, {"$inc": {f"jobs.j{i}.unmet": -1 for i in range(paths)}})
    stored = collection.find_one({"_id": 1})
    return sum(1 for job in stored["jobs"].values() if job["unmet"] == 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100,1000,3000,10000", help="comma-separated job counts")
    parser.add_argument("--repeat", type=int, default=20, help="commands timed per size (default 20)")
    parser.add_argument("--mongo-uri", default=None, help="this server, not a new nx-27017")
    args = parser.parse_args(argv)
    process = None
    uri = args.mongo_uri
    if uri is None:
        process, uri = start_server()
    client: Any = MongoClient(uri, tz_aware=True)
    try:
        database = client["bench_wire_scale"]
        runs = database["state_machines"]
        print(f"server: {'nx-27017 --db memory' if process else uri}")
        print(f"{'jobs':>7}{'run doc KB':>12}{'read ms':>10}{'update ms':>11}{'a whole run, estimated':>26}")
        for n in (int(size) for size in args.sizes.split(",")):
            size, read, update = per_command(runs, n, args.repeat)
            whole = n * COMMANDS_PER_JOB * (read + update) / 2
            print(
                f"{n:>7}{size / 1024:>12.0f}{1000 * read:>10.1f}{1000 * update:>11.1f}{whole / 3600:>22.1f} h"
            )
        print("nested $inc paths in one update -> applied:")
        for paths in (62, 63, 64, 65, 100):
            print(f"  {paths:>4} -> {nested_incs(database['incs'], paths)}")
        client.drop_database("bench_wire_scale")
    finally:
        client.close()
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
