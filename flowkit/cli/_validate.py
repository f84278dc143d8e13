"""`flowkit validate TARGET`: every error and warning, one line each; exit 1 on errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.cli._args import TARGET_HELP
from flowkit.cli._exit import FAILED, OK
from flowkit.errors import LoadError

if TYPE_CHECKING:
    from flowkit.document import WorkflowDocument


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check workflows and report every problem at once",
        description="Check workflows (or a compiled .json document) and print every error and warning.",
    )
    parser.add_argument("target", metavar="TARGET", help=TARGET_HELP + ", or a compiled document .json")
    parser.set_defaults(handler=run)


def _results(target: str) -> list[tuple[WorkflowDocument, Any]]:
    if not target.endswith(".json"):
        from flowkit.cli._compile import compile_target

        return compile_target(target)
    from flowkit.document import WorkflowDocument
    from flowkit.validation import validate_document

    path = Path(target)
    try:
        doc = WorkflowDocument.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise LoadError(f"cannot read {target!r}: {exc.strerror}") from exc
    except ValueError as exc:
        raise LoadError(f"{target!r} is not a workflow document: {exc}") from exc
    return [(doc, validate_document(doc))]


def run(args: argparse.Namespace) -> int:
    results = _results(args.target)
    several = len(results) > 1
    failed = 0
    for doc, report in results:
        prefix = f"{doc.name}: " if several else ""
        for error in report.errors:
            print(f"error: {prefix}{error}")
        for warning in report.warnings:
            print(f"warning: {prefix}{warning}")
        if report.errors:
            failed += 1
        errors, warnings = len(report.errors), len(report.warnings)
        state = f"{errors} error{'s' * (errors != 1)}" if errors else "ok"
        print(f"{doc.name}: {state}, {len(doc.jobs)} jobs, {warnings} warning{'s' * (warnings != 1)}")
    return FAILED if failed else OK
