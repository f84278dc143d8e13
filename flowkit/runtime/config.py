"""Runtime configuration: every environment variable flowkit reads, in one place.

An explicit argument always wins over the environment: ``Settings.from_env(mongo_uri=...)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

__all__ = ["ENV", "Settings"]

# attribute name -> environment variable
ENV: Final[Mapping[str, str]] = {
    "mongo_uri": "FLOWKIT_MONGO_URI",
    "database": "FLOWKIT_DATABASE",
    "runs_collection": "FLOWKIT_RUNS_COLLECTION",
    "statuses_collection": "FLOWKIT_STATUSES_COLLECTION",
    "slack_token": "FLOWKIT_SLACK_TOKEN",
    "slack_webhook_url": "FLOWKIT_SLACK_WEBHOOK_URL",
    "webhook_url": "FLOWKIT_WEBHOOK_URL",
    "payload_limit_bytes": "FLOWKIT_PAYLOAD_LIMIT_BYTES",
    "lambda_endpoint_url": "FLOWKIT_LAMBDA_ENDPOINT_URL",
}


@dataclass(frozen=True)
class Settings:
    mongo_uri: str | None = None
    database: str = "flowkit"
    runs_collection: str = "state-machines"
    statuses_collection: str = "statuses"
    slack_token: str | None = None
    slack_webhook_url: str | None = None
    webhook_url: str | None = None
    # AWS Lambda's current limit for an asynchronous invocation payload.
    payload_limit_bytes: int = 1_048_576
    lambda_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); keyword arguments that are not None win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            explicit = overrides.pop(field.name, None)
            raw = env.get(ENV[field.name])
            if explicit is not None:
                values[field.name] = explicit
            elif raw not in (None, ""):
                values[field.name] = int(raw) if field.name == "payload_limit_bytes" else raw
        if overrides:
            raise TypeError(f"unknown settings: {', '.join(sorted(overrides))}")
        return cls(**values)
