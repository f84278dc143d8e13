"""`flowkit publish TARGET [--mongo-uri URI] [--database DB] [--collection NAME]`.

Stores the compiled documents of TARGET in the ``workflows`` collection, where the starter Lambda finds
them (``flowkit.runtime.definitions``). TARGET is a Python target (compiled and validated here) or
compiled JSON: a ``.json`` file or a folder of them (``flowkit compile -o DIR``), checked against the
schema, validated, and refused when its ``version`` is not its content hash. Prints one line per
workflow: its name, version and ``published`` / ``unchanged`` / ``reactivated``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.cli._args import TARGET_HELP as _PYTHON_TARGET
from flowkit.cli._mongo import mongo_store, require_uri
from flowkit.errors import InvalidWorkflow, LoadError

if TYPE_CHECKING:
    from flowkit.document import WorkflowDocument

TARGET_HELP = _PYTHON_TARGET + ", or compiled JSON (a .json file or folder of them)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="store compiled workflows in MongoDB for the starter Lambda",
        description="Store the compiled documents of TARGET in the workflows collection (versioned by "
        "content hash, idempotent). The starter Lambda starts the newest published version of a workflow; "
        "runs keep the version they started with. The connection comes from --mongo-uri or FLOWKIT_MONGO_URI.",
    )
    parser.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    parser.add_argument("--mongo-uri", metavar="URI", help="MongoDB connection string (FLOWKIT_MONGO_URI)")
    parser.add_argument("--database", metavar="DB", help="database name (FLOWKIT_DATABASE, default flowkit)")
    parser.add_argument(
        "--collection", metavar="NAME", help="collection (FLOWKIT_WORKFLOWS_COLLECTION, default workflows)"
    )
    parser.set_defaults(handler=run)


def _json_documents(target: str) -> list[WorkflowDocument] | None:
    """The compiled documents of a ``.json`` target (file or folder of them), or None for Python targets."""
    from pydantic import ValidationError

    from flowkit.document import WorkflowDocument, content_version
    from flowkit.validation import validate_document

    path = Path(target)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files or list(path.glob("*.py")):
            return None
    elif path.suffix == ".json":
        if not path.is_file():
            raise LoadError(f"cannot publish {target!r}: no such file")
        files = [path]
    else:
        return None
    documents, problems = [], []
    for file in files:
        try:
            doc = WorkflowDocument.model_validate_json(file.read_bytes())
        except (OSError, ValidationError) as exc:
            problems.append(f"{file}: not a compiled workflow document: {str(exc).splitlines()[0]}")
            continue
        expected = content_version(doc.model_dump(mode="json"))
        if doc.version != expected:
            problems.append(
                f"{file}: version {doc.version!r} is not the document's content hash ({expected}): "
                "it was edited after compiling; compile it again"
            )
            continue
        problems += [f"{file}: {error}" for error in validate_document(doc).errors]
        documents.append(doc)
    if problems:
        raise InvalidWorkflow(f"{target}: {len(problems)} problem(s)", problems=problems)
    return documents


def run(args: argparse.Namespace) -> int:
    from flowkit.cli._compile import compile_documents
    from flowkit.runtime.config import Settings
    from flowkit.runtime.definitions import Definitions

    settings = Settings.from_env(
        mongo_uri=args.mongo_uri, database=args.database, workflows_collection=args.collection
    )
    require_uri(settings, to="publish to")
    documents = _json_documents(args.target)
    if documents is None:
        documents = compile_documents(args.target)
    with mongo_store(settings, to="publish to") as store:
        definitions = Definitions(store.database, settings.workflows_collection)
        definitions.ensure_indexes()
        for doc in documents:
            outcome = definitions.publish(doc.model_dump(mode="json"))
            print(f"{doc.name} {doc.version} {outcome}")
    sys.stdout.flush()
    return 0
