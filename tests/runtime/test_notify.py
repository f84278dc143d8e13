"""Notifications through the real slack-sdk clients and urllib, against a local fake Slack over HTTP."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from _fake_slack import TOKEN, WEBHOOK_SECRET, FakeSlack
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit import vocab
from flowkit.document import Notifications, status_key
from flowkit.document import NotifyKind as SchemaNotifyKind
from flowkit.errors import ConfigError, NotifyError, RunError
from flowkit.runtime.config import Settings
from flowkit.runtime.events import ErrorInfo, EventStatus, Status
from flowkit.runtime.notify import (
    NOTIFY_KINDS,
    Message,
    Notifiers,
    NotifyKind,
    NotifySettings,
    SlackNotifier,
    WebhookNotifier,
    build_message,
    event_kind,
    notifier_from_settings,
    notify_event,
)

LOGGER = "flowkit.runtime.notify"
# the kinds a status event of today's EventStatus maps to
ALL_KINDS: list[NotifyKind] = [
    NotifyKind.RUN_STARTED,
    NotifyKind.RUN_SUCCEEDED,
    NotifyKind.RUN_FAILED,
    NotifyKind.JOB_STARTED,
    NotifyKind.JOB_SUCCEEDED,
    NotifyKind.JOB_FAILED,
]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


def event(status: str = "failed", job: str | None = "load", attempt: int = 2, **fields: Any) -> Status:
    if job is None:
        attempt = 0
    if status == "failed" and "error" not in fields:
        fields["error"] = ErrorInfo(type="OperationalError", message="warehouse.internal:5432 timed out")
    fields.setdefault("output", None)
    fields.setdefault("error", None)
    return Status(
        key=status_key("r-42", job, attempt, status),
        run_id="r-42",
        workflow="nightly-etl",
        job=job,
        attempt=attempt,
        status=EventStatus(status),
        time=datetime(2026, 11, 27, 2, 0, 41, 880000, tzinfo=UTC),
        **fields,
    )


def slack(fake: FakeSlack, **options: Any) -> SlackNotifier:
    return SlackNotifier(token=TOKEN, base_url=fake.base_url, **options)


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every mrkdwn text of the blocks, joined: what a reader sees."""
    parts: list[str] = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [item["text"] for item in block.get("fields", []) + block.get("elements", [])]
    return "\n".join(parts)


# --------------------------------------------------------------------------- kinds and messages


@pytest.mark.parametrize(
    ("job", "status", "kind"),
    [
        (None, "started", "run.started"),
        (None, "success", "run.succeeded"),
        (None, "failed", "run.failed"),
        ("load", "started", "job.started"),
        ("load", "success", "job.succeeded"),
        ("load", "failed", "job.failed"),
    ],
)
def test_event_kind(job: str | None, status: str, kind: str) -> None:
    assert event_kind(event(status, job=job)) == kind


def test_job_failure_message_names_everything_and_mentions() -> None:
    message = build_message(event(), NotifySettings(slack_channel="#etl", mention="<!subteam^S0DATA>"))
    shown = texts(message.blocks)
    for needle in (
        "nightly-etl",
        "r-42",
        "*Job*\nload",
        "*Attempt*\n2",
        "OperationalError",
        "warehouse.internal",
    ):
        assert needle in shown
    assert message.blocks[0]["text"]["text"].startswith("<!subteam^S0DATA> :x: Job *load*")
    assert message.text == (
        "<!subteam^S0DATA> [nightly-etl] job load failed (attempt 2) in run r-42: "
        "OperationalError: warehouse.internal:5432 timed out"
    )
    assert (message.kind, message.channel, message.webhook) == ("job.failed", "#etl", False)


def test_mention_only_on_failures() -> None:
    message = build_message(event("success", output={"rows": 3}), NotifySettings(mention="<!here>"))
    assert "<!here>" not in message.text
    assert "<!here>" not in texts(message.blocks)
    assert '{"rows":3}' in texts(message.blocks)


