"""`flowkit schema [-o FILE]`: the JSON Schema of the compiled workflow document."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowkit.document import WorkflowDocument, canonical_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of a compiled workflow document",
        description="Print the JSON Schema (draft 2020-12) of WorkflowDocument, the compiled workflow.",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=run)


def schema() -> dict[str, Any]:
    result = WorkflowDocument.model_json_schema()
    result["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return result


def run(args: argparse.Namespace) -> int:
    text = canonical_json(schema())
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
