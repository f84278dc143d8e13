"""Hand-built compiled documents for the diagram tests (no DSL, no compiler: documents only)."""

from __future__ import annotations

from typing import Any

from flowkit.document import Branch, JobSpec, Phase, Target, WorkflowDocument, content_version


def ref(*path: str | int) -> dict[str, Any]:
    return {"ref": list(path)}


def op(name: str, *args: dict[str, Any]) -> dict[str, Any]:
    return {"op": name, "args": list(args)}


def const(value: Any) -> dict[str, Any]:
    return {"const": value}


def job(name: str, phase: str, needs: list[str] | None = None, **fields: Any) -> JobSpec:
    fields.setdefault("target", Target(function=f"fn-{name}"))
    return JobSpec(name=name, phase=phase, needs=sorted(needs or []), **fields)


def document(
    name: str, jobs: list[JobSpec], branches: list[Branch] | None = None, **fields: Any
) -> WorkflowDocument:
    phases: dict[str, list[str]] = {}
    for spec in jobs:
        phases.setdefault(spec.phase, []).append(spec.name)
    body = WorkflowDocument(
        name=name,
        version="",
        phases=[Phase(name=p, jobs=names) for p, names in phases.items()],
        jobs=jobs,
        branches=branches or [],
        **fields,
    )
    return body.model_copy(update={"version": content_version(body.model_dump(mode="json"))})


ROWS = op("gt", ref("jobs", "extract", "output", "rows"), const(0))
NOT_ROWS = op("not", ROWS)


def etl() -> WorkflowDocument:
    """extract -> when(rows > 0, then=transform -> load, otherwise=notify_empty) -> report."""
    return document(
        "nightly-etl",
        [
            job("extract", "extract", target=Target(function="etl-extract", qualifier="prod"),
                timeout_seconds=300),
            job("transform", "process", ["extract"], condition=ROWS,
                retry={"max_attempts": 3}),
            job("load", "process", ["transform"], condition=ROWS,
                target=Target(function="arn:aws:lambda:eu-west-1:123456789012:function:etl-load:live")),
            job("notify_empty", "process", ["extract"], condition=NOT_ROWS),
            job("report", "report", ["load", "notify_empty"]),
        ],
        [Branch(id="w1", condition=ROWS, then=["transform", "load"], otherwise=["notify_empty"])],
        description="Extract, transform and load the day's orders.",
    )  # fmt: skip


def fan_out(width: int = 60) -> WorkflowDocument:
    """prepare -> parallel(width shards with long names) -> merge."""
    shards = [f"process_customer_partition_{i:02d}_of_the_nightly_batch" for i in range(width)]
    return document(
        "fan-out",
        [job("prepare", "prepare")]
        + [job(s, "shards", ["prepare"]) for s in shards]
        + [job("merge_all_partitions_into_the_warehouse", "merge", shards)],
    )


def all_to_all(width: int = 50) -> WorkflowDocument:
    """parallel(a_i) -> parallel(b_i): every b needs every a."""
    a = [f"a{i:02d}" for i in range(width)]
    return document(
        "all-to-all",
        [job(n, "first") for n in a] + [job(f"b{i:02d}", "second", a) for i in range(width)],
    )


def checkout() -> WorkflowDocument:
    """charge -> when(charge.failed, then=refund, otherwise=when(input.express, then=ship_express)) -> done.

    A failure-handled job, nested whens and an empty otherwise arm.
    """
    failed = op("eq", ref("jobs", "charge", "status"), const("failed"))
    express = op("truthy", ref("input", "express"))
    return document(
        "checkout",
        [
            job("charge", "pay", failure_handled=True),
            job("refund", "fulfil", ["charge"], condition=failed),
            job("ship_express", "fulfil", ["charge"], condition=op("and", op("not", failed), express)),
            job("done", "close", ["refund", "ship_express"]),
        ],
        [
            Branch(id="paid", condition=failed, then=["refund"], otherwise=["ship_express"]),
            Branch(id="express", condition=express, then=["ship_express"]),
        ],
    )
