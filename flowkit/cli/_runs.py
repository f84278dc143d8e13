"""`flowkit runs` and `flowkit status RUN`: see deployed runs, against ``--mongo-uri`` or FLOWKIT_MONGO_URI.

- ``flowkit runs [--workflow W] [--status S] [--since T] [--limit N] [--json]``: the newest runs first.
  ``--since`` takes an ISO-8601 time (``2026-11-27T02:00``, UTC unless it says otherwise) or an age
  (``30m``, ``6h``, ``2d``).
- ``flowkit status RUN [--json] [--diagram FILE] [--watch]``: every job with its state, attempt,
  duration, and output or error; ``--diagram`` draws the run (states coloured) straight from its id;
  ``--watch`` shows the live table (the local run display) until the run ends.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flowkit.cli._exit import OK
from flowkit.cli._mongo import mongo_store
from flowkit.errors import BadArgument, UnknownRun
from flowkit.vocab import RunStatus

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mongo-uri", metavar="URI", help="MongoDB connection string (FLOWKIT_MONGO_URI)")
    parser.add_argument("--database", metavar="DB", help="database name (FLOWKIT_DATABASE, default flowkit)")


def register(subparsers: Any) -> None:
    runs = subparsers.add_parser(
        "runs",
        help="list runs in MongoDB, newest first",
        description="List runs stored in MongoDB, newest first. The connection comes from --mongo-uri or "
        "FLOWKIT_MONGO_URI.",
    )
    runs.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    runs.add_argument("--status", choices=[str(s) for s in RunStatus], help="only runs with this status")
    runs.add_argument(
        "--since", metavar="TIME", help="only runs started since: ISO-8601 time or age (6h, 2d)"
    )
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (default 50)")
    runs.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    _connection(runs)
    runs.set_defaults(handler=list_runs)

    status = subparsers.add_parser(
        "status",
        help="show one run: every job's state, attempt, duration, output or error",
        description="Show one run stored in MongoDB: its status and every job's state, attempt, duration "
        "and output or error.",
    )
    status.add_argument("run_id", metavar="RUN", help="the run id")
    status.add_argument("--json", action="store_true", help="print the run document as JSON")
    status.add_argument(
        "--diagram", metavar="FILE", help="also draw the run to FILE (.svg, .png, .dot, .mmd)"
    )
    status.add_argument("--watch", action="store_true", help="show a live table until the run ends")
    status.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    _connection(status)
    status.set_defaults(handler=show_status)


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``--since``: an age (``30m``, ``6h``, ``2d``) or an ISO-8601 time (UTC unless it has a zone)."""
    age = _AGE.fullmatch(value.strip())
    if age:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadArgument(
            f"--since {value!r}: expected an ISO-8601 time (2026-11-27T02:00) or an age (30m, 6h, 2d)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _store(args: argparse.Namespace) -> Any:
    from flowkit.runtime.config import Settings

    settings = Settings.from_env(mongo_uri=args.mongo_uri, database=args.database)
    # closed on exit; a pymongo error becomes one line naming the host (flowkit.cli._mongo)
    return mongo_store(settings, to="read runs from")


def _iso(moment: Any) -> str:
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "" if moment is None else str(moment)


def _duration(begin: Any, end: Any) -> str:
    if not isinstance(begin, datetime):
        return ""
    finish = end if isinstance(end, datetime) else datetime.now(UTC)
    seconds = max(0.0, (_aware(finish) - _aware(begin)).total_seconds())
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def list_runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise BadArgument(f"--limit must be at least 1, got {args.limit}")
    query: dict[str, Any] = {}
    if args.workflow:
        query["workflow"] = args.workflow
    if args.status:
        query["status"] = args.status
    if args.since:
        query["created_at"] = {"$gte": parse_since(args.since)}
    with _store(args) as store:
        fields = {
            "workflow": 1,
            "version": 1,
            "status": 1,
            "phase": 1,
            "created_at": 1,
            "ended_at": 1,
            "jobs": 1,
        }
        found = list(store.runs.find(query, fields).sort("created_at", -1).limit(args.limit))
    if args.json:
        for run in found:
            jobs = run.pop("jobs", {}) or {}
            run["jobs"] = _counts(jobs)
            print(json.dumps(run, default=_iso, sort_keys=True))
        return OK
    if not found:
        print("no runs", file=sys.stderr)
        return OK
    rows = [["RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION", "JOBS"]]
    for run in found:
        counts = _counts(run.get("jobs") or {})
        rows.append(
            [
                str(run["_id"]),
                str(run.get("workflow", "")),
                str(run.get("status", "")),
                _iso(run.get("created_at")),
                _duration(run.get("created_at"), run.get("ended_at")),
                ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
            ]
        )
    _print_table(rows)
    return OK


def _counts(jobs: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs.values():
        state = str(job.get("state", "")) if isinstance(job, Mapping) else "?"
        counts[state] = counts.get(state, 0) + 1
    return counts


def _detail(job: Mapping[str, Any], limit: int = 80) -> str:
    error = job.get("error")
    if isinstance(error, Mapping):
        text = f"{error.get('type')}: {error.get('message')}"
    elif job.get("output") is not None:
        text = json.dumps(job.get("output"), sort_keys=True, default=str)
    elif job.get("error_ref") or job.get("output_ref"):
        text = "(in the results collection)"
    else:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_run(run: Mapping[str, Any]) -> None:
    """The plain-text view of one run document."""
    from flowkit.local.display import job_elapsed

    print(
        f"run {run['_id']}  workflow {run.get('workflow')}  version {run.get('version')}  "
        f"status {run.get('status')}"
    )
    print(f"started {_iso(run.get('created_at'))}  ended {_iso(run.get('ended_at')) or '-'}")
    rows = [["JOB", "STATE", "ATTEMPT", "DURATION", "OUTPUT / ERROR"]]
    for name, job in (run.get("jobs") or {}).items():
        elapsed = job_elapsed(job)
        rows.append(
            [
                name,
                str(job.get("state", "")),
                str(job.get("attempt", 0)),
                "" if elapsed is None else f"{elapsed:.2f}s",
                _detail(job),
            ]
        )
    _print_table(rows)


def show_status(args: argparse.Namespace) -> int:
    with _store(args) as store:
        run = store.get_run(args.run_id)
        if run is None:
            raise UnknownRun(
                f"no run {args.run_id!r} in {store.database.name}.{store.runs.name}", run_id=args.run_id
            )
        if args.watch:
            run = _watch(store, args.run_id, args.interval) or run
        # big outputs and errors are kept in the results collection: shown here in full
        run = store.resolve_run(run)
    if args.json:
        print(json.dumps(run, default=_iso, sort_keys=True, indent=2))
    else:
        print_run(run)
    if args.diagram:
        from pathlib import Path

        from flowkit.diagram import format_for_path, render
        from flowkit.document import Run

        state = Run.model_validate(run)
        path = Path(args.diagram)
        print(render(state.config, path, format=format_for_path(path), run=state), file=sys.stderr)
    return OK


def _watch(store: Any, run_id: str, interval: float) -> Mapping[str, Any] | None:
    from flowkit.local.display import LiveDisplay

    latest: dict[str, Mapping[str, Any]] = {}

    def fetch() -> Mapping[str, Any] | None:
        run: Mapping[str, Any] | None = store.get_run(run_id)
        if run is not None:
            latest["run"] = run
        return run

    with LiveDisplay(fetch):
        while True:
            run = fetch()
            if run is None or run.get("status") != RunStatus.RUNNING:
                break
            time.sleep(interval)
    return latest.get("run")
