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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.errors import LoadError, RenderError

if TYPE_CHECKING:
    from flowkit.diagram import Format

TARGET_HELP = "module:attr, path/to/file.py[:attr], or a folder (every workflow in it)"
SUFFIXES = {"svg": ".svg", "png": ".png", "pdf": ".pdf", "dot": ".dot", "mermaid": ".mmd"}


def register(subparsers: Any) -> None:
    from flowkit.diagram import FORMATS

    parser = subparsers.add_parser(
        "diagram",
        help="draw workflows (SVG, PNG, PDF, DOT, Mermaid)",
        description="Draw compiled workflows. The format comes from --format or the -o extension; "
        "without -o, DOT (default) or Mermaid text is printed. A folder TARGET needs -o DIR.",
    )
    parser.add_argument("target", metavar="TARGET", nargs="?", help=TARGET_HELP)
    parser.add_argument("-o", "--output", metavar="PATH", help="file to write, or a folder for several")
    parser.add_argument("--format", choices=FORMATS, help="output format (default: from -o, else dot)")
    parser.add_argument(
        "--run", metavar="RUN.json", help="colour job states from this run document (JSON of a Run)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flowkit.diagram import EXTENSIONS, format_for_path, render, to_dot, to_mermaid
    from flowkit.document import Run

    if args.target is None and args.run is None:
        print("error: give a TARGET to draw, or --run RUN.json to draw a run", file=sys.stderr)
        return 2
    state = _load_run(Path(args.run), Run) if args.run else None
    docs = _documents(args.target, state)
    output = Path(args.output) if args.output else None
    several = len(docs) > 1

    if output is None:
        fmt = args.format or "dot"
        if several:
            names = ", ".join(doc.name for doc in docs)
            raise RenderError(
                f"{args.target} has {len(docs)} workflows ({names}): pass -o DIR to write one file each"
            )
        if fmt not in ("dot", "mermaid"):
            raise RenderError(f"--format {fmt} is a binary format: pass -o FILE to write it")
        text = to_mermaid(docs[0], state) if fmt == "mermaid" else to_dot(docs[0], state)
        sys.stdout.write(text)
        return 0

    if several or output.is_dir() or args.output.endswith(("/", "\\")):
        folder_format: Format = args.format if args.format else "svg"
        for doc in docs:
            path = output / f"{doc.name}{SUFFIXES[folder_format]}"
            print(render(doc, path, format=folder_format, run=state))
        return 0

    fmt = args.format
    implied = EXTENSIONS.get(output.suffix.lower())
    if fmt is None:
        fmt = format_for_path(output)
    elif implied is not None and implied != fmt:
        raise RenderError(f"-o {output} names a {implied} file but --format is {fmt}")
    print(render(docs[0], output, format=fmt, run=state))
    return 0


def _load_run(path: Path, model: Any) -> Any:
    from pydantic import ValidationError

    try:
        text = path.read_text()
    except OSError as exc:
        raise LoadError(f"--run {path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        return model.model_validate_json(text)
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
