"""Payload building, the size limit, and the Lambda async invoke (against moto)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from _harness import document, job

from flowkit.errors import DispatchError
from flowkit.runtime.dispatch import DEFAULT_PAYLOAD_LIMIT, LambdaDispatcher, build_payload, encode_payload
from flowkit.runtime.start import new_run_document


def _run() -> tuple[dict[str, Any], dict[str, Any]]:
    doc = document(
        "wf",
        [
            job("a"),
            job("b"),
            job(
                "c",
                "a",
                "b",
                input={"table": "t1"},
                function="arn:aws:lambda:us-east-1:123456789012:function:fn-c",
                qualifier="prod",
            ),
        ],
    )
    run = new_run_document(doc, {"day": "d1"}, "r-1")
    run["jobs"]["a"].update(state="succeeded", output={"rows": 2})
    run["jobs"]["b"].update(state="skipped")
    return run, run["config"]["jobs"][2]


def test_the_payload_carries_run_job_inputs_and_needed_outputs() -> None:
    run, spec = _run()
    assert build_payload(run, spec, 1) == {
        "run_id": "r-1",
        "workflow": "wf",
        "job": "c",
        "attempt": 1,
        "input": {"day": "d1"},
        "job_input": {"table": "t1"},
        "needs": {"a": {"rows": 2}, "b": None},
    }


def test_a_payload_over_the_limit_names_the_job_the_sizes_and_the_biggest_output() -> None:
    run, spec = _run()
    run["jobs"]["a"]["output"] = {"blob": "x" * 2000}
    size = len(encode_payload(build_payload(run, spec, 1)))

    with pytest.raises(DispatchError) as info:
        build_payload(run, spec, 1, limit=1000)

    message = str(info.value)
    assert f"payload for job 'c' of run 'r-1' is {size} bytes, over the limit of 1000 bytes" in message
    assert "largest needed output: 'a'" in message
    assert (info.value.job, info.value.run_id) == ("c", "r-1")
    assert DEFAULT_PAYLOAD_LIMIT == 1_048_576
    build_payload(run, spec, 1, limit=size)  # exactly at the limit is fine


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        import boto3

        iam = boto3.client("iam")
        role = iam.create_role(RoleName="runner", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        client = boto3.client("lambda")
        client.create_function(
            FunctionName="fn-c",
            Runtime="python3.11",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )
        client.publish_version(FunctionName="fn-c")
        client.create_alias(FunctionName="fn-c", Name="prod", FunctionVersion="1")
        yield client


class Recording:
    """A boto3 Lambda client that records what it was asked (and asks moto)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.client.invoke(**kwargs)


def test_lambda_dispatch_is_an_async_invoke_with_the_qualifier(aws: Any) -> None:
    run, spec = _run()
    payload = build_payload(run, spec, 1)
    client = Recording(aws)

    LambdaDispatcher(client).dispatch(spec, payload)

    (call,) = client.calls
    assert call["FunctionName"] == "arn:aws:lambda:us-east-1:123456789012:function:fn-c"
    assert (call["Qualifier"], call["InvocationType"]) == ("prod", "Event")
    assert json.loads(call["Payload"]) == payload


def test_lambda_dispatch_without_qualifier_creates_its_client_once(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    run, spec = _run()
    spec = {**spec, "target": {"function": "fn-c", "qualifier": None}}
    created: list[str] = []
    real = boto3.client
    monkeypatch.setattr(boto3, "client", lambda name, **kw: created.append(name) or real(name, **kw))
    dispatcher = LambdaDispatcher()

    dispatcher.dispatch(spec, build_payload(run, spec, 1))
    dispatcher.dispatch(spec, build_payload(run, spec, 1))

    assert created == ["lambda"]


def test_an_unknown_function_raises_the_aws_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The docker-less backend accepts any name, so this one uses moto's full Lambda backend, which
    # checks the function exists before it would start a container.
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    run, spec = _run()
    spec = {**spec, "target": {"function": "fn-missing", "qualifier": None}}
    with mock_aws(), pytest.raises(ClientError, match="ResourceNotFoundException"):
        LambdaDispatcher(boto3.client("lambda")).dispatch(spec, build_payload(run, spec, 1))


def test_a_job_without_function_or_over_the_limit_is_not_invoked(aws: Any) -> None:
    run, spec = _run()
    client = Recording(aws)
    with pytest.raises(DispatchError, match="job 'c' has no Lambda function"):
        LambdaDispatcher(client).dispatch({**spec, "target": {"function": ""}}, build_payload(run, spec, 1))
    with pytest.raises(DispatchError, match="over the limit of 10 bytes"):
        LambdaDispatcher(client, payload_limit=10).dispatch(spec, build_payload(run, spec, 1))
    assert client.calls == []


def test_an_invoke_that_times_out_reading_is_uncertain_and_sent_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Lambda API stand-in on 127.0.0.1 that reads the request and never answers: the request did
    # reach it, so flowkit must neither treat it as "not sent" nor let botocore send it again.
    import socket
    import threading

    from flowkit.errors import DispatchUncertain

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            requests.append(conn.recv(65536))
            held.append(conn)  # never answered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        run, spec = _run()
        spec = {**spec, "target": {"function": "fn-c", "qualifier": None}}
        dispatcher = LambdaDispatcher(
            endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}", read_timeout=0.5
        )
        with pytest.raises(DispatchUncertain, match="may have reached Lambda"):
            dispatcher.dispatch(spec, build_payload(run, spec, 1))
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert len(requests) == 1
    assert requests[0].startswith(b"POST /2015-03-31/functions/fn-c/invocations")


def test_copy_data_copies_every_container_and_deep_copies_anything_else() -> None:
    from datetime import UTC, datetime

    from flowkit.runtime.dispatch import copy_data

    class Box:
        def __init__(self, items: list[int]) -> None:
            self.items = items

    original = {
        "a": [1, {"b": "x"}],
        "t": (1, [2]),
        "box": Box([3]),
        "when": datetime(2026, 1, 1, tzinfo=UTC),
    }
    copied = copy_data(original)
    assert (
        copied["a"] == original["a"] and copied["t"] == original["t"] and copied["when"] == original["when"]
    )
    copied["a"][1]["b"] = "changed"
    copied["t"][1].append(9)
    copied["box"].items.append(4)
    assert original["a"] == [1, {"b": "x"}] and original["t"] == (1, [2]) and original["box"].items == [3]
