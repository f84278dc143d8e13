"""Building a notification: the :class:`Message` for a status event (Slack Block Kit, fallback text, JSON).

Pure functions of a parsed :class:`~flowkit.runtime.events.Status` and the workflow's
:class:`~flowkit.runtime.notify.NotifySettings`; delivering the message is ``flowkit.runtime.notify``'s
job (which re-exports everything public here). No pydantic, no slack-sdk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, Final

from flowkit.runtime.events import Status
from flowkit.vocab import EventStatus, NotifyKind

if TYPE_CHECKING:
    from flowkit.runtime.notify import NotifySettings

__all__ = ["Message", "build_message", "event_kind"]

_RUN_KINDS: Final[dict[EventStatus, NotifyKind]] = {
    EventStatus.STARTED: NotifyKind.RUN_STARTED,
    EventStatus.SUCCESS: NotifyKind.RUN_SUCCEEDED,
    EventStatus.FAILED: NotifyKind.RUN_FAILED,
    EventStatus.CANCELLED: NotifyKind.RUN_CANCELLED,
    EventStatus.TIMED_OUT: NotifyKind.RUN_TIMED_OUT,
}
_JOB_KINDS: Final[dict[EventStatus, NotifyKind]] = {
    EventStatus.STARTED: NotifyKind.JOB_STARTED,
    EventStatus.SUCCESS: NotifyKind.JOB_SUCCEEDED,
    EventStatus.FAILED: NotifyKind.JOB_FAILED,
    EventStatus.TIMED_OUT: NotifyKind.JOB_TIMED_OUT,
    EventStatus.RETRYING: NotifyKind.JOB_RETRYING,
}
_EMOJI: Final = {
    EventStatus.STARTED: ":arrow_forward:",
    EventStatus.SUCCESS: ":white_check_mark:",
    EventStatus.CANCELLED: ":no_entry_sign:",
    EventStatus.RETRYING: ":repeat:",
    EventStatus.TIMED_OUT: ":hourglass:",
}
_EMOJI_FAILED: Final = ":x:"
_EMOJI_HANDLED: Final = ":leftwards_arrow_with_hook:"
_VERB: Final = {
    EventStatus.STARTED: "started",  # words of the message, not states
    EventStatus.SUCCESS: "succeeded",
    EventStatus.FAILED: "failed",
    EventStatus.CANCELLED: "cancelled",
    EventStatus.TIMED_OUT: "timed out",
    EventStatus.RETRYING: "will be retried",
}

# Slack limits: a section's text is at most 3000 characters, a field's at most 2000.
_ERROR_LIMIT: Final = 2000
_OUTPUT_LIMIT: Final = 1000
_FIELD_LIMIT: Final = 1900


# --------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class Message:
    """One notification, in every shape a notifier may need."""

    kind: NotifyKind
    text: str
    """Plain fallback text (shown in push notifications and by clients without Block Kit)."""
    blocks: list[dict[str, Any]]
    """Slack Block Kit blocks."""
    payload: dict[str, Any]
    """The generic webhook's JSON body."""
    channel: str | None = None
    """Slack channel the workflow configured (``notifications.slack_channel``)."""
    webhook: bool = False
    """Whether the workflow wants the generic webhook too (``notifications.webhook``)."""


def event_kind(status: Status) -> NotifyKind:
    """The notification kind of a status event (``run.failed``, ``job.started``, ...)."""
    return (_RUN_KINDS if status.job is None else _JOB_KINDS)[status.status]


def build_message(
    status: Status,
    config: NotifySettings,
    *,
    kind: NotifyKind | None = None,
    failures: Sequence[Mapping[str, Any]] = (),
) -> Message:
    """The message for ``status`` (of ``kind``, by default ``event_kind(status)``).

    Unhandled failures (``PAGING_KINDS``) carry ``config.mention``; a handled one
    (``job.failure_handled``) does not. ``failures`` (a run's, from ``run_failures``) are named in a
    ``run.failed`` message: which job, which attempt, its error type and message.
    """
    from flowkit.runtime._failure_notes import PAGING_KINDS

    kind = kind if kind is not None else event_kind(status)
    mention = config.mention if kind in PAGING_KINDS and config.mention else None
    payload: dict[str, Any] = {
        "kind": kind,
        "text": _fallback_text(status, None, kind, failures),
        "mention": mention,
        "event": status.as_json(),
    }
    if failures:
        payload["failures"] = [dict(failure) for failure in failures]
    return Message(
        kind=kind,
        text=_fallback_text(status, mention, kind, failures),
        blocks=_blocks(status, mention, kind, failures),
        payload=payload,
        channel=config.slack_channel,
        webhook=config.webhook,
    )


