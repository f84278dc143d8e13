"""Resolving a TARGET (module:attr, file.py[:attr], folder) to workflows; clear LoadErrors."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit import compile
from flowkit.errors import LoadError
from flowkit.loader import load_workflows

ROOT = Path(__file__).resolve().parents[2]

FLOW = """
from flowkit import job, workflow

@job
def {job}(event, context=None):
    return {{"ok": True}}

@workflow(name="{name}")
def {attr}():
    return {job}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch project folder as the working directory; its modules are unloaded afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_file_target_loads_every_workflow_defined_in_it(project: Path) -> None:
    write(
        project / "flows.py",
        FLOW.format(job="a", name="zeta", attr="zeta") + FLOW.format(job="b", name="alpha", attr="alpha"),
    )
    assert [w.name for w in load_workflows("flows.py")] == ["alpha", "zeta"]


def test_file_with_attr(project: Path) -> None:
    write(
        project / "flows.py",
        FLOW.format(job="a", name="one", attr="one") + FLOW.format(job="b", name="two", attr="two"),
    )
    [wf] = load_workflows("flows.py:two")
    assert wf.name == "two"


def test_module_attr_target(project: Path) -> None:
    write(project / "pkg" / "__init__.py", "")
    write(project / "pkg" / "flows.py", FLOW.format(job="a", name="mod-flow", attr="flow"))
    [wf] = load_workflows("pkg.flows:flow")
    assert wf.name == "mod-flow"
    assert [w.name for w in load_workflows("pkg.flows")] == ["mod-flow"]


def test_file_inside_a_package_is_imported_under_its_dotted_name(project: Path) -> None:
    write(project / "pkg" / "__init__.py", "")
    write(project / "pkg" / "flows.py", FLOW.format(job="a", name="f", attr="f"))
    [wf] = load_workflows("pkg/flows.py")
    assert wf.module == "pkg.flows"
    assert compile(wf).job("a").handler == "pkg.flows:a"


def test_folder_target_finds_every_workflow_sorted_and_skips_private_files(project: Path) -> None:
    write(project / "flows" / "b.py", FLOW.format(job="x", name="bravo", attr="w"))
    write(project / "flows" / "sub" / "a.py", FLOW.format(job="y", name="alpha", attr="w"))
    write(project / "flows" / "_private.py", "raise RuntimeError('must not be imported')")
    write(project / "flows" / "helpers.py", "X = 1\n")
    assert [w.name for w in load_workflows("flows")] == ["alpha", "bravo"]


def test_imported_workflows_are_not_counted_twice(project: Path) -> None:
    write(project / "pkg" / "__init__.py", "")
    write(project / "pkg" / "base.py", FLOW.format(job="a", name="base", attr="base"))
    write(project / "pkg" / "reexport.py", "from pkg.base import base\n")
    assert [w.name for w in load_workflows("pkg")] == ["base"]
    with pytest.raises(LoadError, match=r"no workflow found in 'pkg/reexport\.py'"):
        load_workflows("pkg/reexport.py")


def test_two_workflows_with_the_same_name_in_a_folder(project: Path) -> None:
    write(project / "flows" / "a.py", FLOW.format(job="x", name="same", attr="w"))
    write(project / "flows" / "b.py", FLOW.format(job="y", name="same", attr="w"))
    with pytest.raises(LoadError, match="two workflows are named 'same'"):
        load_workflows("flows")


def test_import_error_names_the_file_and_shows_the_users_traceback(project: Path) -> None:
    write(project / "broken.py", "import json\n\nimport not_a_module_xyz\n")
    with pytest.raises(LoadError) as info:
        load_workflows("broken.py")
    message = str(info.value)
    first, *rest = message.splitlines()
    assert first == "cannot import 'broken.py': ModuleNotFoundError: No module named 'not_a_module_xyz'"
    assert any("broken.py" in line and "line 3" in line for line in rest)
    assert not any("importlib" in line or "flowkit/loader.py" in line for line in rest)
    assert "broken" not in sys.modules


def test_error_raised_by_the_dsl_at_import_time(project: Path) -> None:
    write(project / "bad.py", "from flowkit import job\n\njob('x', timeout='soon')\n")
    with pytest.raises(
        LoadError, match=r"cannot import 'bad.py': TypeError: job 'x': timeout= must be seconds"
    ):
        load_workflows("bad.py")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.py", "no such file or folder 'missing.py'"),
        ("flows.py:nope", "'flows' has no attribute 'nope'"),
        ("flows.py:helper", "'flows.py:helper' is a function, not a workflow (decorate it with @workflow)"),
        ("flows.py:CONSTANT", "'flows.py:CONSTANT' is a int, not a workflow"),
        ("empty.py", "no workflow found in 'empty.py'"),
        ("no_such_module_xyz:flow", "cannot import 'no_such_module_xyz': ModuleNotFoundError"),
        (":flow", "invalid target ':flow'"),
    ],
)
def test_bad_targets(project: Path, target: str, message: str) -> None:
    write(
        project / "flows.py",
        FLOW.format(job="a", name="f", attr="f") + "\ndef helper():\n    pass\n\nCONSTANT = 3\n",
    )
    write(project / "empty.py", "X = 1\n")
    with pytest.raises(LoadError) as info:
        load_workflows(target)
    assert message in str(info.value)


def test_a_file_shadowed_by_an_already_loaded_module_is_refused(project: Path) -> None:
    write(project / "json.py", FLOW.format(job="a", name="f", attr="f"))
    with pytest.raises(LoadError, match="a different module of that name is already loaded"):
        load_workflows("json.py")


def test_the_shipped_examples_load() -> None:
    names = [w.name for w in load_workflows(str(ROOT / "workflows"))]
    assert names == ["fan-out", "nested", "nightly-etl", "order-pipeline"]
