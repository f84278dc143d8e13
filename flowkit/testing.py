"""flowkit's pytest plugin (entry point ``pytest11``). Imports nothing heavy at load time."""

from __future__ import annotations
