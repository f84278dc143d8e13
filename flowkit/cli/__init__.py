"""The ``flowkit`` command line: ``main(argv=None) -> int``.

Each subcommand lives in its own module with ``register(subparsers)``, which adds an argparse parser
whose ``handler`` default is a function ``(args) -> int``. ``FlowkitError`` becomes a one-line message
per problem on stderr and exit code 1; argparse usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flowkit.errors import FlowkitError, InvalidWorkflow

__all__ = ["main"]

# module names under flowkit.cli, in the order they appear in --help
_COMMANDS = ("_compile", "_validate", "_schema", "_diagram", "_publish", "_start", "_run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowkit", description="Workflows as code for AWS Lambda, MongoDB and EventBridge."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(f"flowkit.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except InvalidWorkflow as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except FlowkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
