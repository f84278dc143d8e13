"""`flowkit diagram [TARGET] [-o FILE|DIR] [--format FMT] [--run RUN.json]`: draw compiled workflows.

The format comes from ``--format`` or the output file's extension (``.svg .png .pdf .dot .gv .mmd .md``).
Without ``-o`` the DOT (default) or Mermaid text goes to stdout. Several workflows (a folder TARGET)
need ``-o DIR``, which gets one ``<name>.<ext>`` each. ``--run`` colours job states from a run document
(the ``Run`` model as JSON, e.g. exported from the ``state-machines`` collection); without TARGET, the
run's embedded configuration is drawn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.cli._args import TARGET_HELP
from flowkit.cli._exit import OK
from flowkit.errors import BadArgument, LoadError, RenderError

if TYPE_CHECKING:
    from flowkit.diagram import Format

SUFFIXES = {"svg": ".svg", "png": ".png", "pdf": ".pdf", "dot": ".dot", "mermaid": ".mmd"}


class _Formats:
    """``flowkit.diagram.FORMATS``, imported only when the diagram command parses or shows its help."""

    def _formats(self) -> tuple[str, ...]:
        from flowkit.diagram import FORMATS

        return FORMATS

    def __iter__(self) -> Iterator[str]:
        return iter(self._formats())

    def __contains__(self, value: object) -> bool:
        return value in self._formats()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diagram",
        help="draw workflows (SVG, PNG, PDF, DOT, Mermaid)",
        description="Draw compiled workflows. The format comes from --format or the -o extension; "
        "without -o, DOT (default) or Mermaid text is printed. A folder TARGET needs -o DIR.",
    )
    parser.add_argument("target", metavar="TARGET", nargs="?", help=TARGET_HELP)
    parser.add_argument("-o", "--output", metavar="PATH", help="file to write, or a folder for several")
    parser.add_argument(
        "--format",
        choices=_Formats(),
        metavar="FORMAT",  # a metavar, so that building the parser does not list (import) the formats
        help="output format: %(choices)s (default: from -o, else dot)",
    )
    parser.add_argument(
        "--run", metavar="RUN.json", help="colour job states from this run document (JSON of a Run)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flowkit.diagram import EXTENSIONS, format_for_path, render, to_dot, to_mermaid
    from flowkit.document import Run

    if args.target is None and args.run is None:
        raise BadArgument("give a TARGET to draw, or --run RUN.json to draw a run")
    state = _load_run(Path(args.run), Run) if args.run else None
    docs = _documents(args.target, state)
    output = Path(args.output) if args.output else None
    several = len(docs) > 1

    if output is None:
        fmt = args.format or "dot"
        if several:
            names = ", ".join(doc.name for doc in docs)
            raise BadArgument(
                f"{args.target} has {len(docs)} workflows ({names}): pass -o DIR to write one file each"
            )
        if fmt not in ("dot", "mermaid"):
            raise BadArgument(f"--format {fmt} is a binary format: pass -o FILE to write it")
        text = to_mermaid(docs[0], state) if fmt == "mermaid" else to_dot(docs[0], state)
        sys.stdout.write(text)
        return OK

    if several or output.is_dir() or args.output.endswith(("/", "\\")):
        folder_format: Format = args.format if args.format else "svg"
        for doc in docs:
            path = output / f"{doc.name}{SUFFIXES[folder_format]}"
            print(render(doc, path, format=folder_format, run=state))
        return OK

    fmt = args.format
    implied = EXTENSIONS.get(output.suffix.lower())
    if fmt is None:
        try:
            fmt = format_for_path(output)
        except RenderError as exc:
            raise BadArgument(str(exc)) from exc
    elif implied is not None and implied != fmt:
        raise BadArgument(f"-o {output} names a {implied} file but --format is {fmt}")
    print(render(docs[0], output, format=fmt, run=state))
    return OK


def _load_run(path: Path, model: Any) -> Any:
    """A run document from JSON: plain, or MongoDB Extended JSON as ``mongoexport`` writes it (``$date``,
    ``$numberLong``, ...), a single document or a one-element array (``mongoexport --jsonArray``)."""
    from bson import json_util
    from pydantic import ValidationError

    try:
        text = path.read_text()
    except OSError as exc:
        raise LoadError(f"--run {path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        data = json_util.loads(text, json_options=json_util.JSONOptions(tz_aware=True))
    except ValueError as exc:
        raise LoadError(f"--run {path}: not JSON: {exc}") from exc
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(document)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise LoadError(f"--run {path}: not a run document: {problems}") from exc


def _documents(target: str | None, state: Any) -> list[Any]:
    if target is None:
        return [state.config]
    from flowkit.cli._compile import compile_documents

    docs = compile_documents(target)
    if state is None:
        return docs
    for doc in docs:
        if doc.name == state.workflow:
            return [doc]
    names = ", ".join(doc.name for doc in docs)
    raise LoadError(
        f"--run: run {state.id!r} is a run of workflow {state.workflow!r}, which {target} does not define "
        f"(it has: {names})"
    )
