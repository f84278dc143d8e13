"""The starter recipes of docs/deploying.md produce requests the starter accepts: a rule's input transformer
(run through moto's EventBridge) and the scheduler input of `flowkit template --schedule`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from flowkit import compile
from flowkit.deploy.template import build_template
from flowkit.runtime.definitions import Definitions
from flowkit.runtime.starter import start_published
from flowkit.runtime.store import Store
from workflows.nightly_etl import nightly_etl
from workflows.order_pipeline import order_pipeline

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploying.md"


def documented_transformer() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"\*\*On an event\*\*.*?```json\n(.*?)```", text, re.DOTALL)
    assert block is not None, "the rule recipe is gone from docs/deploying.md"
    transformer: dict[str, Any] = json.loads(block.group(1))
    return transformer


@pytest.fixture
def store(database: Any) -> Store:
    store = Store(database)
    store.ensure_indexes()
    definitions = Definitions(database)
    for workflow in (order_pipeline, nightly_etl):
        definitions.publish(compile(workflow).model_dump(mode="json"))
    return store


def test_the_documented_input_transformer_starts_one_run_per_event(store: Store) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        events = boto3.client("events", region_name="eu-west-1")
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="starter")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="orders", EventPattern=json.dumps({"source": ["shop"]}))
        # the queue stands for the starter function: what it receives is what the starter is invoked with
        events.put_targets(
            Rule="orders",
            Targets=[{"Id": "starter", "Arn": arn, "InputTransformer": documented_transformer()}],
        )
        detail = {"order_id": "o-1", "amount": 12.5}
        events.put_events(
            Entries=[{"Source": "shop", "DetailType": "OrderPlaced", "Detail": json.dumps(detail)}]
        )
        [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    request = json.loads(message["Body"])

    first = start_published(store, request)
    again = start_published(store, request)  # EventBridge delivered the same event twice

    assert request["input"] == detail and request["run_id"].startswith("order-")
    assert first == again and first["workflow"] == "order-pipeline"
    assert store.runs.count_documents({}) == 1


def test_the_scheduler_input_starts_one_run_per_occurrence(store: Store) -> None:
    template = build_template(
        [compile(nightly_etl).model_dump(mode="json")], schedules={"nightly-etl": "cron(0 2 * * ? *)"}
    )
    [schedule] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    text = schedule["Properties"]["Target"]["Input"]
    # EventBridge Scheduler replaces its context attributes in the input before invoking the target
    request = json.loads(text.replace("<aws.scheduler.scheduled-time>", "2026-11-27T02:00:00Z"))

    started = start_published(store, request)
    assert started["run_id"] == "nightly-etl-2026-11-27T02:00:00Z"
    assert start_published(store, request) == started  # a retried delivery of the same occurrence
    assert store.runs.count_documents({}) == 1
