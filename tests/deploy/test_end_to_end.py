"""An offline deployment, end to end: `flowkit package` + `flowkit template` -> moto's CloudFormation creates
the stack; a run starts through the starter and goes through the real handlers, unpacked from the
artifact, each in its own Python process (a Lambda container).

What stands in for AWS, all on 127.0.0.1:

- moto in server mode: CloudFormation (the stack), S3 (the artifacts), Secrets Manager (the MongoDB URI
  the handlers read at cold start), SQS (the dead-letter queue), EventBridge (the rules and their
  patterns, read back from the created stack);
- a stand-in of the Lambda API (``Invoke``, what boto3 and the orchestrator's dispatcher call): it runs
  each function's handler string in a long-lived process with the function's environment from the stack,
  applies the asynchronous-invocation config of the template (retries, on-success / on-failure
  destinations) and builds the destination records Lambda documents;
- an Atlas trigger stand-in: every insert into ``statuses`` becomes the trigger's envelope (the three
  JSON forms in turn) and goes to the targets of the partner-bus rules whose patterns match, by moto's
  EventBridge pattern matcher; destination records go through the results-bus rule the same way;
- the nx-27017 wire-protocol MongoDB.

The workflow (tests/deploy/e2e_workflow.py): ``prepare`` (a Python body in the job-router function)
then, in parallel, ``score`` (an existing function that knows nothing of flowkit and reports through
destinations) and ``crash`` (a body that kills its process before reporting, detected by the
on-failure destination).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

import e2e_workflow  # noqa: E402  (tests/deploy is on sys.path)

from flowkit import compile  # noqa: E402
from flowkit.deploy.package import build  # noqa: E402
from flowkit.deploy.template import build_template  # noqa: E402
from flowkit.runtime.definitions import Definitions  # noqa: E402
from flowkit.runtime.events import to_envelope  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"
RUNS, STATUSES = "state_machines", "statuses"  # nx-27017 rejects hyphens in collection names
PARTNER_BUS = "flowkit-statuses"  # moto cannot create partner buses (slashes); a custom bus routes the same
LEGACY = """
def handler(event, context):
    # an existing Lambda: no flowkit, it just returns its answer
    return {"score": 0.93, "orders": event["needs"]["prepare"]["orders"]}
"""
RUNNER = r"""
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
module_name, function = sys.argv[2].rsplit(".", 1)
try:
    module = importlib.import_module(module_name)
    handler = getattr(module, function)
    print(json.dumps({"ready": True, "file": getattr(module, "__file__", "")}), flush=True)
except Exception as exc:
    print(json.dumps({"ready": False, "errorType": "Runtime.ImportModuleError", "errorMessage": str(exc)}), flush=True)
    sys.exit(1)
