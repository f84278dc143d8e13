"""Nested composition: a parallel of sequences, one step of which is an existing Lambda (no body).

``score`` runs the deployed ``score-model`` function (ARN + alias); the other jobs have local bodies.
Each region's branch is its own sequence, so the EU branch does not wait for the US branch. The
publication step only runs when the input asks for it (``{"publish": true}``).

    flowkit run workflows/nested.py --input '{"day": "2026-11-27", "publish": true}'
"""

from __future__ import annotations

from typing import Any

from flowkit import Retry, input, job, parallel, sequence, when, workflow

Event = dict[str, Any]


@job(timeout=60)
def prepare(event: Event, context: Any = None) -> dict[str, Any]:
    """Pick the partitions of the day."""
    day = str((event.get("input") or {}).get("day", "1970-01-01"))
    return {"day": day, "regions": ["eu", "us"]}


@job(timeout=300, retry=Retry(attempts=2, interval=10))
def fetch(event: Event, context: Any = None) -> dict[str, Any]:
    """Fetch the region's events (the region is the job's static input)."""
    region = str(event.get("job_input", {}).get("region", "eu"))
    return {"region": region, "events": 1000 if region == "eu" else 1500}


@job(timeout=300)
def clean(event: Event, context: Any = None) -> dict[str, Any]:
    """Drop bot traffic: one event in ten."""
    fetched = next(iter((event.get("needs") or {}).values()), None) or {}
    events = int(fetched.get("events", 0))
    return {"region": fetched.get("region"), "events": events - events // 10}


score = job(
    "score",
    target="arn:aws:lambda:eu-west-1:123456789012:function:score-model",
    qualifier="prod",
    timeout=900,
    description="Score the cleaned events with the deployed model",
)


@job(timeout=120)
def publish(event: Event, context: Any = None) -> dict[str, Any]:
    """Publish the day's dashboards."""
    return {"published": (event.get("input") or {}).get("day")}


@job(timeout=60)
def summary(event: Event, context: Any = None) -> dict[str, Any]:
    """Name every job that finished before this one."""
    return {"after": sorted((event.get("needs") or {}).keys())}


@workflow(name="nested")
def nested() -> Any:
    """Prepare; per region fetch >> clean (EU also scored); publish on request; summarize."""
    return sequence(
        prepare,
        parallel(
            sequence(fetch.named("fetch-eu", input={"region": "eu"}), clean.named("clean-eu"), score),
            sequence(fetch.named("fetch-us", input={"region": "us"}), clean.named("clean-us")),
        ),
        when(input["publish"] == True, then=publish),  # noqa: E712  # builds a condition, not a bool
        summary,
    )
