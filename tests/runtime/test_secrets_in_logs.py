"""Secrets never reach a log line or an error message: the Slack token, the incoming-webhook URL (which
is the secret), the MongoDB password. Real slack-sdk clients against the local fake Slack server."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import pytest
from _fake_slack import TOKEN, WEBHOOK_SECRET, FakeSlack, Recorded

from flowkit.errors import NotifyError
from flowkit.runtime._slack_message import Message
from flowkit.runtime.config import Settings
from flowkit.runtime.notify import SlackNotifier
from flowkit.vocab import NotifyKind


class EchoingSlack(FakeSlack):
    """A hostile endpoint: its error code is the token it was sent."""

    def _post_message(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = json.dumps({"ok": False, "error": f"bad token {token}"}).encode()
        return 200, {"Content-Type": "application/json"}, body


@pytest.fixture
def echoing() -> Iterator[FakeSlack]:
    server = EchoingSlack().start()
    try:
        yield server
    finally:
        server.stop()


def _message() -> Message:
    return Message(kind=NotifyKind.JOB_FAILED, text="load failed", blocks=[], payload={}, channel="#ops")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_webhook_never_logs_its_url(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/services/T000/B000/{WEBHOOK_SECRET}"
    notifier = SlackNotifier(webhook_url=url, timeout=1)
    with caplog.at_level(logging.DEBUG), pytest.raises(NotifyError) as raised:
        notifier.send(_message())
    assert caplog.records, "slack-sdk logs its requests and retries"
    assert any("retry" in record.getMessage().lower() for record in caplog.records)
    assert WEBHOOK_SECRET not in caplog.text
    assert WEBHOOK_SECRET not in str(raised.value)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


def test_a_sent_webhook_message_logs_no_url(fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SlackNotifier(webhook_url=fake.webhook_url)
    with caplog.at_level(logging.DEBUG):
        assert notifier.send(_message()) is True
    assert "Sending a request" in caplog.text
    assert WEBHOOK_SECRET not in caplog.text


def test_a_hostile_endpoint_echoing_the_token_gets_it_masked(
    echoing: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SlackNotifier(token=TOKEN, base_url=echoing.base_url)
    with caplog.at_level(logging.DEBUG), pytest.raises(NotifyError) as raised:
        notifier.send(_message())
    assert raised.value.code == "bad token ***"
    assert TOKEN not in str(raised.value)
    assert TOKEN not in caplog.text


def test_settings_repr_shows_no_secret() -> None:
    settings = Settings(
        mongo_uri="mongodb://flowkit:hunter2@db.example:27017/?authSource=admin",
        slack_token=TOKEN,
        slack_webhook_url=f"https://hooks.slack.com/services/T000/B000/{WEBHOOK_SECRET}",
        webhook_url="https://example.invalid/hook?key=topsecret",
    )
    shown = repr(settings) + str(settings)
    for secret in ("hunter2", TOKEN, WEBHOOK_SECRET, "topsecret"):
        assert secret not in shown
    assert "db.example:27017" in shown  # what is not secret still helps
