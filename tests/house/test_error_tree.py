"""Every error a user can meet is a FlowkitError drawn in flowkit/errors.py's tree.

The walk reads every ``raise`` of the package (``ast``) and accepts: a re-raise (``raise`` / ``raise exc``),
a class of ``flowkit.errors``, a function whose return annotation is one, or a builtin error in a place
``OUTSIDE_THE_TREE`` lists with its reason (the errors.py docstring says the same in words).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import flowkit
from flowkit import errors

PACKAGE = Path(flowkit.__file__).parent
TREE_CLASSES = {name for name in errors.__all__ if isinstance(getattr(errors, name), type)}

# (path under flowkit/ as a glob, exception class): why it is not a FlowkitError
OUTSIDE_THE_TREE = {
    # misuse of the Python API while a workflow is written: Python's own convention, raised on the spot
    ("dsl/*.py", "TypeError"): "a wrong argument type or operator use in the DSL",
    ("dsl/job.py", "ValueError"): "a wrong argument value in the DSL (run_on=...)",
    ("dsl/nodes.py", "AttributeError"): "DSL nodes are immutable",
    ("compiler.py", "TypeError"): "compile() given something that is not a workflow",
    ("testing/_snapshot.py", "TypeError"): "flow_snapshot compared with something that is not a workflow",
    ("runtime/config.py", "TypeError"): "Settings.from_env() given an unknown keyword",
    ("runtime/store.py", "ValueError"): "RunCache given a negative size",
    ("local/bus.py", "ValueError"): "EventBus given unknown handler names",
    ("local/_pool.py", "ValueError"): "a pool of no workers",
    ("local/_pool.py", "RuntimeError"): "a submit to a pool already shut down (caught by its callers)",
    ("local/mocks.py", "ValueError"): "inside a pydantic validator: becomes InvalidMock",
    # the embedded store raises what pymongo raises, so code written against it meets real MongoDB's errors
    ("local/_memory/*.py", "*"): "pymongo's own exceptions (TypeError, WriteError, OperationFailure, ...)",
    ("local/embedded.py", "ValueError"): "pymongo's InvalidName is a ValueError",
    # module __getattr__ and a mapping lookup speak Python's protocol
    ("__init__.py", "AttributeError"): "module __getattr__",
    ("local/__init__.py", "AttributeError"): "module __getattr__",
    ("runtime/__init__.py", "AttributeError"): "module __getattr__",
    ("document.py", "KeyError"): "WorkflowDocument.job(name): a lookup",
    ("diagram/model.py", "KeyError"): "Diagram.node(id): a lookup",
    # cannot happen: kept so that a type checker sees every path end
    ("runtime/notify.py", "AssertionError"): "an unreachable line after a retry loop",
    ("runtime/handlers.py", "RuntimeError"): "an unreachable state of the container's default runtime",
    # argparse's own protocol for a bad option value: argparse turns it into a usage error (exit 2)
    ("cli/_run.py", "ArgumentTypeError"): "argparse type= converter",
    # Python's own interrupt: a second Ctrl-C aborts a local run (the first one cancels it)
    ("cli/_run.py", "KeyboardInterrupt"): "the second Ctrl-C of flowkit run",
    # what a run started in the background raised, raised again in the thread that waits for it
    ("local/environment.py", "_error"): "LocalRunHandle.wait re-raises the run's own error",
}


def _error_factories() -> set[str]:
    """Functions of the package whose return annotation is a class of the tree (``unreachable``, ...)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.FunctionDef)
                and node.returns is not None
                and ast.unparse(node.returns).strip("'\"") in TREE_CLASSES
            ):
                names.add(node.name)
    return names


def _caught_names(tree: ast.AST) -> set[str]:
    """Names bound by ``except ... as name`` (re-raising one of those is fine)."""
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler) and node.name}


def raises() -> Iterator[tuple[str, int, str]]:
    """``(path, line, raised name)`` of every raise that is not a bare re-raise."""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        caught = _caught_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc
            target = exc.func if isinstance(exc, ast.Call) else exc
            if isinstance(target, ast.Name):
                name = target.id
            elif isinstance(target, ast.Attribute):
                name = target.attr
            else:
                name = ast.unparse(target)
            if isinstance(exc, ast.Name) and name in caught:
                continue  # raise exc: the caught exception again
            yield relative, node.lineno, name


def _allowed(path: str, name: str) -> bool:
    return any(fnmatch(path, glob) and fnmatch(name, cls) for glob, cls in OUTSIDE_THE_TREE)


def test_every_raise_is_in_the_tree_or_said_to_be_outside_it() -> None:
    factories = _error_factories()
    strays = [
        f"flowkit/{path}:{line}: raise {name}"
        for path, line, name in raises()
        if name not in TREE_CLASSES and name not in factories and not _allowed(path, name)
    ]
    bare = [f"flowkit/{path}:{line}" for path, line, name in raises() if name == "FlowkitError"]
    assert bare == [], "the root names no cause: raise a subclass of it"
    assert strays == [], "raise a FlowkitError subclass (or say why not in OUTSIDE_THE_TREE):\n" + "\n".join(
        strays
    )


def test_the_walk_sees_the_error_factories_and_the_builtins() -> None:
    found = {(path, name) for path, _, name in raises()}
    assert ("cli/_mongo.py", "unreachable") in found
    assert "unreachable" in _error_factories()
    assert ("dsl/job.py", "TypeError") in found


def test_the_drawn_tree_is_the_class_tree() -> None:
    # given the tree drawn in the module docstring: "├── Name   description", indented by level
    assert errors.__doc__ is not None
    drawn: dict[str, str] = {}
    parents: list[str] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^    ((?:│   |    )*)(?:├── |└── )?([A-Z]\w+)(?:\s|$)", line)
        if match is None or not match.group(2).endswith(
            (
                "Error",
                "Workflow",
                "Run",
                "Report",
                "Mock",
                "Dependency",
                "Argument",
                "Unavailable",
                "Conflict",
                "Replaced",
                "Uncertain",
                "Exceeded",
            )
        ):
            continue
        depth = len(match.group(1)) // 4 + (0 if line.strip().startswith(match.group(2)) else 1)
        name = match.group(2)
        del parents[depth:]
        if parents:
            drawn[name] = parents[-1]
        parents.append(name)
    # then every class of the module is drawn under its real parent, and nothing else is drawn
    actual = {
        name: cls.__bases__[0].__name__
        for name in TREE_CLASSES
        if (cls := getattr(errors, name)) is not errors.FlowkitError
    }
    assert drawn == actual
