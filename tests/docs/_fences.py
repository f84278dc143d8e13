"""The fenced Python blocks of the documentation (README.md and docs/*.md), in page order.

A block opens with a line ```` ```python ```` and closes with ```` ``` ````. Its info string may carry
words after ``python``: ``no-run`` marks a block that is shown but not run (it needs AWS, a real MongoDB,
a Slack token, ...), with the reason after it: ```` ```python no-run: needs AWS credentials ````.

A hidden setup, for a fragment that uses names defined elsewhere (the example workflows' jobs), is an
HTML comment that Markdown does not show, run in page order like a block::

    <!-- python
    from workflows.order_pipeline import charge, ship
    -->
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_OPEN = re.compile(r"^```python(?P<info>[^\n`]*)$")
_HIDDEN = "<!-- python"


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    """Line of the opening fence (1-based)."""
    source: str
    info: str

    @property
    def runs(self) -> bool:
        return not self.info.strip().startswith("no-run")

    @property
    def hidden(self) -> bool:
        """A setup in an HTML comment: run before the blocks below it, never tested on its own."""
        return self.info == "hidden"

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _OPEN.match(lines[index])
        hidden = lines[index].strip() == _HIDDEN
        if match is None and not hidden:
            index += 1
            continue
        start = index
        end = "-->" if hidden else "```"
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != end:
            body.append(lines[index])
            index += 1
        info = "hidden" if match is None else match.group("info")
        found.append(Block(page, start + 1, "\n".join(body) + "\n", info))
        index += 1
    return found


def every_block() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]
