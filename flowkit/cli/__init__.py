"""The ``flowkit`` command line: ``main(argv=None) -> int``.

Each subcommand lives in its own module with ``register(subparsers)``, which adds an argparse parser
whose ``handler`` default is a function ``(args) -> int``. Building the parser imports no subcommand's
dependencies (no pydantic for ``flowkit --help``): handlers import what they use when they run.

Exit codes (one table, ``flowkit.cli._exit``): 0 done; 1 what was asked for failed (a run failed,
drift, an invalid workflow, MongoDB unreachable); 2 usage or bad input (argparse's own usage errors,
an unknown TARGET, bad JSON, a bad mock, missing configuration). A ``FlowkitError`` becomes one line
per problem on stderr; a closed stdout (``flowkit run --json | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from flowkit.cli._exit import FAILED, exit_code
from flowkit.errors import FlowkitError, InvalidWorkflow

__all__ = ["main"]

# module names under flowkit.cli, in the order they appear in --help
_COMMANDS = (
    "_compile",
    "_validate",
    "_schema",
    "_diagram",
    "_publish",
    "_start",
    "_control",
    "_run",
    "_package",
    "_template",
    "_runs",
    "_doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowkit",
        description="Workflows as code for AWS Lambda, MongoDB and EventBridge.",
        epilog="exit codes: 0 done; 1 what was asked for failed (run failed, drift, invalid workflow); "
        "2 usage or bad input (unknown TARGET, bad JSON, bad mock); 130 flowkit run aborted by a second Ctrl-C.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(f"flowkit.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit with 2 here
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return FAILED
    except InvalidWorkflow as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exit_code(exc)
    except FlowkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    return code


def _silence_stdout() -> None:
    """The reader went away: send what is left to /dev/null, so exiting prints no second traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout is not a real file
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