def test_run_message_has_no_job_fields() -> None:
    message = build_message(event("success", job=None), NotifySettings())
    shown = texts(message.blocks)
    assert "*Job*" not in shown and "*Attempt*" not in shown
    assert message.text == "[nightly-etl] run r-42 succeeded"


def test_user_text_is_escaped_for_slack_but_mentions_are_not() -> None:
    error = ErrorInfo(type="KeyError", message="<!channel> & <b>")
    message = build_message(event(error=error), NotifySettings(mention="<!here>"))
    assert "&lt;!channel&gt; &amp; &lt;b&gt;" in texts(message.blocks)
    assert "<!channel>" not in texts(message.blocks)
    assert (
        message.text
        == "<!here> [nightly-etl] job load failed (attempt 2) in run r-42: KeyError: &lt;!channel&gt; &amp; &lt;b&gt;"
    )
    assert message.blocks[0]["text"]["text"].startswith("<!here> ")


def test_huge_errors_stay_within_slack_limits() -> None:
    message = build_message(event(error=ErrorInfo(type="E", message="x" * 50_000)), NotifySettings())
    for block in message.blocks:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert len(message.text) < 500


def test_generic_payload_carries_the_event() -> None:
    message = build_message(event(), NotifySettings(webhook=True, mention="@oncall"))
    assert message.payload["kind"] == "job.failed"
    assert message.payload["mention"] == "@oncall"
    assert message.payload["event"]["key"] == "r-42/load/2/failed"
    assert message.payload["event"]["error"] == {
        "type": "OperationalError",
        "message": "warehouse.internal:5432 timed out",
    }
    json.dumps(message.payload)


def test_generic_payload_event_is_what_the_published_schema_dumps() -> None:
    from flowkit.document import StatusEvent

    status = event()
    message = build_message(status, NotifySettings(webhook=True))
    model = StatusEvent.model_validate(status.as_document())
    assert message.payload["event"] == model.model_dump(mode="json")
    assert message.payload["event"]["time"] == "2026-11-27T02:00:41.880000Z"


# --------------------------------------------------------------------------- the workflow's settings


def test_settings_defaults_and_kinds_are_the_published_schemas() -> None:
    defaults = Notifications()
    assert dataclasses.asdict(NotifySettings()) == {**defaults.model_dump(), "on": tuple(defaults.on)}
    assert NotifySettings.from_config({}) == NotifySettings() == NotifySettings.from_config(None)
    assert [field.name for field in dataclasses.fields(NotifySettings)] == list(Notifications.model_fields)
    assert NOTIFY_KINDS == tuple(NotifyKind) == tuple(SchemaNotifyKind) == tuple(vocab.NotifyKind)


def test_settings_read_what_the_document_stores() -> None:
    stored = Notifications(
        slack_channel="#etl", on=["job.started", "run.failed"], mention="<!here>", webhook=True
    )
    settings = NotifySettings.from_config(stored.model_dump(mode="json"), run_id="r-1")
    assert settings == NotifySettings(
        slack_channel="#etl", on=("job.started", "run.failed"), mention="<!here>", webhook=True
    )


def test_unknown_kinds_and_fields_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    config = {"on": ["job.failed", "run.paused", "job.retried"], "digest": "hourly"}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        settings = NotifySettings.from_config(config, run_id="r-1")
    assert settings.on == ("job.failed",)
    assert "run 'r-1': ignoring unknown kinds 'run.paused', 'job.retried' in config.notifications.on" in (
        caplog.text
    )
    assert "run 'r-1': ignoring unknown config.notifications fields digest" in caplog.text


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"on": "job.failed"},
            "config.notifications.on: expected a list of notification kinds, got 'job.failed'",
        ),
        ({"on": [1]}, "config.notifications.on: expected a list of notification kinds, got [1]"),
        ({"webhook": "yes"}, "config.notifications.webhook: expected true or false, got 'yes'"),
        ({"slack_channel": 5}, "config.notifications.slack_channel: expected a string or null, got 5"),
        (
            {"mention": ["<!here>"]},
            "config.notifications.mention: expected a string or null, got ['<!here>']",
        ),
    ],
)
def test_wrongly_typed_settings_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(RunError, match="^" + re.escape(f"run 'r-1': {message}")) as caught:
        NotifySettings.from_config(config, run_id="r-1")
    assert caught.value.run_id == "r-1"


