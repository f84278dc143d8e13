"""`flowkit compile` (placeholder: not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("compile", help="(not implemented yet)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print("flowkit compile: not implemented yet", file=sys.stderr)
    return 2
