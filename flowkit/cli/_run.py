"""`flowkit run TARGET`: run a workflow to completion on this machine.

Exit codes (the table of ``flowkit.cli._exit``): 0 the run succeeded, 1 it failed (or timed out /
stalled, was cancelled, or the workflow is invalid), 2 bad usage or bad input (unparsable --input,
unknown TARGET, a malformed or misplaced mock), 130 aborted by a second Ctrl-C.

Ctrl-C (SIGINT) cancels the run through the runtime's cancel (``LocalEnvironment.cancel``, the same
path as ``flowkit cancel``): nothing new starts, jobs already running finish and are recorded, then the
final table is shown. A second Ctrl-C aborts at once, leaving the stored run as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, Final

from flowkit.cli._args import TARGET_HELP, BadArgument, parse_input
from flowkit.cli._exit import FAILED, OK
from flowkit.errors import FlowkitError, RenderError

ABORTED: Final = 130
"""Exit code of a run aborted by a second Ctrl-C (128 + SIGINT, as a shell reports it)."""
INTERRUPTED: Final = "interrupted by Ctrl-C"
"""The reason stored in a run cancelled by Ctrl-C."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a workflow locally, end to end, through the real runtime",
        description=(
            "Run a workflow to completion on this machine: an embedded store (or MongoDB with "
            "--mongo-uri), an in-process event bus delivering EventBridge envelopes to the runtime "
            "handlers, and job bodies in a thread pool. Ctrl-C cancels the run (jobs already running "
            "finish, then the final table is shown); a second Ctrl-C aborts. Exit 0 if the run "
            "succeeded, 1 if it failed or was cancelled, 2 for bad usage or input, 130 if aborted."
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
    parser.add_argument(
        "--cancel-after",
        metavar="DURATION",
        type=_duration,
        default=None,
        help="cancel the run this long after it started, on the run's clock (virtual time with "
        "--clock virtual): 90, 90s, 5m, 1.5h",
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


_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*")


def _duration(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``5m`` or ``1.5h``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 90s, 5m or 1.5h, got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a duration of more than 0, got {text!r}")
    return seconds


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


@contextlib.contextmanager
def _interrupt_cancels(handle: Any) -> Iterator[None]:
    """While the run goes: the first Ctrl-C cancels it (on another thread: a signal handler must not
    wait for the store), the second raises ``KeyboardInterrupt``. Outside the main thread, nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupts = 0
    run_id = handle.run_id

    def cancel() -> None:
        try:
            handle.cancel(INTERRUPTED)
        except FlowkitError as exc:  # it ended meanwhile: nothing to cancel
            print(f"run {run_id} not cancelled: {exc}", file=sys.stderr, flush=True)

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        print(
            f"\ncancelling run {run_id}: jobs already running finish first (Ctrl-C again to abort)",
            file=sys.stderr,
            flush=True,
        )
        threading.Thread(target=cancel, name="flowkit-cancel", daemon=True).start()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(args: argparse.Namespace) -> int:
    from flowkit.local.environment import LocalEnvironment
    from flowkit.local.mocks import combine, load_mock_file, parse_mock_option
    from flowkit.local.runner import check_runnable, resolve

    data = parse_input(args.input)
    parts = [load_mock_file(args.mock_file)] if args.mock_file else []
    parts += [parse_mock_option(option) for option in args.mock]
    mocks = combine(parts)
    runnable = resolve(args.target)
    check_runnable(runnable.document, runnable.bodies, mocks)
    if args.diagram:
        _check_diagram_path(args.diagram)
    live = sys.stdout.isatty() and not args.json if args.display == "auto" else args.display == "always"
    environment = LocalEnvironment(mongo_uri=args.mongo_uri, chaos=args.chaos, clock=args.clock)
    try:
        # In the background, so this thread only waits: a Ctrl-C reaches it between two waits, never
        # inside a store operation.
        handle = environment.start(
            runnable,
            data,
            mocks=mocks,
            timeout=args.timeout,
            display=live,
            console=_stderr_console() if live and args.json else None,
            cancel_after=args.cancel_after,
        )
        with _interrupt_cancels(handle):
            result = handle.wait()
    except KeyboardInterrupt:
        # Not closed: that would wait for the run. The process ends; the run stays as it is.
        print("aborted: the run was left unfinished", file=sys.stderr, flush=True)
        return ABORTED
    except BaseException:
        environment.close()
        raise
    environment.close()
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
