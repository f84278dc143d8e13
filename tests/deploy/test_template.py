"""`flowkit template`: cfn-lint passes on every example's template, moto's CloudFormation creates the stack,
the rules carry the documented patterns, and the roles grant only what each function needs."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from flowkit import compile
from flowkit.deploy.rules import STATUS_RULES, status_pattern
from flowkit.deploy.template import build_template
from flowkit.errors import DeployError
from workflows.fan_out import fan_out
from workflows.nested import nested
from workflows.nightly_etl import nightly_etl
from workflows.order_pipeline import order_pipeline

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploying.md"
EXAMPLES = {
    "fan-out": fan_out,
    "nested": nested,
    "nightly-etl": nightly_etl,
    "order-pipeline": order_pipeline,
}
CFN_LINT = [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]
RULE = re.compile(
    r"<!-- rule: (?P<name>\S+) -> (?P<targets>[^>]+?) -->\s*```json\n(?P<pattern>.*?)```", re.DOTALL
)


def template_of(*names: str, **options: Any) -> dict[str, Any]:
    documents = [compile(EXAMPLES[name]).model_dump(mode="json") for name in names]
    modules = sorted({s["handler"].split(":")[0] for d in documents for s in d["jobs"] if s["handler"]})
    return build_template(documents, job_modules=modules, **options)


def of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_the_rules_carry_the_documented_patterns() -> None:
    documented = {m["name"]: (m["targets"], json.loads(m["pattern"])) for m in RULE.finditer(DOC.read_text())}
    assert set(documented) == set(STATUS_RULES)
    for rule, (targets, _) in STATUS_RULES.items():
        assert status_pattern(rule) == documented[rule][1]
        assert [t.strip() for t in documented[rule][0].split(",")] == list(targets)


def test_cfn_lint_passes_on_every_examples_template(tmp_path: Path) -> None:
    pytest.importorskip("cfnlint")
    files = []
    for name in sorted(EXAMPLES):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(template_of(name)))
    files.append(tmp_path / "all.json")
    files[-1].write_text(json.dumps(template_of(*EXAMPLES, schedules={"nightly-etl": "cron(0 2 * * ? *)"})))
    files.append(tmp_path / "handlers-only.json")
    files[-1].write_text(json.dumps(build_template([])))
    result = subprocess.run([*CFN_LINT, *map(str, files)], capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    # the lint run above can fail: a template with a wrong property is reported
    pytest.importorskip("cfnlint")
    template = template_of("nightly-etl")
    template["Resources"]["StarterFunction"]["Properties"]["Runtime"] = "python2.1"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(template))
    result = subprocess.run([*CFN_LINT, str(path)], capture_output=True, text=True)
    assert result.returncode != 0 and "python2.1" in result.stdout


def test_secrets_are_references_never_values() -> None:
    template = template_of(*EXAMPLES)
    text = json.dumps(template)
    assert "mongodb://" not in text and "mongodb+srv" not in text and "xoxb-" not in text
    for function in of_type(template, "AWS::Lambda::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert "FLOWKIT_MONGO_URI" not in variables and "FLOWKIT_SLACK_TOKEN" not in variables
        assert variables["FLOWKIT_MONGO_URI_SECRET"] == {"Ref": "MongoUriSecretArn"}


def statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = template["Resources"][role]["Properties"].get("Policies", [])
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_only_the_orchestrator_and_the_timer_may_invoke_and_only_the_job_functions() -> None:
    template = template_of("nested", "fan-out")
    invokers = {
        role: s["Resource"]
        for role in of_type(template, "AWS::IAM::Role")
        for s in statements(template, role)
        if s.get("Action") == "lambda:InvokeFunction" and role != "SchedulerRole"
    }
    assert set(invokers) == {"OrchestratorRole", "TimerRole"}
    resources = json.dumps(invokers["OrchestratorRole"])
    for function in ("prepare", "fetch-eu", "catalogue-jobs", "score-model"):
        assert f"function:{function}" in resources
    assert "*" not in resources.replace(":*", "")  # no wildcard except the qualifier suffix
    # the job functions' role reads the secret and puts results, nothing else
    actions = sorted(s["Action"] for s in statements(template, "JobsRole"))
    assert actions == ["events:PutEvents", "secretsmanager:GetSecretValue"]


def test_job_functions_report_crashes_and_existing_ones_report_everything() -> None:
    template = template_of("nested")
    configs = {
        r["Properties"]["FunctionName"]
        if isinstance(r["Properties"]["FunctionName"], str)
        else r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    }
    existing = configs["arn:aws:lambda:eu-west-1:123456789012:function:score-model"]
    assert existing["Qualifier"] == "prod" and existing["MaximumRetryAttempts"] == 0
    assert set(existing["DestinationConfig"]) == {"OnSuccess", "OnFailure"}
    router = configs["JobPrepare"]
    assert router["MaximumRetryAttempts"] == 0 and set(router["DestinationConfig"]) == {"OnFailure"}
    functions = {
        r["Properties"]["FunctionName"]: r["Properties"]
        for r in of_type(template, "AWS::Lambda::Function").values()
    }
    assert functions["fetch-eu"]["Handler"] == "flowkit.runtime.handlers.job_router"
    assert functions["fetch-eu"]["Environment"]["Variables"]["FLOWKIT_WORKFLOW_MODULES"] == "workflows.nested"
    assert functions["fetch-eu"]["Timeout"] == 300


def test_one_function_serves_the_whole_fan_out() -> None:
    functions = of_type(template_of("fan-out"), "AWS::Lambda::Function")
    names = sorted(r["Properties"]["FunctionName"] for r in functions.values())
    assert [n for n in names if not n.startswith("flowkit-")] == ["catalogue-jobs"]


def test_a_body_with_an_arn_target_is_refused() -> None:
    document = compile(nested).model_dump(mode="json")
    document["jobs"][0]["target"]["function"] = "arn:aws:lambda:eu-west-1:1:function:x"
    with pytest.raises(DeployError, match="has a Python body but its target"):
        build_template([document])


def test_moto_creates_the_stack_of_every_example() -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    template = template_of(*EXAMPLES, schedules={"nightly-etl": "cron(0 2 * * ? *)"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("flowkit/__init__.py", "")
    with moto.mock_aws():
        region = "eu-west-1"
        s3 = boto3.client("s3", region_name=region)
        s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": region})
        for key in ("flowkit-handlers.zip", "flowkit-jobs.zip"):
            s3.put_object(Bucket="artifacts", Key=key, Body=buffer.getvalue())
        secret = boto3.client("secretsmanager", region_name=region).create_secret(
            Name="flowkit/mongo", SecretString="mongodb://127.0.0.1:1"
        )["ARN"]
        boto3.client("events", region_name=region).create_event_bus(Name="flowkit-statuses")
        cloudformation = boto3.client("cloudformation", region_name=region)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cloudformation.create_stack(
                StackName="flowkit",
                TemplateBody=json.dumps(template),
                Parameters=[
                    {"ParameterKey": "PartnerEventBusName", "ParameterValue": "flowkit-statuses"},
                    {"ParameterKey": "MongoUriSecretArn", "ParameterValue": secret},
                    {"ParameterKey": "ArtifactBucket", "ParameterValue": "artifacts"},
                ],
                Capabilities=["CAPABILITY_IAM"],
            )
        stack = cloudformation.describe_stacks(StackName="flowkit")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        # moto skips the resource types it does not implement; say which, so nothing is claimed for them
        skipped = {
            m.group(1) for w in caught if (m := re.search(r"Tried to parse (\S+) but", str(w.message)))
        }
        assert skipped <= {
            "AWS::Lambda::EventInvokeConfig",
            "AWS::SQS::QueuePolicy",
            "AWS::Lambda::Alias",
            "AWS::Scheduler::Schedule",
        }
        lambdas = boto3.client("lambda", region_name=region)
        names = {f["FunctionName"] for f in lambdas.list_functions()["Functions"]}
        assert {"flowkit-orchestrator", "flowkit-starter", "flowkit-destinations", "flowkit-timer"} <= names
        assert {"catalogue-jobs", "etl-extract", "orders-charge", "fetch-eu"} <= names
        rules = boto3.client("events", region_name=region).list_rules(EventBusName="flowkit-statuses")[
            "Rules"
        ]
        assert sorted(r["Name"] for r in rules) == sorted(STATUS_RULES)


def test_a_new_jobs_artifact_key_publishes_a_new_version_behind_each_alias() -> None:
    # A Version is replaced (a new one published) only when one of its properties changes: each one
    # names the jobs artifact's key, so deploying a build under a new key moves the aliases to it.
    template = template_of("nightly-etl")
    versions = of_type(template, "AWS::Lambda::Version")
    aliases = of_type(template, "AWS::Lambda::Alias")
    assert versions and aliases
    for version in versions.values():
        assert version["Properties"]["Description"] == {"Fn::Sub": "flowkit jobs artifact ${JobsKey}"}
    for alias in aliases.values():
        [target] = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][:1]
        assert target in versions
