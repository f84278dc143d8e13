"""`flowkit cancel RUN [--reason TEXT]` and `flowkit redrive RUN`: what an operator does to a run.

Both act on a run stored in MongoDB (``--mongo-uri`` / ``FLOWKIT_MONGO_URI``, ``--database``) through
``flowkit.runtime.control``. ``cancel`` prints ``cancelled RUN`` (or ``already cancelled RUN``; both exit
0); ``redrive`` prints ``redriven RUN (redrive N): job, job, ...``. A run that cannot be cancelled or
redriven (it ended otherwise, or is still running) is an error naming its status (exit 1); an unknown
run too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flowkit.cli._mongo import mongo_store

_CONNECTION = "MongoDB connection string (FLOWKIT_MONGO_URI)"


def _connection(parser: Any) -> None:
    parser.add_argument("run_id", metavar="RUN", help="the run id")
    parser.add_argument("--mongo-uri", metavar="URI", help=_CONNECTION)
    parser.add_argument("--database", metavar="DB", help="database name (FLOWKIT_DATABASE, default flowkit)")


def register(subparsers: Any) -> None:
    cancel = subparsers.add_parser(
        "cancel",
        help="cancel a running run",
        description="End a running run 'cancelled': nothing new starts, its pending and waiting jobs are "
        "cancelled, jobs already running are left to finish (their outcomes are recorded and change "
        "nothing else). One 'cancelled' event (notification run.cancelled).",
    )
    _connection(cancel)
    cancel.add_argument("--reason", metavar="TEXT", help="why (stored in the run and the cancelled event)")
    cancel.set_defaults(handler=run_cancel)
    redrive = subparsers.add_parser(
        "redrive",
        help="run a failed, timed-out or cancelled run again from where it stopped",
        description="Take a failed, timed-out or cancelled run back to running: the jobs whose failure "
        "ended it, the cancelled and unfinished ones, and the jobs decided on their outcome run again "
        "with a fresh attempt budget; succeeded jobs keep their outputs. Two redrives of the same "
        "failure redrive once.",
    )
    _connection(redrive)
    redrive.set_defaults(handler=run_redrive)


def run_cancel(args: argparse.Namespace) -> int:
    from flowkit.runtime.config import Settings
    from flowkit.runtime.control import cancel_run

    settings = Settings.from_env(mongo_uri=args.mongo_uri, database=args.database)
    with mongo_store(settings, to="cancel the run in") as store:
        won = cancel_run(store, args.run_id, reason=args.reason)
    print(f"{'cancelled' if won else 'already cancelled'} {args.run_id}")
    sys.stdout.flush()
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    from flowkit.runtime.config import Settings
    from flowkit.runtime.control import redrive_run

    settings = Settings.from_env(mongo_uri=args.mongo_uri, database=args.database)
    with mongo_store(settings, to="redrive the run in") as store:
        redrive = redrive_run(store, args.run_id)
    jobs = ", ".join(redrive.jobs) or "no job (the run ends again at once)"
    print(f"redriven {args.run_id} (redrive {redrive.redrive_count}): {jobs}")
    sys.stdout.flush()
    return 0
