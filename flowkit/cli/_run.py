"""`flowkit run TARGET`: run a workflow to completion on this machine.

Exit codes (the table of ``flowkit.cli._exit``): 0 the run succeeded, 1 it failed (or timed out /
stalled, or the workflow is invalid), 2 bad usage or bad input (unparsable --input, unknown TARGET, a
malformed or misplaced mock).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flowkit.cli._args import TARGET_HELP, BadArgument, parse_input
from flowkit.cli._exit import FAILED, OK
from flowkit.errors import FlowkitError, RenderError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a workflow locally, end to end, through the real runtime",
        description=(
            "Run a workflow to completion on this machine: an embedded store (or MongoDB with "
            "--mongo-uri), an in-process event bus delivering EventBridge envelopes to the runtime "
            "handlers, and job bodies in a thread pool. Exit 0 if the run succeeded, 1 if it failed, "
            "2 for bad usage or input."
        ),
    )
    parser.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    parser.add_argument(
        "--input", metavar="JSON|@FILE", default=None, help="run input: a JSON object, or @file.json"
    )
    parser.add_argument(
        "--mock",
        metavar="JOB=@FILE|JOB=JSON",
        action="append",
        default=[],
        help="mock a job's success with this output (repeatable)",
    )
    parser.add_argument(
        "--mock-file",
        metavar="FILE",
        default=None,
        help='per-job outcomes per attempt: {"jobs": {"JOB": [{"success": ...} | {"failure": {...}}]}}',
    )
    parser.add_argument(
        "--chaos", metavar="SEED", type=int, default=None, help="duplicate, reorder and delay deliveries"
    )
    parser.add_argument(
        "--mongo-uri", metavar="URI", default=None, help="use this MongoDB, not the embedded store"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "virtual"),
        default="wall",
        help="virtual: jump over retry backoffs and timeouts when nothing else runs (default wall)",
    )
    parser.add_argument("--json", action="store_true", help="print the final run document as JSON")
    parser.add_argument(
        "--diagram", metavar="FILE", default=None, help="write the run's diagram (e.g. run.svg)"
    )
    parser.add_argument(
        "--timeout", metavar="S", type=_positive, default=60.0, help="give up after S seconds (default 60)"
    )
    parser.add_argument(
        "--display",
        choices=("auto", "always", "never"),
        default="auto",
        help="live progress table: auto = only when stdout is a terminal",
    )
    parser.set_defaults(handler=run)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _check_diagram_path(path: str) -> None:
    """Fail before the run, not after it, on a diagram path whose format is unknown."""
    from flowkit.diagram import format_for_path

    try:
        format_for_path(path)
    except RenderError as exc:
        raise BadArgument(f"--diagram {path}: {exc}") from exc
    from pathlib import Path

    if Path(path).is_dir():
        raise BadArgument(f"--diagram {path}: is a directory; name the file to write (e.g. {path}/run.svg)")


def _stderr_console() -> Any:
    """With --json, stdout carries the document only: the live table goes to stderr."""
    from rich.console import Console

    return Console(stderr=True)


def run(args: argparse.Namespace) -> int:
    from flowkit.local.mocks import combine, load_mock_file, parse_mock_option
    from flowkit.local.runner import check_runnable, resolve, run_workflow

    data = parse_input(args.input)
    parts = [load_mock_file(args.mock_file)] if args.mock_file else []
    parts += [parse_mock_option(option) for option in args.mock]
    mocks = combine(parts)
    runnable = resolve(args.target)
    check_runnable(runnable.document, runnable.bodies, mocks)
    if args.diagram:
        _check_diagram_path(args.diagram)
    live = sys.stdout.isatty() and not args.json if args.display == "auto" else args.display == "always"
    result = run_workflow(
        runnable,
        data,
        mocks=mocks,
        chaos=args.chaos,
        mongo_uri=args.mongo_uri,
        timeout=args.timeout,
        clock=args.clock,
        display=live,
        console=_stderr_console() if live and args.json else None,
    )
    if args.json:
        print(result.to_json())
    else:
        from flowkit.local.display import render_summary

        render_summary(result)
    if args.diagram:
        from flowkit.diagram import render

        try:
            render(result.run.config, args.diagram, run=result.run)
        except FlowkitError as exc:
            raise RenderError(f"--diagram {args.diagram}: {exc}") from exc
        if not args.json:
            print(f"diagram: {args.diagram}")
    return OK if result.succeeded else FAILED
