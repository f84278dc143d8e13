"""Every Python example of the README and docs/*.md runs, so the docs cannot drift from the code.

Blocks of one page share a namespace, in page order (a page defines its jobs once and uses them below),
and run in a fresh temporary working folder. A block marked ```` ```python no-run: <why> ```` is not run;
the marker must say why.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from _fences import PAGES, ROOT, Block, blocks, every_block

BLOCKS = every_block()


def _run(block: Block, namespace: dict[str, Any]) -> None:
    code = compile(block.source, f"{block.id}", "exec")
    exec(code, namespace)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.runs and not b.hidden], ids=lambda b: b.id)
def test_the_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the blocks before it on the same page, run first in the same namespace (as a reader would)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))  # the example workflows: `from workflows.nightly_etl import ...`
    for name in list(os.environ):
        if name.startswith("FLOWKIT_"):
            monkeypatch.delenv(name)
    module = f"doc_example_{abs(hash(block.id))}"
    namespace: dict[str, Any] = {"__name__": module}
    monkeypatch.setitem(sys.modules, module, type(sys)(module))
    sys.modules[module].__dict__.update(namespace)
    namespace = sys.modules[module].__dict__
    for earlier in blocks(block.page):
        if earlier.line >= block.line:
            break
        if earlier.runs:
            _run(earlier, namespace)
    # when / then: it runs without raising
    _run(block, namespace)


def test_every_page_with_python_has_its_blocks_collected() -> None:
    assert any(block.page.name == "README.md" for block in BLOCKS)
    assert len(BLOCKS) >= 20
    assert {block.page for block in BLOCKS} <= set(PAGES)


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.runs], ids=lambda b: b.id)
def test_a_block_that_does_not_run_says_why(block: Block) -> None:
    reason = block.info.strip().removeprefix("no-run").lstrip(":").strip()
    assert reason, f"{block.id}: write ```python no-run: <why it does not run>"
