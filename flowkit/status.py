"""The vocabulary of status events, shared by the document models and the Lambda runtime.

Standard library only: the runtime imports it without loading pydantic.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventStatus", "status_key"]


class EventStatus(StrEnum):
    STARTED = "started"
    SUCCESS = "success"
    FAILED = "failed"


def status_key(run_id: str, job: str | None, attempt: int, status: str) -> str:
    """Idempotency key of a status event; unique in the ``statuses`` collection."""
    return f"{run_id}/{job or '*'}/{attempt}/{status}"
