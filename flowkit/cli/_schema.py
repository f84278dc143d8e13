"""`flowkit schema [--status] [-o FILE]`: the JSON Schema of the compiled workflow document, or of a
status event (the protocol for code that reports into the ``statuses`` collection itself)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowkit.errors import BadArgument


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of a compiled workflow document",
        description="Print the JSON Schema (draft 2020-12) of WorkflowDocument, the compiled workflow.",
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="the schema of a status document (what a job inserts into 'statuses' to report)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=run)


def schema() -> dict[str, Any]:
    from flowkit.document import WorkflowDocument

    result = WorkflowDocument.model_json_schema()
    result["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return result


def status_schema() -> dict[str, Any]:
    """The status document, as inserted into ``statuses`` (``time`` a BSON date; ISO-8601 in JSON)."""
    from flowkit.document import StatusEvent

    result = StatusEvent.model_json_schema()
    result["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    result["description"] = (
        "A document of the flowkit 'statuses' collection. 'key' must be "
        "'<run_id>/<job or *>/<attempt>/<status>' (unique index: reporting twice inserts once); "
        "'job' is null and 'attempt' 0 for workflow-level events; 'output' goes with 'success', "
        "'error' with 'failed'. Report only for an attempt the orchestrator dispatched to you."
    )
    result["required"] = sorted({*result.get("required", []), "job", "attempt"})
    return result


def run(args: argparse.Namespace) -> int:
    from flowkit.document import canonical_json

    text = canonical_json(status_schema() if args.status else schema())
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadArgument(f"-o {args.output}: cannot write it: {exc.strerror or exc}") from exc
    else:
        sys.stdout.write(text)
    return 0
