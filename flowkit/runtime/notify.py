"""Notifications: Slack (bot token or incoming webhook, through slack-sdk) and a generic JSON webhook.

``notify_event`` is what ``notifications_job`` calls for every status event: it keeps the kinds the
workflow's ``notifications.on`` asks for, builds one :class:`Message` (Block Kit blocks, a fallback
text and a generic JSON payload) and hands it to a :class:`Notifier`. Delivery problems are logged
with the platform's error code (``channel_not_found``, ``invalid_auth``, HTTP 404, ...) and never
raised: a notification must not break orchestration, and a failed Slack post is not worth an
EventBridge retry.

Event kinds::

    workflow-level (job null)   started -> run.started   success -> run.succeeded   failed -> run.failed
    job-level                   started -> job.started   success -> job.succeeded   failed -> job.failed

Routing: Slack receives every selected kind (with a bot token, in ``notifications.slack_channel``, or
the notifier's default channel; an incoming webhook posts to the channel it was created for). The
generic webhook receives a kind only when the workflow sets ``notifications.webhook``.

slack-sdk is imported only when a Slack client is created (it costs ~100 ms of import time, which a
Lambda cold start without Slack should not pay). Create notifiers once per container and reuse them.
Like the rest of the handlers' path this module does not use pydantic: it takes the parsed
:class:`~flowkit.runtime.events.Status` and reads the run's stored ``config.notifications`` into a
:class:`NotifySettings` (defaults identical to ``flowkit.document.Notifications``, checked by a test).
Building the message lives in ``flowkit.runtime._slack_message`` (re-exported here); this module holds
the settings, the notifiers and the entry points.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from flowkit.errors import ConfigError, MissingDependency, NotifyError, RunError
from flowkit.runtime._slack_message import Message, build_message, event_kind
from flowkit.runtime.config import Settings
from flowkit.runtime.events import Status
from flowkit.vocab import DEFAULT_NOTIFY_ON, NOTIFY_KINDS, NotifyKind

__all__ = [
    "NOTIFY_KINDS",
    "Message",
    "Notifier",
    "Notifiers",
    "NotifyKind",
    "NotifySettings",
    "SlackNotifier",
    "WebhookNotifier",
    "build_message",
    "event_kind",
    "notifier_from_settings",
    "notify_event",
]

logger = logging.getLogger(__name__)

_KINDS: Final[dict[str, NotifyKind]] = {kind.value: kind for kind in NOTIFY_KINDS}
_DEFAULT_ON: Final[tuple[NotifyKind, ...]] = DEFAULT_NOTIFY_ON


# --------------------------------------------------------------------------- the workflow's settings


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """A workflow's ``notifications`` settings (the fields and defaults of ``flowkit.document.Notifications``)."""

    slack_channel: str | None = None
    on: tuple[NotifyKind, ...] = _DEFAULT_ON
    mention: str | None = None
    """Added to failure messages, e.g. ``<!here>``."""
    webhook: bool = False
    """Also post to the generic JSON webhook."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, *, run_id: str | None = None) -> NotifySettings:
        """The settings stored in a run's ``config.notifications`` (missing fields take their defaults).

        A field of the wrong type raises :class:`~flowkit.errors.RunError` naming it (the stored document
        is broken; retrying will not help, so the event goes to the dead-letter queue). Kinds in ``on``
        that this version does not know, and unknown fields, are logged and ignored: a run started by a
        newer flowkit still gets the notifications this version can send.
        """
        config = config or {}
        where = "config.notifications"

        def bad(name: str, expected: str) -> RunError:
            value = repr(config[name])
            shown = value if len(value) <= 80 else value[:77] + "..."
            return RunError(
                f"run {run_id!r}: {where}.{name}: expected {expected}, got {shown}", run_id=run_id
            )

        def optional_text(name: str) -> str | None:
            value = config.get(name)
            if value is None or isinstance(value, str):
                return value
            raise bad(name, "a string or null")

        unknown = sorted(str(name) for name in config if name not in _SETTINGS_FIELDS)
        if unknown:
            logger.warning("run %r: ignoring unknown %s fields %s", run_id, where, ", ".join(unknown))
        on = _DEFAULT_ON
        if "on" in config:
            raw = config["on"]
            if not isinstance(raw, list | tuple) or not all(isinstance(kind, str) for kind in raw):
                raise bad("on", "a list of notification kinds")
            ignored = [kind for kind in raw if kind not in _KINDS]
            if ignored:
                logger.warning(
                    "run %r: ignoring unknown kinds %s in %s.on (known: %s)",
                    run_id,
                    ", ".join(map(repr, ignored)),
                    where,
                    ", ".join(NOTIFY_KINDS),
                )
            on = tuple(_KINDS[kind] for kind in raw if kind in _KINDS)
        webhook = config.get("webhook", False)
        if not isinstance(webhook, bool):
            raise bad("webhook", "true or false")
        return cls(
            slack_channel=optional_text("slack_channel"),
            on=on,
            mention=optional_text("mention"),
            webhook=webhook,
        )


_SETTINGS_FIELDS: Final = ("slack_channel", "on", "mention", "webhook")


# --------------------------------------------------------------------------- notifiers


@runtime_checkable
class Notifier(Protocol):
    """Delivers a message somewhere.

    ``send`` returns True when it delivered, False when the message is not for this notifier (for
    example the workflow did not ask for the generic webhook), and raises :class:`NotifyError` when
    delivery failed.
    """

    def send(self, message: Message) -> bool: ...


class SlackNotifier:
    """Slack through slack-sdk: a bot token (``chat.postMessage``) or an incoming webhook.

    Give a ready ``client`` (a ``slack_sdk.WebClient`` or ``slack_sdk.webhook.WebhookClient``), or a
    ``token`` (wins) or a ``webhook_url`` to create one with retry handlers for rate limits (HTTP 429,
    honouring ``Retry-After`` up to ``max_retry_after`` seconds, ``rate_limit_retries`` times) and
    connection errors (once). ``channel`` is the default for workflows that configure none (bot token
    only). ``base_url`` points the Web API client elsewhere (tests, proxies).
    """

    def __init__(
        self,
        client: Any = None,
        *,
        token: str | None = None,
        webhook_url: str | None = None,
        channel: str | None = None,
        base_url: str | None = None,
        timeout: int = 10,
        rate_limit_retries: int = 2,
        max_retry_after: float = 10.0,
    ) -> None:
        # The token and the webhook URL are the secrets: never in a log line or an error message.
        self._secrets = _secrets_of(token, webhook_url)
        if client is None:
            if token:
                log = _redacting_logger("slack_sdk.web.base_client", self._secrets)
                client = _web_client(token, base_url, timeout, rate_limit_retries, max_retry_after, log)
            elif webhook_url:
                log = _redacting_logger("slack_sdk.webhook.client", self._secrets)
                client = _webhook_client(webhook_url, timeout, rate_limit_retries, max_retry_after, log)
            else:
                raise ConfigError(
                    "SlackNotifier needs a client, a bot token (FLOWKIT_SLACK_TOKEN) or an incoming-webhook "
                    "URL (FLOWKIT_SLACK_WEBHOOK_URL)"
                )
        self.client = client
        self.channel = channel
        self.uses_webhook = not hasattr(client, "chat_postMessage")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        mode = "incoming webhook" if self.uses_webhook else "bot token"
        return f"SlackNotifier({mode}, channel={self.channel!r})"

    def send(self, message: Message) -> bool:
        if self.uses_webhook:
            return self._send_webhook(message)
        channel = message.channel or self.channel
        if not channel:
            logger.warning(
                "no Slack channel for %s: set notifications.slack_channel in the workflow", message.kind
            )
            return False
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            self.client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            code = exc.response.get("error") if exc.response is not None else None
            code = None if code is None else self._scrub(str(code))[:100]
            raise NotifyError(f"Slack chat.postMessage to {channel} failed: {code}", code=code) from exc
        except (SlackClientError, OSError) as exc:
            raise NotifyError(
                f"could not reach Slack: {self._scrub(str(exc))}", code="connection_error"
            ) from exc
        return True

    def _send_webhook(self, message: Message) -> bool:
        try:
            response = self.client.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except OSError as exc:
            raise NotifyError(
                f"could not reach the Slack incoming webhook: {self._scrub(str(exc))}",
                code="connection_error",
            ) from exc
        if response.status_code != 200:
            code = self._scrub(str(response.body or response.status_code).strip())[:100]
            raise NotifyError(
                f"Slack incoming webhook answered HTTP {response.status_code}: {code}", code=code
            )
        return True


def _secrets_of(token: str | None, webhook_url: str | None) -> tuple[str, ...]:
    """What must never be logged: the bot token, the webhook URL and its secret path."""
    found: list[str] = []
    if token:
        found.append(token)
    if webhook_url:
        from urllib.parse import urlsplit

        found.append(webhook_url)
        path = urlsplit(webhook_url).path
        if path.strip("/"):
            found.append(path)
    return tuple(sorted(found, key=len, reverse=True))  # longest first: the URL before its path


class _Redact(logging.Filter):
    """Replaces the secrets in a record's message with ``***`` (slack-sdk logs request URLs)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def _redacting_logger(name: str, secrets: tuple[str, ...]) -> logging.Logger:
    """A logger for one slack-sdk client: its records go where ``name``'s go, with the secrets masked.

    Made directly (not through ``logging.getLogger``) so that each client's filter stays its own.
    """
    redacting = logging.Logger(name)
    redacting.parent = logging.getLogger(name)
    redacting.addFilter(_Redact(secrets))
    return redacting


