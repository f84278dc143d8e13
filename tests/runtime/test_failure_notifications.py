"""Failure notifications end to end: real handlers and store, the real slack-sdk against a local fake Slack.

A failure on a handled path is its own kind (``job.failure_handled``) and does not page; an unhandled one
pages, and the run-failed message names the job, its attempt, its error type and message. A cancel
notifies ``run.cancelled`` once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _fake_slack import TOKEN, FakeSlack
from _harness import RecordingDispatcher, World
from dsl_builders import flow, mk

from flowkit import Notify, compile, when
from flowkit.local.clock import VirtualClock
from flowkit.runtime import cancel_run
from flowkit.runtime.events import to_envelope
from flowkit.runtime.handlers import Runtime
from flowkit.runtime.notify import SlackNotifier
from flowkit.runtime.start import start_run

ON = ["run.failed", "run.cancelled", "job.failed", "job.failure_handled"]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


def _payment(on: list[str] | None = None) -> Any:
    charge = mk("charge")
    notify = Notify(slack_channel="#payments", on=on or ON, mention="<!here>")
    root = charge >> when(charge.error_type == "CardDeclined", then=mk("apologise")) >> mk("close")
    return compile(flow(root, name="payment", notify=notify))


def _notify_all(world: World, fake: FakeSlack, run_id: str) -> list[dict[str, Any]]:
    """Deliver every status of the run to notifications_job (with a Slack notifier); the posted bodies."""
    runtime = Runtime(world.store, RecordingDispatcher(), SlackNotifier(token=TOKEN, base_url=fake.base_url))
    for status in list(world.statuses):
        if status["run_id"] == run_id:
            envelope = to_envelope(status, database=world.store.database.name, collection="statuses")
            runtime.notifications_job(envelope, None)
    return [request.json for request in fake.requests]


def _run(database: Any, error_type: str, document: Any) -> World:
    world = World(database, outcomes={"charge": "fail"}, error_types={"charge": error_type})
    start_run(world.store, document, {}, run_id="r-1")
    world.drain()
    return world


def test_a_handled_failure_is_its_own_kind_and_does_not_page(database: Any, fake: FakeSlack) -> None:
    world = _run(database, "CardDeclined", _payment())

    [posted] = _notify_all(world, fake, "r-1")

    assert world.store.get_run("r-1")["status"] == "succeeded"
    assert posted["channel"] == "#payments"
    assert "<!here>" not in posted["text"]
    assert posted["text"] == (
        "[payment] job charge failed on a handled path (attempt 1) in run r-1: CardDeclined: charge broke"
    )


def test_a_handled_failure_is_not_sent_by_default(database: Any, fake: FakeSlack) -> None:
    world = _run(database, "CardDeclined", _payment(on=["run.failed", "job.failed"]))

    assert _notify_all(world, fake, "r-1") == []


def test_an_unhandled_failure_pages_and_the_run_failed_message_names_it(
    database: Any, fake: FakeSlack
) -> None:
    world = _run(database, "GatewayTimeout", _payment())

    job_failed, run_failed = _notify_all(world, fake, "r-1")

    assert world.store.get_run("r-1")["status"] == "failed"
    assert job_failed["text"].startswith("<!here> [payment] job charge failed (attempt 1) in run r-1")
    assert run_failed["text"] == (
        "<!here> [payment] run r-1 failed: job charge failed (attempt 1): GatewayTimeout: charge broke"
    )
    shown = "\n".join(block.get("text", {}).get("text", "") for block in run_failed["blocks"])
    assert "*Failed jobs*\n• *charge* failed (attempt 1): `GatewayTimeout` charge broke" in shown


def test_the_run_failed_message_names_an_error_kept_in_the_results_collection(
    database: Any, fake: FakeSlack
) -> None:
    """An error far over the inline size is not in the run document: the notification reads it back."""
    long = "the gateway did not answer: " + "g" * 2000
    world = World(
        database,
        outcomes={"charge": "fail"},
        error_types={"charge": "GatewayTimeout"},
        messages={"charge": long},
    )
    start_run(world.store, _payment(), {}, run_id="r-1")
    world.drain()
    stored = world.store.get_run("r-1")
    assert stored["jobs"]["charge"]["error"] is None and stored["jobs"]["charge"]["error_ref"]

    job_failed, run_failed = _notify_all(world, fake, "r-1")

    assert job_failed["text"].startswith("<!here> [payment] job charge failed (attempt 1) in run r-1")
    assert run_failed["text"].startswith(
        "<!here> [payment] run r-1 failed: job charge failed (attempt 1): GatewayTimeout: the gateway did not answer: ggg"
    )
    shown = "\n".join(block.get("text", {}).get("text", "") for block in run_failed["blocks"])
    assert "• *charge* failed (attempt 1): `GatewayTimeout` the gateway did not answer: ggg" in shown


def test_a_cancel_notifies_once_with_its_reason(database: Any, fake: FakeSlack) -> None:
    world = World(database)
    start_run(world.store, _payment(), {}, run_id="r-1")
    cancel_run(world.store, "r-1", reason="customer asked")
    cancel_run(world.store, "r-1")

    [posted] = _notify_all(world, fake, "r-1")

    assert posted["text"] == "[payment] run r-1 cancelled"
    shown = "\n".join(block.get("text", {}).get("text", "") for block in posted["blocks"])
    assert '{"reason":"customer asked"}' in shown


def test_a_failed_attempt_that_will_be_retried_does_not_page(database: Any, fake: FakeSlack) -> None:
    """Only the last attempt's failure counts; the retry is job.retrying, a kind of its own."""
    from flowkit import Retry

    notify = Notify(slack_channel="#etl", on=["job.failed", "job.retrying"], mention="<!here>")
    root = mk("load", retry=Retry(attempts=2, interval=5))
    clock = VirtualClock()
    world = World(database, outcomes={"load": "fail"}, clock=clock, timers=True)
    start_run(world.store, compile(flow(root, name="etl", notify=notify)), {}, run_id="r-1")
    world.drain()  # attempt 1 fails: waiting for its retry
    clock.advance(5)
    world.fire_timers()
    world.drain()  # attempt 2 fails: the failure counts
    assert world.store.get_run("r-1")["status"] == "failed"

    texts = [posted["text"] for posted in _notify_all(world, fake, "r-1")]

    assert [t for t in texts if "failed" in t] == [
        "<!here> [etl] job load failed (attempt 2) in run r-1: ValueError: load broke"
    ]
    assert texts == [
        "[etl] job load will be retried (attempt 1) in run r-1: ValueError: load broke",
        "<!here> [etl] job load failed (attempt 2) in run r-1: ValueError: load broke",
    ]
