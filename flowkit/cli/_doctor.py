"""`flowkit doctor [--stale MINUTES]`: is this deployment's database healthy, and are runs progressing?

Checks, each printed as ``ok`` / ``FAIL`` with what to do:

1. the database answers (``ping``);
2. the indexes flowkit needs exist (the unique status key above all: without it a status can be
   recorded twice);
3. workflows are published (the starter needs them);
4. status events are being processed: a job-level ``success`` / ``failed`` event older than
   ``--stale`` minutes whose job is still open in its run means nothing handled it — typically a
   suspended Atlas trigger (see docs/operations.md);
5. running runs are progressing: a running run with no status event for ``--stale`` minutes while
   none of its jobs is waiting for a timer.

Exit code 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from flowkit.cli._exit import FAILED, OK
from flowkit.errors import ConfigError
from flowkit.vocab import OPEN_STATES, EventStatus, JobState, RunStatus

_MAX_SHOWN = 10


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check a deployment's database, indexes, and that runs are progressing",
        description="Check the database flowkit runs on: connection, indexes, published workflows, status "
        "events left unprocessed (a suspended Atlas trigger) and running runs that stopped moving. "
        "Exit code 1 if anything is wrong.",
    )
    parser.add_argument("--stale", type=float, default=15.0, metavar="MINUTES", help="how old is stuck (15)")
    parser.add_argument("--mongo-uri", metavar="URI", help="MongoDB connection string (FLOWKIT_MONGO_URI)")
    parser.add_argument("--database", metavar="DB", help="database name (FLOWKIT_DATABASE, default flowkit)")
    parser.set_defaults(handler=run)


def _aware(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def diagnose(
    store: Any, workflows: Any, *, stale: timedelta, now: datetime | None = None
) -> list[tuple[bool, str]]:
    """``(ok, line)`` for every check, in order."""
    now = now or datetime.now(UTC)
    cutoff = now - stale
    results: list[tuple[bool, str]] = []
    try:
        store.database.command("ping")
    except Exception as exc:
        return [(False, f"database {store.database.name!r} does not answer: {exc}")]
    results.append((True, f"database {store.database.name!r} answers"))

    key_index = [i for i in store.statuses.list_indexes() if dict(i["key"]) == {"key": 1}]
    if key_index and all(i.get("unique") for i in key_index):
        results.append((True, f"{store.statuses.name}: unique index on key"))
    else:
        results.append(
            (
                False,
                f"{store.statuses.name}: no unique index on key (a status could be recorded twice): run "
                "`flowkit start` once or Store.ensure_indexes()",
            )
        )
    if any(list(dict(i["key"])) == ["workflow", "status"] for i in store.runs.list_indexes()):
        results.append((True, f"{store.runs.name}: index on workflow, status"))
    else:
        results.append(
            (
                False,
                f"{store.runs.name}: no index on workflow, status (slow run listings): Store.ensure_indexes()",
            )
        )
    published = sorted(
        {str(e.get("name")) for e in workflows.collection.find({}, {"name": 1}) if "@" not in str(e["_id"])}
    )
    if published:
        results.append((True, f"published workflows: {', '.join(published)}"))
    else:
        results.append(
            (False, "no published workflow: the starter can start nothing (`flowkit publish TARGET`)")
        )

    unprocessed = []
    for status in store.statuses.find(
        {
            "job": {"$ne": None},
            "status": {"$in": [EventStatus.SUCCESS.value, EventStatus.FAILED.value]},
            "time": {"$lt": cutoff},
        }
    ):
        header, job = store.read_job(status["run_id"], status["job"])
        if header is None or job is None or header.get("status") != RunStatus.RUNNING:
            continue
        if job.get("state") in OPEN_STATES and job.get("attempt") == status.get("attempt"):
            unprocessed.append(status["key"])
    if unprocessed:
        shown = ", ".join(sorted(unprocessed)[:_MAX_SHOWN])
        results.append(
            (
                False,
                f"{len(unprocessed)} status event(s) older than {stale} never reached the handlers ({shown}): "
                "is the Atlas trigger suspended? See docs/operations.md",
            )
        )
    else:
        results.append((True, "every old job outcome was handled"))

    stuck = []
    for run in store.runs.find({"status": RunStatus.RUNNING.value}, {"jobs": 1, "created_at": 1}):
        jobs = run.get("jobs") or {}
        if any(j.get("state") == JobState.WAITING for j in jobs.values() if isinstance(j, dict)):
            continue  # waiting for a retry's timer: quiet on purpose
        latest = _aware(run.get("created_at"))
        for status in store.statuses.find({"run_id": run["_id"]}, {"time": 1}):
            moment = _aware(status.get("time"))
            if moment is not None and (latest is None or moment > latest):
                latest = moment
        if latest is not None and latest < cutoff:
            stuck.append(f"{run['_id']} (last event {latest:%Y-%m-%dT%H:%M:%SZ})")
    if stuck:
        results.append(
            (
                False,
                f"{len(stuck)} running run(s) without any event for {stale}: {', '.join(sorted(stuck)[:_MAX_SHOWN])}; "
                "check the dead-letter queue and the job functions' logs (`flowkit status RUN`)",
            )
        )
    else:
        results.append((True, "running runs are progressing"))
    return results


def run(args: argparse.Namespace) -> int:
    from flowkit.runtime.config import Settings
    from flowkit.runtime.definitions import Definitions
    from flowkit.runtime.store import Store

    settings = Settings.from_env(mongo_uri=args.mongo_uri, database=args.database)
    if not settings.mongo_uri:
        raise ConfigError("no MongoDB to check: pass --mongo-uri URI or set FLOWKIT_MONGO_URI")
    store = Store.from_settings(settings)
    try:
        results = diagnose(
            store,
            Definitions(store.database, settings.workflows_collection),
            stale=timedelta(minutes=args.stale),
        )
    finally:
        store.database.client.close()
    for ok, line in results:
        print(f"{'ok  ' if ok else 'FAIL'} {line}")
    return OK if all(ok for ok, _ in results) else FAILED