def _retry_handlers(rate_limit_retries: int, max_retry_after: float) -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
    )

    class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
        """Retries a 429 after its ``Retry-After``, unless that is longer than ``max_retry_after``.

        A Lambda should not sleep half its timeout away: a long wait is given up (and logged as
        ``ratelimited``) instead.
        """

        def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            for name, values in response.headers.items():
                if name.lower() == "retry-after":
                    try:
                        return float(values[0]) <= max_retry_after
                    except (IndexError, TypeError, ValueError):
                        return True
            return True

    return [
        ConnectionErrorRetryHandler(max_retry_count=1),
        BoundedRateLimitRetryHandler(max_retry_count=rate_limit_retries),
    ]


def _web_client(
    token: str,
    base_url: str | None,
    timeout: int,
    rate_limit_retries: int,
    max_retry_after: float,
    log: logging.Logger,
) -> Any:
    try:
        from slack_sdk import WebClient
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingDependency("Slack notifications need slack-sdk: pip install 'flowkit[slack]'") from exc
    options: dict[str, Any] = {"base_url": base_url} if base_url else {}
    return WebClient(
        token=token,
        timeout=timeout,
        logger=log,
        retry_handlers=_retry_handlers(rate_limit_retries, max_retry_after),
        **options,
    )


def _webhook_client(
    url: str, timeout: int, rate_limit_retries: int, max_retry_after: float, log: logging.Logger
) -> Any:
    try:
        from slack_sdk.webhook import WebhookClient
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingDependency("Slack notifications need slack-sdk: pip install 'flowkit[slack]'") from exc
    return WebhookClient(
        url=url,
        timeout=timeout,
        retry_handlers=_retry_handlers(rate_limit_retries, max_retry_after),
        logger=log,
    )