for line in sys.stdin:
    try:
        out = {"ok": True, "result": handler(json.loads(line), None)}
    except Exception as exc:
        out = {"ok": False, "errorType": type(exc).__name__, "errorMessage": str(exc)}
    print(json.dumps(out, default=str), flush=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Container:
    """One warm Lambda container: a Python process running the function's handler."""

    def __init__(self, code: Path, handler: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(code), handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        self.ready = json.loads(self.process.stdout.readline() or '{"ready": false}')

    def invoke(self, payload: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        if not self.ready.get("ready"):
            return {"ok": False, **self.ready}
        try:
            self.process.stdin.write(json.dumps(payload) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if line:
            answer: dict[str, Any] = json.loads(line)
            return answer
        code = self.process.wait(timeout=10)
        return {
            "ok": False,
            "crashed": True,
            "errorType": "Runtime.ExitError",
            "errorMessage": f"Runtime exited with error: exit status {code}",
        }

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class Cloud:
    """The Lambda service, the Atlas trigger and EventBridge delivery, on top of moto and nx-27017."""

    def __init__(self, moto_url: str, template: dict[str, Any], code: dict[str, Path]) -> None:
        self.moto_url = moto_url
        self.template = template
        self.code = code
        self.clients = {
            name: boto3.client(name, region_name=REGION, endpoint_url=moto_url)
            for name in ("lambda", "events", "sqs")
        }
        self.functions: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, Container] = {}
        self.invocations: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.log: list[tuple[str, Any, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        self.lambda_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.formats = itertools.cycle(["default", "relaxed", "canonical"])
        self.busy = 0

    # ---------------------------------------------------------------- the functions
    def register_stack_functions(self) -> None:
        for function in self.clients["lambda"].list_functions()["Functions"]:
            env = (function.get("Environment") or {}).get("Variables", {})
            code = self.code["jobs" if function["Handler"].endswith("job_router") else "handlers"]
            self.functions[function["FunctionName"]] = {
                "handler": function["Handler"],
                "env": env,
                "code": code,
            }

    def register(self, name: str, handler: str, code: Path) -> None:
        self.functions[name] = {"handler": handler, "env": {}, "code": code}

    def _container(self, name: str) -> Container:
        container = self.containers.get(name)
        if container is None or container.process.poll() is not None:
            spec = self.functions[name]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWKIT_", "AWS_"))}
            env.update(spec["env"])
            env.update(
                {
                    "AWS_ENDPOINT_URL": self.moto_url,
                    "FLOWKIT_LAMBDA_ENDPOINT_URL": self.lambda_url,
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": REGION,
                    "AWS_LAMBDA_FUNCTION_NAME": name,
                }
            )
            if container is not None:
                container.close()  # a crashed container is replaced, as Lambda does
            container = self.containers[name] = Container(spec["code"], spec["handler"], env)
        return container

    def run(self, name: str, payload: Any) -> dict[str, Any]:
        answer = self._container(name).invoke(payload)
        with self.lock:
            self.log.append((name, payload, answer))
        return answer

    def invoke_config(self, name: str) -> dict[str, Any]:
        """The function's asynchronous invocation config, from the template (moto does not implement it)."""
        for resource in self.template["Resources"].values():
            if resource["Type"] != "AWS::Lambda::EventInvokeConfig":
                continue
            target = resource["Properties"]["FunctionName"]
            target = (
                target
                if isinstance(target, str)
                else self.template["Resources"][target["Ref"]]["Properties"]["FunctionName"]
            )
            if target == name:
                return dict(resource["Properties"])
        return {"MaximumRetryAttempts": 2}

    def invoke_async(self, name: str, payload: Any) -> None:
        with self.lock:
            self.busy += 1
        self.invocations.put((name, payload))

    def _deliver(self, name: str, payload: Any) -> None:
        config = self.invoke_config(name)
        attempts = 1 + int(config.get("MaximumRetryAttempts", 2))
        attempt = 0
        for attempt in range(1, attempts + 1):  # noqa: B007 - the count goes into the record
            answer = self.run(name, payload)
            if answer["ok"]:
                break
        destinations = config.get("DestinationConfig") or {}
        destination = destinations.get("OnSuccess" if answer["ok"] else "OnFailure")
        if destination is None:
            return
        record = {
            "version": "1.0",
            "timestamp": "2026-11-27T02:00:00.000Z",
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:$LATEST",
                "condition": "Success" if answer["ok"] else "RetriesExhausted",
                "approximateInvokeCount": attempt,
            },
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "responsePayload": answer.get("result")
            if answer["ok"]
            else {"errorType": answer["errorType"], "errorMessage": answer["errorMessage"]},
        }
        if not answer["ok"]:
            record["responseContext"]["functionError"] = "Unhandled"
        arn = json.dumps(destination["Destination"])
        if "DeadLetterQueue" in arn:
            url = self.clients["sqs"].get_queue_url(QueueName="flowkit-dlq")["QueueUrl"]
            self.clients["sqs"].send_message(QueueUrl=url, MessageBody=json.dumps(record))
            return
        assert "ResultsBus" in arn, arn
        kind = "Success" if answer["ok"] else "Failure"
        self.put_event(
            "flowkit-results",
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": f"Lambda Function Invocation Result - {kind}",
                "source": "lambda",
                "account": ACCOUNT,
                "time": "2026-11-27T02:00:00Z",
                "region": REGION,
                "resources": [],
                "detail": record,
            },
        )

    # ---------------------------------------------------------------- EventBridge
    def put_event(self, bus: str, event: dict[str, Any]) -> list[str]:
        """Deliver ``event`` to the targets of the bus's rules whose pattern matches (moto's matcher)."""
        from moto.events.models import EventPattern

        delivered = []
        events = self.clients["events"]
        for rule in events.list_rules(EventBusName=bus)["Rules"]:
            if "EventPattern" not in rule or not EventPattern.load(rule["EventPattern"]).matches_event(event):
                continue
            for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]:
                function = target["Arn"].split(":function:")[-1].split(":")[0]
                delivered.append(function)
                self.invoke_async(function, event)
        return delivered

    def trigger(self, database: Any, seen: set[str]) -> int:
        """The Atlas trigger: every new status document, as its EventBridge envelope, onto the partner bus."""
        new = 0
        for doc in database[STATUSES].find({}):
            if doc["key"] in seen:
                continue
            seen.add(doc["key"])
            new += 1
            envelope = to_envelope(
                doc, database=database.name, collection=STATUSES, json_format=next(self.formats)
            )
            self.put_event(PARTNER_BUS, json.loads(json.dumps(envelope)))
        return new

    def work(self, timeout: float = 0.05) -> bool:
        try:
            name, payload = self.invocations.get(timeout=timeout)
        except queue.Empty:
            return False
        try:
            self._deliver(name, payload)
        finally:
            with self.lock:
                self.busy -= 1
        return True

    # ---------------------------------------------------------------- the Lambda API
    def _http_handler(self) -> type[BaseHTTPRequestHandler]:
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                path = urllib.parse.urlparse(self.path).path
                name = urllib.parse.unquote(path.split("/functions/", 1)[1].split("/", 1)[0])
                name = name.split(":function:")[-1].split(":")[0]
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if name not in cloud.functions:
                    self._answer(
                        404,
                        {"Type": "User", "message": f"Function not found: {name}"},
                        error="ResourceNotFoundException",
                    )
                    return
                if self.headers.get("X-Amz-Invocation-Type") == "Event":
                    cloud.invoke_async(name, body)
                    self._answer(202, None)
                    return
                answer = cloud.run(name, body)
                self._answer(
                    200, answer.get("result") if answer["ok"] else answer, function_error=not answer["ok"]
                )

            def _answer(
                self, status: int, body: Any, *, error: str | None = None, function_error: bool = False
            ) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                if function_error:
                    self.send_header("X-Amz-Function-Error", "Unhandled")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for container in self.containers.values():
            container.close()


@pytest.fixture
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_a_run_goes_through_the_deployed_stack(
    tmp_path: Path, moto_server: str, wire_server: Any, wire_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # ---- flowkit package + flowkit template (the functions' code is the artifact, unpacked)
    document = compile(e2e_workflow.e2e).model_dump(mode="json")
    handlers_zip, jobs_zip = build(tmp_path / "dist", job_modules=["e2e_workflow"], no_deps=True)
    code = {}
    for kind, artifact in (("handlers", handlers_zip), ("jobs", jobs_zip)):
        code[kind] = tmp_path / kind
        zipfile.ZipFile(artifact.path).extractall(code[kind])
    template = build_template([document], job_modules=["e2e_workflow"])

    # ---- the account: artifacts in S3, the URI in Secrets Manager, the partner bus; then the stack
    aws = {
        n: boto3.client(n, region_name=REGION, endpoint_url=moto_server)
        for n in ("s3", "secretsmanager", "events", "cloudformation", "sqs")
    }
    aws["s3"].create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    for artifact in (handlers_zip, jobs_zip):
        aws["s3"].put_object(Bucket="artifacts", Key=artifact.path.name, Body=artifact.path.read_bytes())
    secret = aws["secretsmanager"].create_secret(
        Name="flowkit/mongo", SecretString=json.dumps({"uri": wire_server.uri})
    )["ARN"]
    aws["events"].create_event_bus(Name=PARTNER_BUS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto warns about the resource types it skips (see test_template)
        aws["cloudformation"].create_stack(
            StackName="flowkit",
            TemplateBody=json.dumps(template),
            Parameters=[
                {"ParameterKey": "PartnerEventBusName", "ParameterValue": PARTNER_BUS},
                {"ParameterKey": "MongoUriSecretArn", "ParameterValue": secret},
                {"ParameterKey": "ArtifactBucket", "ParameterValue": "artifacts"},
                {"ParameterKey": "Database", "ParameterValue": wire_database.name},
                {"ParameterKey": "RunsCollection", "ParameterValue": RUNS},
            ],
            Capabilities=["CAPABILITY_IAM"],
        )
    assert (
        aws["cloudformation"].describe_stacks(StackName="flowkit")["Stacks"][0]["StackStatus"]
        == "CREATE_COMPLETE"
    )

    cloud = Cloud(moto_server, template, code)
    try:
        cloud.register_stack_functions()
        assert {"flowkit-starter", "flowkit-orchestrator", "e2e-jobs"} <= set(cloud.functions)
        legacy = tmp_path / "legacy"
        legacy.mkdir()
        (legacy / "legacy.py").write_text(LEGACY)
        cloud.register("legacy-score", "legacy.handler", legacy)

        # ---- flowkit publish, then the starter (a direct invoke through the Lambda API)
        assert Definitions(wire_database).publish(document) == "published"
        client = boto3.client("lambda", region_name=REGION, endpoint_url=cloud.lambda_url)
        answer = client.invoke(
            FunctionName="flowkit-starter",
            Payload=json.dumps({"workflow": "e2e", "input": {"orders": ["o-1", "o-2"]}, "run_id": "e2e-1"}),
        )
        started = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer, started
        assert started == {
            "run_id": "e2e-1",
            "workflow": "e2e",
            "version": document["version"],
            "status": "running",
        }

        # ---- let the stand-ins run until the run ends and everything is delivered
        runs = wire_database[RUNS]
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            moved = cloud.trigger(wire_database, seen) + cloud.work()
            if not moved and cloud.busy == 0 and runs.find_one({"_id": "e2e-1"})["status"] != "running":
                break
        run = runs.find_one({"_id": "e2e-1"})
    finally:
        cloud.close()

    # ---- then the run went through the real handlers, the router, the destinations path
    jobs = run["jobs"]
    assert run["status"] == "failed" and run["version"] == document["version"]
    assert (jobs["prepare"]["state"], jobs["prepare"]["output"]) == ("succeeded", {"orders": 2})
    assert (jobs["score"]["state"], jobs["score"]["output"]) == ("succeeded", {"score": 0.93, "orders": 2})
    assert jobs["crash"]["state"] == "failed"
    assert jobs["crash"]["error"] == {
        "type": "Runtime.ExitError",
        "message": "Runtime exited with error: exit status 137",
    }
    keys = {doc["key"] for doc in wire_database[STATUSES].find({})}
    assert {
        "e2e-1/*/0/started",
        "e2e-1/crash/1/started",
        "e2e-1/crash/1/failed",
        "e2e-1/score/1/success",
        "e2e-1/*/0/failed",
    } <= keys
    assert "e2e-1/score/1/started" not in keys  # the existing function never spoke to MongoDB
    invoked = {name for name, _, _ in cloud.log}
    assert {
        "flowkit-starter",
        "flowkit-statemachine",
        "flowkit-orchestrator",
        "flowkit-notifications",
        "flowkit-destinations",
        "e2e-jobs",
        "legacy-score",
    } <= invoked
    # every flowkit function ran the artifact's code, not this checkout's
    for name, container in cloud.containers.items():
        if name != "legacy-score":
            assert container.ready["file"].startswith(str(tmp_path)), (name, container.ready)
    # nothing failed on the way except the crash: no handler error, nothing dead-lettered
    failures = [(name, answer) for name, _, answer in cloud.log if not answer["ok"]]
    assert [name for name, _ in failures] == ["e2e-jobs"] and failures[0][1]["crashed"]
    dlq = aws["sqs"].get_queue_url(QueueName="flowkit-dlq")["QueueUrl"]
    assert aws["sqs"].receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", []) == []
