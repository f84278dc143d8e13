"""`flowkit compile TARGET [-o FILE|DIR] [--check FILE|DIR]`: workflows -> JSON documents."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.cli._args import TARGET_HELP
from flowkit.cli._exit import FAILED, OK
from flowkit.errors import BadArgument, InvalidWorkflow

if TYPE_CHECKING:
    from flowkit.document import WorkflowDocument

_DIFF_LINES = 40


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compile",
        help="compile workflows to their JSON documents",
        description="Compile workflows to JSON. One workflow goes to stdout (or -o FILE); several need -o DIR, "
        "which gets one <name>.json each. --check compares with committed files and exits 1 on drift.",
    )
    parser.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-o", "--output", metavar="PATH", help="write to this file (or folder, for several)")
    mode.add_argument("--check", metavar="PATH", help="compare with this committed file (or folder)")
    parser.set_defaults(handler=run)


def compile_target(target: str) -> list[tuple[WorkflowDocument, Any]]:
    """Load and compile every workflow of TARGET: (document, report) pairs, in name order.

    An exception raised while building a workflow (a TypeError from the DSL, a bug in the workflow
    function) becomes an ``InvalidWorkflow`` showing the user's own traceback lines.
    """
    from flowkit.compiler import compile_with_report
    from flowkit.loader import describe_user_error, load_workflows

    results = []
    for wf in load_workflows(target):
        try:
            results.append(compile_with_report(wf))
        except Exception as exc:
            message = describe_user_error(f"workflow {wf.name!r} could not be built", exc)
            raise InvalidWorkflow(message, workflow=wf.name) from exc
    return results


def compile_documents(target: str) -> list[WorkflowDocument]:
    """Like ``compile_target``, but raise ``InvalidWorkflow`` with every error of every workflow."""
    results = compile_target(target)
    several = len(results) > 1
    problems = [
        f"{doc.name}: {error}" if several else error for doc, report in results for error in report.errors
    ]
    if problems:
        raise InvalidWorkflow(f"{target}: {len(problems)} problem(s)", problems=problems)
    return [doc for doc, _ in results]


def _destination(path: Path, doc: WorkflowDocument, several: bool) -> Path:
    return path / f"{doc.name}.json" if several or path.is_dir() else path


def run(args: argparse.Namespace) -> int:
    docs = compile_documents(args.target)
    several = len(docs) > 1
    if args.check:
        code = _check(docs, Path(args.check), several)
        if Path(args.target).is_dir() and Path(args.check).is_dir():
            code = max(code, _stale(docs, Path(args.check)))
        return code
    if args.output is None:
        if several:
            names = ", ".join(doc.name for doc in docs)
            raise BadArgument(
                f"{args.target} has {len(docs)} workflows ({names}): pass -o DIR to write one file each"
            )
        sys.stdout.write(docs[0].to_json())
        return OK
    out = Path(args.output)
    for doc in docs:
        dest = _destination(out, doc, several)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(doc.to_json(), encoding="utf-8")
        except OSError as exc:
            raise BadArgument(f"-o {args.output}: cannot write {dest}: {exc.strerror or exc}") from exc
        print(f"wrote {dest} ({doc.name}, {len(doc.jobs)} jobs, {doc.version})", file=sys.stderr)
    return OK


def _check(docs: list[WorkflowDocument], path: Path, several: bool) -> int:
    if several and not path.is_dir():
        print(f"drift: {path} is not a folder of compiled workflows", file=sys.stderr)
        return FAILED
    drift = 0
    for doc in docs:
        dest = _destination(path, doc, several)
        fresh = doc.to_json()
        if not dest.is_file():
            print(
                f"drift: {dest} does not exist (compile {doc.name!r} with -o to create it)", file=sys.stderr
            )
            drift += 1
            continue
        committed = dest.read_text(encoding="utf-8")
        if committed == fresh:
            print(f"up to date: {dest} ({doc.version})", file=sys.stderr)
            continue
        drift += 1
        print(
            f"drift: {dest} differs from workflow {doc.name!r} ({_version(committed)} -> {doc.version})",
            file=sys.stderr,
        )
        diff = list(
            difflib.unified_diff(
                committed.splitlines(),
                fresh.splitlines(),
                str(dest),
                f"{doc.name} (compiled)",
                lineterm="",
                n=2,
            )
        )
        for line in diff[:_DIFF_LINES]:
            print(line, file=sys.stderr)
        if len(diff) > _DIFF_LINES:
            print(f"... ({len(diff) - _DIFF_LINES} more diff lines)", file=sys.stderr)
    return FAILED if drift else OK


def _stale(docs: list[WorkflowDocument], folder: Path) -> int:
    """Committed ``<name>.json`` files of a whole folder that no workflow compiles to any more."""
    expected = {f"{doc.name}.json" for doc in docs}
    stale = sorted(p for p in folder.glob("*.json") if p.name not in expected)
    for path in stale:
        print(f"drift: {path} has no workflow any more (delete it)", file=sys.stderr)
    return FAILED if stale else OK


def _version(text: str) -> str:
    from flowkit.document import WorkflowDocument

    try:
        return WorkflowDocument.model_validate_json(text).version
    except ValueError:
        return "unreadable"