class WebhookNotifier:
    """POSTs ``message.payload`` as JSON to ``url`` (Teams/Discord bridges, PagerDuty, your own API).

    Sends only messages of workflows that set ``notifications.webhook``. A 429 or 503 answer is
    retried once after its ``Retry-After`` (at most ``max_retry_after`` seconds); any other non-2xx
    answer or a connection error raises :class:`NotifyError`. The URL is never logged (it often holds
    a secret), only its host.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        max_retry_after: float = 5.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"webhook URL must be http(s)://host/..., got scheme {parts.scheme!r}")
        self.url = url
        self.host = parts.netloc.rpartition("@")[2]
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "User-Agent": "flowkit", **(headers or {})}
        self.max_retry_after = max_retry_after

    def __repr__(self) -> str:
        return f"WebhookNotifier(host={self.host!r})"

    def send(self, message: Message) -> bool:
        if not message.webhook:
            return False
        import urllib.error
        import urllib.request

        body = json.dumps(message.payload, ensure_ascii=False, default=str).encode()
        for attempt in (1, 2):
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                retry_after = _retry_after(exc)
                if attempt == 1 and exc.code in (429, 503) and retry_after <= self.max_retry_after:
                    time.sleep(retry_after)
                    continue
                raise NotifyError(
                    f"webhook {self.host} answered HTTP {exc.code}", code=str(exc.code)
                ) from exc
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise NotifyError(
                    f"could not reach webhook {self.host}: {reason}", code="connection_error"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(exc: Any) -> float:
    """Seconds from an ``HTTPError``'s ``Retry-After`` header (1 when absent or not a number)."""
    value = exc.headers.get("Retry-After") if exc.headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


