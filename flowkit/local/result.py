"""What a local run hands back: the finished run, its status events, where it is stored."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowkit.document import JobRun, Run, StatusEvent
from flowkit.local.bus import DeadLetter
from flowkit.vocab import RunStatus

__all__ = ["LocalRun", "RunLocation"]


@dataclass(frozen=True)
class RunLocation:
    """Where the run document is stored."""

    database: str
    collection: str
    run_id: str
    uri: str | None = None

    def __str__(self) -> str:
        where = f"MongoDB {self.uri}" if self.uri else "embedded in-process store"
        return f"{where}, database '{self.database}', collection '{self.collection}', _id '{self.run_id}'"


@dataclass(frozen=True)
class LocalRun:
    """A finished local run: the stored run, every status event, dead letters, wall time."""

    run: Run
    document: dict[str, Any]
    events: tuple[StatusEvent, ...]
    dead_letters: tuple[DeadLetter, ...]
    elapsed: float
    location: RunLocation
    deliveries: int = 0
    """Handler invocations the bus made (chaos duplicates and retries included)."""

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def status(self) -> str:
        return self.run.status.value

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    @property
    def jobs(self) -> Mapping[str, JobRun]:
        """Job name -> ``JobRun`` (``state``, ``attempt``, ``output``, ``error``, timestamps)."""
        return self.run.jobs

    def to_json(self) -> str:
        """The final run document as JSON (dates as ISO-8601 strings)."""
        return json.dumps(self.run.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True)
