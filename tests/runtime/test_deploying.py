"""The EventBridge rules documented in docs/deploying.md route every fixture to exactly the right handlers.

The patterns are read from the page itself. Every fixture of tests/events/ is matched against them with
moto's EventBridge pattern matcher; a few also go the whole way: the rules are installed with put_rule /
put_targets on a moto bus, the event is sent with put_events, and each handler stands behind an SQS
queue, so what a queue receives is what the handler would be invoked with. (moto's delivery to targets
is slow, about a second per event, hence only a few.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _events import event_names, load_event
from bson import json_util

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploying.md"
RULE = re.compile(
    r"<!-- rule: (?P<name>\S+) -> (?P<targets>[^>]+?) -->\s*```json\n(?P<pattern>.*?)```", re.DOTALL
)
HANDLERS = ("statemachine_job", "orchestrator_job", "notifications_job")
ALL = set(HANDLERS)

# Which handlers each fixture must reach, from the table in docs/architecture.md.
EXPECTED: dict[str, set[str]] = {
    "run_started_default": {"orchestrator_job", "notifications_job"},
    "run_succeeded_canonical": {"notifications_job"},
    "run_failed_relaxed": {"notifications_job"},
    "job_started_relaxed": {"notifications_job"},
    "job_success_relaxed": ALL,
    "job_success_canonical": ALL,
    "job_success_default": ALL,
    "job_failed_relaxed": ALL,
    "job_failed_canonical": ALL,
    # Malformed: events the trigger could not have sent for our collection never match...
    "malformed/wrong_source": set(),
    "malformed/wrong_detail_type": set(),
    "malformed/not_insert": set(),
    "malformed/wrong_collection": set(),
    # ...and broken status documents reach handlers, which reject them (EventError -> retries -> DLQ).
    "malformed/missing_full_document": {"notifications_job"},
    "malformed/bad_status": {"notifications_job"},
    "malformed/bad_attempt_type": ALL,
    "malformed/key_mismatch": ALL,
    "malformed/bad_date": ALL,
    "malformed/missing_run_id": ALL,
}
# EventBridge only accepts a JSON object as Detail, so this one cannot be put on a bus.
NOT_PUTTABLE = {"malformed/detail_not_object"}


def documented_rules() -> list[tuple[str, list[str], dict[str, Any]]]:
    rules = []
    for match in RULE.finditer(DOC.read_text(encoding="utf-8")):
        targets = [name.strip() for name in match["targets"].split(",")]
        rules.append((match["name"], targets, json.loads(match["pattern"])))
    return rules


def test_the_page_documents_one_rule_per_route() -> None:
    rules = documented_rules()
    assert [name for name, _, _ in rules] == [
        "flowkit-job-outcomes",
        "flowkit-run-started",
        "flowkit-all-statuses",
    ]
    assert {target for _, targets, _ in rules for target in targets} == ALL


def test_every_fixture_has_an_expected_route() -> None:
    assert set(EXPECTED) | NOT_PUTTABLE == set(event_names(malformed=None))


@pytest.fixture(scope="module")
def bus() -> Iterator[Any]:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        region = "eu-west-1"
        events = boto3.client("events", region_name=region)
        sqs = boto3.client("sqs", region_name=region)
        # moto cannot create partner buses (their names contain slashes); a custom bus routes the same.
        name = "flowkit-statuses"
        events.create_event_bus(Name=name)
        queues = {}
        for handler in HANDLERS:
            url = sqs.create_queue(QueueName=handler)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            queues[handler] = (url, arn)
        for rule, targets, pattern in documented_rules():
            events.put_rule(Name=rule, EventBusName=name, EventPattern=json.dumps(pattern))
            events.put_targets(
                Rule=rule,
                EventBusName=name,
                Targets=[{"Id": target, "Arn": queues[target][1]} for target in targets],
            )

        def deliver(envelope: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
            answer = events.put_events(
                Entries=[
                    {
                        "EventBusName": name,
                        "Source": envelope["source"],
                        "DetailType": envelope["detail-type"],
                        "Detail": json.dumps(envelope["detail"]),
                        "Resources": envelope["resources"],
                    }
                ]
            )
            assert answer["FailedEntryCount"] == 0
            received: dict[str, list[dict[str, Any]]] = {}
            for handler, (url, _) in queues.items():
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                    "Messages", []
                )
                for message in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                if messages:
                    received[handler] = [json.loads(message["Body"]) for message in messages]
            return received

        yield deliver


def routed(envelope: dict[str, Any]) -> set[str]:
    """The handlers whose documented rules match ``envelope``, by moto's EventBridge pattern matcher."""
    from moto.events.models import EventPattern

    return {
        target
        for _, targets, pattern in documented_rules()
        if EventPattern.load(json.dumps(pattern)).matches_event(envelope)
        for target in targets
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_documented_rules_route_each_fixture_to_its_handlers(name: str) -> None:
    pytest.importorskip("moto")
    assert routed(load_event(name)) == EXPECTED[name]


@pytest.mark.parametrize("name", ["run_started_default", "job_failed_canonical", "malformed/not_insert"])
def test_rules_installed_on_a_bus_deliver_to_the_handlers(bus: Any, name: str) -> None:
    # given a real-shaped event
    envelope = load_event(name)
    # when the trigger puts it on the bus with the documented rules and targets
    received = bus(envelope)
    # then exactly the expected handlers get it, once each, with the detail intact
    assert set(received) == EXPECTED[name]
    for deliveries in received.values():
        assert len(deliveries) == 1
        assert deliveries[0]["detail"] == envelope["detail"]


@pytest.mark.parametrize("name", event_names())
def test_local_bus_routes_like_the_documented_rules(name: str) -> None:
    routes = pytest.importorskip("flowkit.local.bus").routes
    document = json_util.loads(json.dumps(load_event(name)["detail"]["fullDocument"]))
    assert set(routes(document)) == EXPECTED[name]


ROUTES_BY_KIND: dict[tuple[bool, str], set[str]] = {
    (False, "started"): {"orchestrator_job", "notifications_job"},
    (False, "success"): {"notifications_job"},
    (False, "failed"): {"notifications_job"},
    (True, "started"): {"notifications_job"},
    (True, "success"): ALL,
    (True, "failed"): ALL,
}


@pytest.mark.parametrize("json_format", ["default", "relaxed", "canonical"])
@pytest.mark.parametrize(("job_level", "status"), sorted(ROUTES_BY_KIND))
def test_routing_does_not_depend_on_the_trigger_json_format(
    job_level: bool, status: str, json_format: Any
) -> None:
    pytest.importorskip("moto")
    from datetime import UTC, datetime

    from flowkit.runtime.events import to_envelope
    from flowkit.runtime.store import make_status

    job, attempt = ("extract", 3) if job_level else (None, 0)
    doc = make_status("r-1", "wf", job, attempt, status, time=datetime(2026, 11, 27, tzinfo=UTC))
    envelope = to_envelope(doc, database="flowkit", collection="statuses", json_format=json_format)
    assert routed(json.loads(json.dumps(envelope))) == ROUTES_BY_KIND[(job_level, status)]
