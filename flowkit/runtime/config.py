"""Runtime configuration: every environment variable flowkit reads, in one place.

An explicit argument always wins over the environment: ``Settings.from_env(mongo_uri=...)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from flowkit.errors import ConfigError
from flowkit.vocab import ENV, LAMBDA_ASYNC_PAYLOAD_LIMIT

__all__ = ["ENV", "Settings", "read_secret", "resolve_secrets"]


_SECRET_FIELDS: Final = frozenset({"mongo_uri", "slack_token", "slack_webhook_url", "webhook_url"})


def _mask(name: str, value: str) -> str:
    """A secret setting as it may be shown: a URI without its password, a URL with only its host."""
    from urllib.parse import urlsplit

    if name == "slack_token":
        return "***"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "***"
    if name == "mongo_uri":
        if parts.password is None:
            return value
        return value.replace(f":{parts.password}@", ":***@", 1)
    return f"{parts.scheme}://{parts.hostname}/***" if parts.hostname else "***"


@dataclass(frozen=True, repr=False)
class Settings:
    mongo_uri: str | None = None
    database: str = "flowkit"
    runs_collection: str = "state-machines"
    statuses_collection: str = "statuses"
    # outputs and errors too big to keep inline in a run document (``flowkit.runtime.results``)
    results_collection: str = "results"
    slack_token: str | None = None
    slack_webhook_url: str | None = None
    webhook_url: str | None = None
    payload_limit_bytes: int = LAMBDA_ASYNC_PAYLOAD_LIMIT
    lambda_endpoint_url: str | None = None
    # the published definitions (``flowkit publish``), read by the starter
    workflows_collection: str = "workflows"
    # Secrets Manager secret (name or ARN) or SSM parameter (``ssm:/name`` or its ARN) holding the
    # connection string / Slack token, read once per container when the plain variable is unset.
    mongo_uri_secret: str | None = None
    slack_token_secret: str | None = None
    # modules holding the workflows whose @job bodies the job router serves (comma-separated)
    workflow_modules: str | None = None
    # An SQS queue the timer handler reads: the precise wake-up for due times (see docs/deploying.md).
    timer_queue_url: str | None = None
    sqs_endpoint_url: str | None = None

    def __repr__(self) -> str:
        """Every setting, with the secrets masked: the MongoDB password, the Slack token, webhook URLs."""
        shown = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and field.name in _SECRET_FIELDS:
                value = _mask(field.name, str(value))
            shown.append(f"{field.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

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
                values[field.name] = _int(ENV[field.name], raw) if field.type in (int, "int") else raw
        if overrides:
            raise TypeError(f"unknown settings: {', '.join(sorted(overrides))}")
        return cls(**values)


def resolve_secrets(settings: Settings, *, session: Any = None) -> Settings:
    """``settings`` with ``mongo_uri`` / ``slack_token`` read from their secrets when only those are set.

    A value from Secrets Manager is the secret string, or its ``uri`` / ``token`` field when the string
    is a JSON object. boto3 is imported only when a secret has to be read.
    """
    changes: dict[str, Any] = {}
    for field, secret, key in (
        ("mongo_uri", settings.mongo_uri_secret, "uri"),
        ("slack_token", settings.slack_token_secret, "token"),
    ):
        if getattr(settings, field) or not secret:
            continue
        changes[field] = read_secret(secret, key=key, session=session)
    if not changes:
        return settings
    from dataclasses import replace

    return replace(settings, **changes)


def read_secret(reference: str, *, key: str | None = None, session: Any = None) -> str:
    """The value of a Secrets Manager secret or an SSM parameter (``ssm:/name`` or ``arn:aws:ssm:...``)."""
    import json

    if session is None:
        import boto3

        session = boto3
    if reference.startswith(("ssm:", "arn:aws:ssm:")):
        name = reference[4:] if reference.startswith("ssm:") else "/" + reference.split(":parameter/", 1)[-1]
        answer = session.client("ssm").get_parameter(Name=name, WithDecryption=True)
        return str(answer["Parameter"]["Value"])
    value = str(session.client("secretsmanager").get_secret_value(SecretId=reference)["SecretString"])
    if key and value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return value
        if isinstance(data, dict) and isinstance(data.get(key), str):
            return str(data[key])
    return value


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number of bytes") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: expected a positive number of bytes")
    return value
