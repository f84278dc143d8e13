"""Wide fan-out / fan-in: split a catalogue into 64 shards, re-price each in parallel, merge.

Each shard job is the same body under its own name (``reprice.named("reprice-07", input=...)``); its
static input says which shard it owns. ``merge`` waits for all 64. Every body runs in one Lambda
function, ``catalogue-jobs`` (``Defaults(jobs_function=...)``), whose job router picks the body the
payload names: 66 jobs, one function to deploy.

    flowkit run workflows/fan_out.py --input '{"products": 6400}'
"""

from __future__ import annotations

from typing import Any

from flowkit import Defaults, job, parallel, workflow

SHARDS = 64
Event = dict[str, Any]


@job(timeout=60)
def split(event: Event, context: Any = None) -> dict[str, Any]:
    """Decide the shard size from the catalogue size."""
    products = int((event.get("input") or {}).get("products", 6400))
    return {"products": products, "shards": SHARDS, "per_shard": -(-products // SHARDS)}


@job(timeout=120)
def reprice(event: Event, context: Any = None) -> dict[str, Any]:
    """Re-price the products of one shard (a deterministic 3% increase)."""
    shard = int(event.get("job_input", {}).get("shard", 0))
    per_shard = int(((event.get("needs") or {}).get("split") or {}).get("per_shard", 0))
    return {"shard": shard, "repriced": per_shard, "delta_cents": 3 * per_shard}


@job(timeout=120)
def merge(event: Event, context: Any = None) -> dict[str, Any]:
    """Sum every shard's result."""
    outputs = [o for name, o in sorted((event.get("needs") or {}).items()) if name.startswith("reprice-")]
    return {
        "shards": len(outputs),
        "repriced": sum(int(o.get("repriced", 0)) for o in outputs if isinstance(o, dict)),
    }


@workflow(name="fan-out", defaults=Defaults(jobs_function="catalogue-jobs"))
def fan_out() -> Any:
    """Split, re-price 64 shards in parallel, merge."""
    shards = [reprice.named(f"reprice-{i:02d}", input={"shard": i}) for i in range(SHARDS)]
    return split >> parallel(*shards) >> merge
