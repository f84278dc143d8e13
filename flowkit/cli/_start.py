"""`flowkit start TARGET --input JSON|@file.json [--run-id ID] [--mongo-uri URI] [--database DB]`.

Compiles and validates the workflow, then inserts the run and its ``started`` event into MongoDB (the
Atlas trigger takes it from there). Prints the run id. Starting the same ``--run-id`` again is
harmless: the existing run's id is printed and nothing is inserted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flowkit.cli._args import TARGET_HELP, parse_input
from flowkit.cli._mongo import mongo_store, require_uri
from flowkit.errors import LoadError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "start",
        help="start a run in MongoDB (prints the run id)",
        description="Compile TARGET and start a run of it in MongoDB: insert the run and its 'started' "
        "status event. Idempotent on --run-id. The connection comes from --mongo-uri or FLOWKIT_MONGO_URI.",
    )
    parser.add_argument("target", metavar="TARGET", help=TARGET_HELP + "; it must hold one workflow")
    parser.add_argument(
        "--input",
        default="{}",
        metavar="JSON",
        help="the run input: a JSON object, or @file.json (default {})",
    )
    parser.add_argument("--run-id", metavar="ID", help="choose the run id (default: <workflow>-<random>)")
    parser.add_argument("--workflow", metavar="NAME", help="which workflow, when TARGET holds several")
    parser.add_argument("--mongo-uri", metavar="URI", help="MongoDB connection string (FLOWKIT_MONGO_URI)")
    parser.add_argument("--database", metavar="DB", help="database name (FLOWKIT_DATABASE, default flowkit)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flowkit.cli._compile import compile_documents
    from flowkit.runtime.config import Settings
    from flowkit.runtime.start import start_run

    input_value = parse_input(args.input)
    settings = Settings.from_env(mongo_uri=args.mongo_uri, database=args.database)
    require_uri(settings, to="start the run in")
    documents = compile_documents(args.target)
    if args.workflow:
        documents = [doc for doc in documents if doc.name == args.workflow]
        if not documents:
            raise LoadError(f"{args.target} has no workflow named {args.workflow!r}")
    if len(documents) != 1:
        names = ", ".join(doc.name for doc in documents)
        raise LoadError(
            f"{args.target} holds {len(documents)} workflows ({names}): pick one with --workflow NAME"
        )
    with mongo_store(settings, to="start the run in") as store:
        store.ensure_indexes()
        started = start_run(store, documents[0], input_value, run_id=args.run_id)
    print(started.id)
    sys.stdout.flush()
    return 0