# --------------------------------------------------------------------------- Slack Web API (bot token)


def test_bot_token_posts_blocks_and_fallback_text(fake: FakeSlack) -> None:
    config = NotifySettings(slack_channel="#etl-alerts", mention="<!here>")
    assert notify_event(event(), config, slack(fake)) is True
    [request] = fake.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    body = request.json
    expected = build_message(event(), config)
    assert body["channel"] == "#etl-alerts"
    assert body["text"] == expected.text
    assert body["blocks"] == expected.blocks


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_only_configured_kinds_are_sent(fake: FakeSlack, kind: NotifyKind) -> None:
    # given a workflow that wants exactly one kind
    config = NotifySettings(slack_channel="#etl", on=(kind,))
    notifier = slack(fake)
    sent = []
    # when every kind of event happens
    for job in (None, "load"):
        for status in ("started", "success", "failed"):
            if notify_event(event(status, job=job), config, notifier):
                sent.append(event_kind(event(status, job=job)))
    # then only that kind reached Slack
    assert sent == [kind]
    assert len(fake.requests) == 1


def test_default_configuration_sends_failures_only(fake: FakeSlack) -> None:
    notifier = slack(fake, channel="#default")
    results = {kind: notify_event(event(s, job=j), NotifySettings(), notifier) for kind, s, j in [
        ("run.started", "started", None), ("job.succeeded", "success", "load"), ("job.failed", "failed", "load"),
        ("run.failed", "failed", None)]}  # fmt: skip
    assert results == {"run.started": False, "job.succeeded": False, "job.failed": True, "run.failed": True}
    assert [request.json["channel"] for request in fake.requests] == ["#default", "#default"]


def test_rate_limit_is_retried_after_retry_after(fake: FakeSlack) -> None:
    fake.rate_limited = 1
    assert notify_event(event(), NotifySettings(slack_channel="#etl"), slack(fake)) is True
    assert fake.paths() == ["/api/chat.postMessage", "/api/chat.postMessage"]


