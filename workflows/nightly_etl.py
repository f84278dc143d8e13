"""Nightly ETL: extract a day's orders, transform them three ways in parallel, load, report.

Run it locally::

    flowkit run workflows/nightly_etl.py --input '{"date": "2026-11-27"}'

The bodies are deterministic functions of their input, so a local run needs no network: the number of
extracted rows is derived from the date (``{"rows": 0}`` in the input forces an empty day, which skips
``load``).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from flowkit import Defaults, Notify, Retry, job, parallel, when, workflow

Event = dict[str, Any]


def _rows_for(date: str) -> int:
    """A stable pseudo row count for a date: 100..999."""
    return 100 + int(hashlib.sha256(date.encode()).hexdigest()[:6], 16) % 900


@job(timeout=timedelta(minutes=15), retry=Retry(attempts=3, interval=30, backoff=2.0, max_delay=300))
def extract(event: Event, context: Any = None) -> dict[str, Any]:
    """Read the day's orders from the source database."""
    run_input = event.get("input") or {}
    date = str(run_input.get("date", "1970-01-01"))
    rows = int(run_input["rows"]) if "rows" in run_input else _rows_for(date)
    return {"date": date, "rows": rows, "batch": f"orders/{date}.parquet"}


def _upstream(event: Event) -> dict[str, Any]:
    extracted: dict[str, Any] = (event.get("needs") or {}).get("extract") or {}
    return extracted


@job(name="normalize-currency", timeout=600, input={"currency": "EUR"})
def normalize_currency(event: Event, context: Any = None) -> dict[str, Any]:
    """Convert every amount to the reporting currency."""
    rows = int(_upstream(event).get("rows", 0))
    return {"rows": rows, "currency": event.get("job_input", {}).get("currency", "EUR")}


@job(timeout=600)
def dedupe(event: Event, context: Any = None) -> dict[str, Any]:
    """Drop duplicate orders (about 1 in 50)."""
    rows = int(_upstream(event).get("rows", 0))
    return {"rows": rows - rows // 50, "duplicates": rows // 50}


@job(name="enrich-customers", timeout=600)
def enrich_customers(event: Event, context: Any = None) -> dict[str, Any]:
    """Join customer segments onto each order."""
    rows = int(_upstream(event).get("rows", 0))
    return {"rows": rows, "segments": 4}


@job(timeout=timedelta(minutes=30))
def load(event: Event, context: Any = None) -> dict[str, Any]:
    """Write the transformed rows into the warehouse."""
    needs = event.get("needs") or {}
    loaded = int((needs.get("dedupe") or {}).get("rows", 0))
    return {"table": "warehouse.orders", "loaded": loaded}


@job(timeout=120, needs=["extract"])
def report(event: Event, context: Any = None) -> dict[str, Any]:
    """Summarize the night: rows extracted and loaded (zero when load was skipped)."""
    needs = event.get("needs") or {}
    extracted = int((needs.get("extract") or {}).get("rows", 0))
    loaded = int((needs.get("load") or {}).get("loaded", 0))
    return {"date": (event.get("input") or {}).get("date"), "extracted": extracted, "loaded": loaded}


@workflow(
    name="nightly-etl",
    notify=Notify(slack_channel="#etl", on=["run.failed", "job.failed"], mention="<!here>"),
    defaults=Defaults(function_prefix="etl-", qualifier="prod"),
)
def nightly_etl() -> Any:
    """Extract, transform in parallel, load when there is data, report."""
    return (
        extract
        >> parallel(normalize_currency, dedupe, enrich_customers)
        >> when(extract.output["rows"] > 0, then=load)
        >> report
    )