def _verb(status: Status, kind: NotifyKind | None = None) -> str:
    """What happened, in words: a workflow-level ``started`` at attempt n > 0 is redrive n."""
    if status.job is None and status.status is EventStatus.STARTED and status.attempt > 0:
        return f"redriven (redrive {status.attempt})"
    if kind is NotifyKind.JOB_FAILURE_HANDLED:
        return "failed on a handled path"
    return _VERB[status.status]


def _fallback_text(
    status: Status, mention: str | None, kind: NotifyKind, failures: Sequence[Mapping[str, Any]]
) -> str:
    verb = _verb(status, kind)
    workflow, run_id = _clip(status.workflow, 200), _clip(status.run_id, 200)
    if status.job is None:
        text = f"[{workflow}] run {run_id} {verb}"
    else:
        text = f"[{workflow}] job {_clip(status.job, 200)} {verb} (attempt {status.attempt}) in run {run_id}"
    if status.error is not None:
        text += f": {_clip(status.error.type, 200)}: {_clip(status.error.message, 300)}"
    elif failures:
        first = failures[0]
        text += (
            f": job {_clip(str(first['job']), 200)} {first['state']} (attempt {first['attempt']}): "
            f"{_clip(first['error']['type'], 200)}: {_clip(first['error']['message'], 300)}"
        )
        if len(failures) > 1:
            text += f" (and {len(failures) - 1} more)"
    return f"{mention} {text}" if mention else text


def _failures_block(failures: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    lines = [
        f"• *{_clip(str(f['job']), 200)}* {f['state']} (attempt {f['attempt']}): "
        f"`{_clip(f['error']['type'], 200)}` {_clip(f['error']['message'], 300)}"
        for f in failures
    ]
    text = "*Failed jobs*\n" + "\n".join(lines)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_ERROR_LIMIT]}}


def _blocks(
    status: Status, mention: str | None, kind: NotifyKind, failures: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    failed = status.status is EventStatus.FAILED
    emoji = _EMOJI_FAILED if failed else _EMOJI[status.status]
    if kind is NotifyKind.JOB_FAILURE_HANDLED:
        emoji = _EMOJI_HANDLED
    verb = _verb(status, kind)
    if status.job is None:
        title = f"{emoji} Run *{_clip(status.run_id, 500)}* of *{_clip(status.workflow, 500)}* {verb}"
    else:
        title = f"{emoji} Job *{_clip(status.job, 500)}* of *{_clip(status.workflow, 500)}* {verb}"
    if mention:
        title = f"{mention} {title}"
    fields = [("Workflow", status.workflow), ("Run", status.run_id)]
    if status.job is not None:
        fields += [("Job", status.job), ("Attempt", str(status.attempt))]
    fields += [("Status", status.status.value)]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{_clip(value, _FIELD_LIMIT)}"}
                for name, value in fields
            ]
            + [{"type": "mrkdwn", "text": f"*Time*\n{_slack_date(status)}"}],
        },
    ]
    if status.error is not None:
        message = _clip(status.error.message, _ERROR_LIMIT)
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Error* `{_clip(status.error.type, 200)}`\n```{message}```",
                },
            }
        )
    if failures:
        blocks.append(_failures_block(failures))
    if status.output is not None and not failed:
        output = _clip(_compact(status.output), _OUTPUT_LIMIT)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Output*\n```{output}```"}})
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{_clip(status.key, 500)}`"}]}
    )
    return blocks


def _slack_date(status: Status) -> str:
    moment = status.time if status.time.tzinfo else status.time.replace(tzinfo=UTC)
    iso = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time_secs}}|{iso}>"


def _esc(text: str) -> str:
    """Escape the three characters Slack mrkdwn reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    """``text`` escaped for mrkdwn and cut to ``limit`` characters without splitting an entity."""
    escaped = _esc(text)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&", len(cut) - 5)
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