def test_persistent_rate_limit_is_logged_not_raised(
    fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake.rate_limited, fake.retry_after = 5, "0"
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert (
            notify_event(event(), NotifySettings(slack_channel="#etl"), slack(fake, rate_limit_retries=2))
            is False
        )
    assert len(fake.requests) == 3
    assert "ratelimited" in caplog.text


def test_a_long_retry_after_is_not_waited_for(fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    fake.rate_limited, fake.retry_after = 1, "30"
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert (
            notify_event(event(), NotifySettings(slack_channel="#etl"), slack(fake, max_retry_after=5))
            is False
        )
    assert len(fake.requests) == 1
    assert "ratelimited" in caplog.text


def test_channel_not_found_is_logged_with_the_slack_code(
    fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake.missing_channels.add("#gone")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        sent = notify_event(event(), NotifySettings(slack_channel="#gone"), slack(fake))
    assert sent is False
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert "channel_not_found" in record.getMessage()
    assert "r-42" in record.getMessage()
    assert record.notify_error_code == "channel_not_found"  # type: ignore[attr-defined]


def test_bad_token_is_logged_with_the_slack_code(fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SlackNotifier(token="xoxb-wrong", base_url=fake.base_url)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert notify_event(event(), NotifySettings(slack_channel="#etl"), notifier) is False
    assert "invalid_auth" in caplog.text


def test_send_raises_notify_error_with_the_code(fake: FakeSlack) -> None:
    fake.missing_channels.add("#gone")
    message = build_message(event(), NotifySettings(slack_channel="#gone"))
    with pytest.raises(NotifyError) as caught:
        slack(fake).send(message)
    assert caught.value.code == "channel_not_found"


def test_no_channel_with_a_bot_token_is_a_warning(fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert notify_event(event(), NotifySettings(), slack(fake)) is False
    assert fake.requests == []
    assert "notifications.slack_channel" in caplog.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_slack_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SlackNotifier(token=TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/", timeout=2)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert notify_event(event(), NotifySettings(slack_channel="#etl"), notifier) is False
    assert "could not reach Slack" in caplog.text


# --------------------------------------------------------------------------- Slack incoming webhook


def test_incoming_webhook_posts_text_and_blocks(fake: FakeSlack) -> None:
    notifier = SlackNotifier(webhook_url=fake.webhook_url)
    config = NotifySettings(on=("job.failed",), mention="<!here>")
    assert notify_event(event(), config, notifier) is True
    [request] = fake.requests
    assert request.path == f"/services/T000/B000/{WEBHOOK_SECRET}"
    expected = build_message(event(), config)
    assert request.json["text"] == expected.text
    assert request.json["blocks"] == expected.blocks
    assert "channel" not in request.json  # an incoming webhook posts to its own channel


def test_incoming_webhook_rate_limit_is_retried(fake: FakeSlack) -> None:
    fake.webhook_rate_limited, fake.retry_after = 1, "0"
    assert notify_event(event(), NotifySettings(), SlackNotifier(webhook_url=fake.webhook_url)) is True
    assert len(fake.requests) == 2


def test_incoming_webhook_error_is_logged_with_its_code(
    fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake.webhook_answer = (404, "channel_not_found")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert notify_event(event(), NotifySettings(), SlackNotifier(webhook_url=fake.webhook_url)) is False
    assert "HTTP 404: channel_not_found" in caplog.text
    assert WEBHOOK_SECRET not in caplog.text


# --------------------------------------------------------------------------- generic JSON webhook


def test_generic_webhook_posts_the_json_payload(fake: FakeSlack) -> None:
    config = NotifySettings(webhook=True, on=("job.failed",))
    assert notify_event(event(), config, WebhookNotifier(fake.generic_url)) is True
    [request] = fake.requests
    assert request.headers["content-type"] == "application/json"
    assert request.json == build_message(event(), config).payload
    assert request.json["event"]["status"] == "failed"


def test_generic_webhook_only_for_workflows_that_ask(fake: FakeSlack) -> None:
    assert notify_event(event(), NotifySettings(webhook=False), WebhookNotifier(fake.generic_url)) is False
    assert fake.requests == []


def test_generic_webhook_retries_once_on_429(fake: FakeSlack) -> None:
    fake.generic_answers = [(429, {"Retry-After": "0"})]
    assert notify_event(event(), NotifySettings(webhook=True), WebhookNotifier(fake.generic_url)) is True
    assert fake.paths() == ["/hooks/generic", "/hooks/generic"]


def test_generic_webhook_error_is_logged_not_raised(
    fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake.generic_answers = [(500, {})]
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert notify_event(event(), NotifySettings(webhook=True), WebhookNotifier(fake.generic_url)) is False
    assert "answered HTTP 500" in caplog.text
    assert len(fake.requests) == 1


def test_generic_webhook_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook?token=abc", timeout=2)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert notify_event(event(), NotifySettings(webhook=True), notifier) is False
    assert "could not reach webhook 127.0.0.1" in caplog.text
    assert "token=abc" not in caplog.text


def test_generic_webhook_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="http"):
        WebhookNotifier("ftp://example.com/hook")


# --------------------------------------------------------------------------- several notifiers, settings


def test_one_failing_notifier_does_not_stop_the_other(
    fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake.missing_channels.add("#gone")
    both = Notifiers([slack(fake), WebhookNotifier(fake.generic_url)])
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        sent = notify_event(event(), NotifySettings(slack_channel="#gone", webhook=True), both)
    assert sent is True  # the generic webhook got it
    assert fake.paths() == ["/api/chat.postMessage", "/hooks/generic"]
    assert "channel_not_found" in caplog.text


def test_unexpected_notifier_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def send(self, message: Message) -> bool:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert notify_event(event(), NotifySettings(), Broken()) is False
    assert "boom" in caplog.text


def test_no_settings_no_notifier() -> None:
    assert notifier_from_settings(Settings.from_env({})) is None


def test_token_wins_over_slack_webhook() -> None:
    settings = Settings.from_env(
        {"FLOWKIT_SLACK_TOKEN": TOKEN, "FLOWKIT_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"}
    )
    notifier = notifier_from_settings(settings)
    assert isinstance(notifier, SlackNotifier) and not notifier.uses_webhook


def test_slack_webhook_from_settings() -> None:
    notifier = notifier_from_settings(
        Settings.from_env({"FLOWKIT_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    )
    assert isinstance(notifier, SlackNotifier) and notifier.uses_webhook


def test_settings_with_slack_and_generic_webhook_reach_both(fake: FakeSlack) -> None:
    settings = Settings.from_env({"FLOWKIT_SLACK_TOKEN": TOKEN, "FLOWKIT_WEBHOOK_URL": fake.generic_url})
    notifier = notifier_from_settings(settings, slack_base_url=fake.base_url)
    assert isinstance(notifier, Notifiers)
    assert notify_event(event(), NotifySettings(slack_channel="#etl", webhook=True), notifier) is True
    assert fake.paths() == ["/api/chat.postMessage", "/hooks/generic"]


def test_slack_notifier_needs_a_way_to_reach_slack() -> None:
    with pytest.raises(ConfigError, match="token"):
        SlackNotifier()


# --------------------------------------------------------------------------- any event makes a valid message

texts_st = st.text(max_size=4000) | st.text(alphabet="<>&a", max_size=4000)
statuses = st.builds(
    Status,
    key=st.text(max_size=300),
    run_id=st.text(min_size=1, max_size=600) | st.text(alphabet="<>&", min_size=1, max_size=600),
    workflow=st.text(min_size=1, max_size=300),
    job=st.none() | st.text(min_size=1, max_size=300) | st.text(alphabet="<&", min_size=1, max_size=600),
    attempt=st.integers(min_value=0, max_value=10**6),
    status=st.sampled_from(list(EventStatus)),
    output=st.none() | st.dictionaries(st.text(max_size=20), texts_st, max_size=10),
    error=st.none()
    | st.builds(
        ErrorInfo, type=st.text(max_size=300) | st.text(alphabet="<", max_size=300), message=texts_st
    ),
    time=st.datetimes(timezones=st.just(UTC)),
).filter(  # the parser refuses these
    lambda status: (
        (status.job is None or status.status not in vocab.WORKFLOW_ONLY_STATUSES)
        and (status.job is not None or status.status not in vocab.JOB_ONLY_STATUSES)
    )
)


def check_slack_limits(message: Message, mention: str | None) -> None:
    json.dumps(message.blocks)
    json.dumps(message.payload)
    assert len(message.blocks) <= 50
    for block in message.blocks:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        assert len(block.get("fields", [])) <= 10
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
    # no text coming from the event can open a Slack control sequence (<!channel>, <@user>, links)
    shown = texts(message.blocks) + "\n" + message.text
    controls = re.findall(r"<[^>]*>", shown)
    assert all(c == mention or c.startswith("<!date^") for c in controls), controls


@settings(max_examples=200, deadline=None)
@given(status=statuses, mention=st.sampled_from([None, "<!here>"]))
def test_every_event_makes_a_message_slack_accepts(status: Status, mention: str | None) -> None:
    check_slack_limits(build_message(status, NotifySettings(mention=mention)), mention)


@pytest.mark.parametrize(
    "fields",
    [
        {"error": ErrorInfo(type="<" * 3000, message="<" * 50_000)},
        {"status": "success", "output": {"html": "<b>&amp;</b>" * 5000}},
        {"job": "&" * 5000, "run_id": "<" * 5000},
        {"error": ErrorInfo(type="E", message="a" * 1995 + "<<<<<<<<")},
    ],
)
def test_worst_case_events_stay_within_slack_limits(fields: dict[str, Any]) -> None:
    fields = dict(fields)
    run_id = fields.pop("run_id", "r-42")
    status = dataclasses.replace(event(**fields), run_id=run_id)
    check_slack_limits(build_message(status, NotifySettings(mention="<!here>")), "<!here>")


# --------------------------------------------------------------------------- end to end through the handler


def test_notifications_job_posts_the_nightly_etl_failure_to_slack(fake: FakeSlack) -> None:
    # given the example workflow (Notify(slack_channel="#etl", on=[run.failed, job.failed], mention="<!here>"))
    # started in a store, and a Runtime whose notifier comes from the environment
    from flowkit import compile
    from flowkit.local.embedded import embedded_database
    from flowkit.runtime.events import to_envelope
    from flowkit.runtime.handlers import Runtime
    from flowkit.runtime.start import start_run
    from flowkit.runtime.store import Store, make_status
    from workflows.nightly_etl import nightly_etl

    store = Store(embedded_database())
    start_run(store, compile(nightly_etl), {"date": "2026-11-27"}, run_id="r-42")
    settings = Settings.from_env({"FLOWKIT_SLACK_TOKEN": TOKEN})
    runtime = Runtime(
        store,
        object(),
        notifier_factory=lambda: notifier_from_settings(settings, slack_base_url=fake.base_url),
    )  # type: ignore[arg-type]

    def envelope(job: str | None, attempt: int, status: str, **fields: Any) -> dict[str, Any]:
        doc = make_status("r-42", "nightly-etl", job, attempt, status, **fields)
        return json.loads(
            json.dumps(to_envelope(doc, database="flowkit", collection="statuses", json_format="canonical"))
        )

    # when the trigger delivers a job start, a failure extract's Retry(attempts=3) retries, then the last
    error = {"type": "OperationalError", "message": "source database <down>"}
    started = runtime.notifications_job(envelope("extract", 1, "started"))
    retried = runtime.notifications_job(envelope("extract", 1, "failed", error=error))
    failed = runtime.notifications_job(envelope("extract", 3, "failed", error=error))

    # then only the failure that counts reached #etl, with the workflow's mention, escaped error, run id
    assert (started["sent"], retried["sent"], failed["sent"]) == (False, False, True)
    [request] = fake.requests
    assert request.json["channel"] == "#etl"
    assert request.json["text"] == (
        "<!here> [nightly-etl] job extract failed (attempt 3) in run r-42: OperationalError: source database &lt;down&gt;"
    )


def test_notifications_job_names_a_broken_stored_setting() -> None:
    # given a run whose stored notification settings were edited into the wrong shape
    from flowkit.local.embedded import embedded_database
    from flowkit.runtime.events import to_envelope
    from flowkit.runtime.handlers import Runtime
    from flowkit.runtime.store import Store, make_status

    store = Store(embedded_database())
    store.runs.insert_one({"_id": "r-42", "config": {"notifications": {"on": "job.failed"}}})
    sent: list[Message] = []

    class Recorder:
        def send(self, message: Message) -> bool:
            sent.append(message)
            return True

    runtime = Runtime(store, object(), Recorder())  # type: ignore[arg-type]
    failure = to_envelope(
        make_status("r-42", "nightly-etl", "load", 1, "failed", error={"type": "E", "message": "m"}),
        database="flowkit",
        collection="statuses",
    )
    # when / then the handler fails naming the field (so the event is retried, then dead-lettered)
    with pytest.raises(RunError, match=re.escape("run 'r-42': config.notifications.on: expected a list")):
        runtime.notifications_job(failure)
    assert sent == []
    # and once the setting is repaired, with an extra kind this version does not know, it is sent
    store.runs.update_one(
        {"_id": "r-42"}, {"$set": {"config.notifications.on": ["job.failed", "job.paused"]}}
    )
    assert runtime.notifications_job(failure) == {"run_id": "r-42", "action": "notified", "sent": True}
    assert [message.kind for message in sent] == ["job.failed"]
