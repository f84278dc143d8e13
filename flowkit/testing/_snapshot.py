"""Snapshot fixture for compiled workflows (placeholder)."""

from __future__ import annotations

__all__: list[str] = []