class Notifiers:
    """Several notifiers as one: every member gets the message; one failing does not stop the others.

    Raises :class:`NotifyError` listing every failure (``delivered`` counts the successes).
    """

    def __init__(self, members: Sequence[Notifier]) -> None:
        self.members = list(members)

    def __repr__(self) -> str:
        return f"Notifiers({self.members!r})"

    def send(self, message: Message) -> bool:
        delivered = 0
        failures: list[NotifyError] = []
        for member in self.members:
            try:
                delivered += bool(member.send(message))
            except NotifyError as exc:
                failures.append(exc)
        if failures:
            raise NotifyError(
                "; ".join(failure.message for failure in failures),
                code=failures[0].code,
                delivered=delivered,
            )
        return delivered > 0


# --------------------------------------------------------------------------- entry points


def notify_event(
    status: Status, config: NotifySettings, notifier: Notifier, *, run: Mapping[str, Any] | None = None
) -> bool:
    """Notify about ``status`` if its kind is in ``config.on``; True if something was delivered.

    ``run`` (the run document, read for failure events): a job's failure becomes
    ``job.failure_handled`` when one of its failure paths holds for it, and a ``run.failed`` message
    names the jobs that failed the run. Never raises for a delivery problem: it is logged (with the
    Slack error code) and False is returned.
    """
    from flowkit.runtime._failure_notes import failure_kind, run_failures

    kind: NotifyKind | None = event_kind(status)
    failures: list[dict[str, Any]] = []
    if run is not None and kind is NotifyKind.JOB_FAILED:
        kind = failure_kind(status, run)
    if run is not None and kind is NotifyKind.RUN_FAILED:
        failures = run_failures(run)
    if kind is None:
        logger.debug("not notifying the failure %s: it will be retried (job.retrying)", status.key)
        return False
    if kind not in config.on:
        logger.debug("not notifying %s for run %s: not in notifications.on", kind, status.run_id)
        return False
    message = build_message(status, config, kind=kind, failures=failures)
    try:
        return notifier.send(message)
    except NotifyError as exc:
        logger.error(
            "notification %s for run %s (workflow %s) not delivered: %s",
            kind,
            status.run_id,
            status.workflow,
            exc.message,
            extra={"notify_error_code": exc.code, "run_id": status.run_id},
        )
        return exc.delivered > 0
    except Exception:
        logger.exception("notification %s for run %s failed unexpectedly", kind, status.run_id)
        return False


def notifier_from_settings(settings: Settings, *, slack_base_url: str | None = None) -> Notifier | None:
    """The notifier the environment configures, or None when it configures none.

    Slack: ``FLOWKIT_SLACK_TOKEN`` (bot token; wins) or ``FLOWKIT_SLACK_WEBHOOK_URL`` (incoming webhook).
    Generic: ``FLOWKIT_WEBHOOK_URL``, used for workflows that set ``notifications.webhook``.
    """
    members: list[Notifier] = []
    if settings.slack_token:
        if settings.slack_webhook_url:
            logger.debug("both a Slack token and a Slack webhook URL are set; using the token")
        members.append(SlackNotifier(token=settings.slack_token, base_url=slack_base_url))
    elif settings.slack_webhook_url:
        members.append(SlackNotifier(webhook_url=settings.slack_webhook_url))
    if settings.webhook_url:
        members.append(WebhookNotifier(settings.webhook_url))
    if not members:
        return None
    return members[0] if len(members) == 1 else Notifiers(members)
