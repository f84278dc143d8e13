"""A wide fan-out with modest outputs runs locally: the outputs live in the results collection.

1,000 jobs returning 16 KB each used to add 16 MB to the run document, past MongoDB's limit; now the run
document keeps a reference per job and stays small, and the local run's result reads the outputs back.
"""

from __future__ import annotations

from typing import Any

import bson

from flowkit import job, parallel, workflow
from flowkit.local.embedded import embedded_database
from flowkit.local.runner import run_workflow
from flowkit.vocab import MONGO_DOCUMENT_LIMIT

WIDTH = 1_000
SIXTEEN_KB = 16 * 1024


def shard(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """A modest output: 16 KB of text naming the shard."""
    name = event["job"]
    return {"shard": name, "rows": (name * SIXTEEN_KB)[:SIXTEEN_KB]}


def start(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    return {"shards": WIDTH}


def fan_out() -> Any:
    shards = [job(name=f"s{i:04d}")(shard) for i in range(WIDTH)]
    head = job(name="start")(start)

    @workflow(name="wide-outputs")
    def wide() -> Any:
        # no join: a job needing all 1,000 outputs would get a 16 MB payload, over the 1 MiB limit
        return head >> parallel(*shards)

    return wide


def test_a_1000_job_fan_out_of_16_kb_outputs_succeeds_and_its_run_document_stays_small() -> None:
    database = embedded_database("flowkit")
    run = run_workflow(fan_out(), {}, database=database, timeout=300)

    assert run.status == "succeeded", run.dead_letters
    assert run.jobs["s0000"].output == shard({"job": "s0000"})
    assert run.jobs[f"s{WIDTH - 1:04d}"].output == shard({"job": f"s{WIDTH - 1:04d}"})
    stored = database["state-machines"].find_one({"_id": run.id})
    size = len(bson.encode(stored))
    outputs = sum(len(bson.encode({"v": j.output})) for j in run.jobs.values())
    print(
        f"\nrun document: {size / 1024:.0f} KiB for {len(run.jobs)} jobs; their outputs: {outputs / 1024 / 1024:.1f} MiB "
        f"in {database['results'].count_documents({'run_id': run.id})} results"
    )
    assert size < 1024 * 1024
    assert size + outputs > MONGO_DOCUMENT_LIMIT  # what the run document would have been: refused
    assert database["results"].count_documents({"run_id": run.id}) == WIDTH
    shards = {name: entry for name, entry in stored["jobs"].items() if name != "start"}
    assert len(shards) == WIDTH
    assert all(entry["output"] is None and entry["output_ref"] for entry in shards.values())
