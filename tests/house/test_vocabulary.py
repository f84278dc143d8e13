"""The shared vocabulary is written once: flowkit/vocab.py holds every state, status and kind.

A state written as a bare string elsewhere is the next feature written twice (or wrong). This walks the
package's code (docstrings and comments are prose, not code) and fails on a string constant that spells a
job state, run status, event status or notification kind outside ``flowkit/vocab.py``; ``ALLOWED``
lists the few places where such a word is not a state at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from flowkit import document, vocab
from flowkit.runtime import engine, notify, store

PACKAGE = Path(vocab.__file__).parent
WORDS = {
    str(member)
    for enum in (vocab.JobState, vocab.RunStatus, vocab.EventStatus, vocab.NotifyKind)
    for member in enum
}

# (path under flowkit/, word): a string that spells a state but means something else there
ALLOWED = {
    ("runtime/handlers.py", "dispatched"),  # keys of orchestrator_job's answer: {"dispatched": [...]}
    ("runtime/handlers.py", "skipped"),
    ("runtime/_slack_message.py", "started"),  # the verbs of a message's text
    ("runtime/_slack_message.py", "succeeded"),
    ("runtime/_slack_message.py", "failed"),
    ("runtime/_slack_message.py", "cancelled"),
    ("cli/_control.py", "cancelled"),  # the command's answer: "cancelled RUN"
    ("local/mocks.py", "success"),  # the mock field {"success": <output>}
    ("local/__init__.py", "success"),  # the name flowkit.local.success
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        # an attribute docstring: a string statement right after an assignment
        if hasattr(node, "body") and isinstance(node.body, list):
            for before, after in zip(node.body, node.body[1:], strict=False):
                if (
                    isinstance(before, ast.Assign | ast.AnnAssign)
                    and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                ):
                    ids.add(id(after.value))
    return ids


def bare_words() -> Iterator[tuple[str, int, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "vocab.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in WORDS
                and id(node) not in prose
                and (relative, node.value) not in ALLOWED
            ):
                yield relative, node.lineno, node.value


def test_no_state_status_or_kind_is_spelled_outside_the_vocabulary() -> None:
    found = [f"flowkit/{path}:{line}: {word!r}" for path, line, word in bare_words()]
    assert found == [], "use flowkit.vocab instead of:\n" + "\n".join(found)


def test_the_walk_finds_a_bare_state(tmp_path: Path) -> None:
    # given a module that spells a state in code (and another only in its docstring)
    tree = ast.parse('"""A job ends "failed"."""\nSTATE = "failed"\n')
    prose = _docstrings(tree)
    # then only the code's constant counts
    constants = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in prose]
    assert [c.value for c in constants] == ["failed"]


def test_the_document_models_and_the_runtime_share_the_vocabulary() -> None:
    assert document.JobState is vocab.JobState
    assert document.RunStatus is vocab.RunStatus
    assert document.EventStatus is vocab.EventStatus
    assert document.NotifyKind is vocab.NotifyKind
    assert document.TERMINAL_STATES == engine.TERMINAL == vocab.JOB_TERMINAL_STATES
    assert store.OPEN_STATES == vocab.OPEN_STATES
    assert notify.NOTIFY_KINDS == vocab.NOTIFY_KINDS
    assert tuple(document.Notifications().on) == notify.NotifySettings().on == vocab.DEFAULT_NOTIFY_ON


def test_the_published_schema_lists_every_state_and_status() -> None:
    schema = document.Run.model_json_schema()
    assert schema["$defs"]["JobState"]["enum"] == [str(s) for s in vocab.JobState]
    assert schema["$defs"]["RunStatus"]["enum"] == [str(s) for s in vocab.RunStatus]
