"""`flowkit template`: the CloudFormation template that runs your workflows on AWS.

``build_template(documents)`` returns the template as a dict (JSON-serializable); what it holds is
listed in docs/deploying.md ("The generated template"). In short:

- the six flowkit functions (statemachine, orchestrator, notifications, starter, destinations, timer)
  from ``flowkit-handlers.zip``, each with its own least-privilege role, on-failure destination to the
  dead-letter queue and two asynchronous retries;
- one function per distinct body target of your workflows (``Defaults(jobs_function=...)`` makes that
  one per workflow), running the job router from ``flowkit-jobs.zip``, with asynchronous retries 0 and
  an on-failure destination to the results bus (a crash before reporting still fails the attempt), and
  an alias per qualifier;
- for jobs that run an existing Lambda: its asynchronous invocation config (on success and on failure
  to the results bus) and a managed policy to attach to its role so Lambda may put those results;
- the rules on the Atlas trigger's partner event bus (a parameter) with the documented patterns, each
  target with a retry policy and the dead-letter queue; the results bus and its rule to the
  destinations handler; the timer's queue (precise wake-ups), its event source mapping and a
  ``rate(1 minute)`` schedule (the backstop);
- the MongoDB URI (and the Slack token) read from Secrets Manager at run time: the template holds
  their ARNs, never their values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from flowkit.deploy.rules import LAMBDA_RESULT_PATTERN, STATUS_RULES, status_pattern
from flowkit.errors import DeployError
from flowkit.naming import is_function_name

__all__ = ["HANDLERS", "build_template"]

Doc = dict[str, Any]

# logical id -> (function name suffix, handler string, what it does)
HANDLERS: Final = {
    "Statemachine": ("statemachine", "flowkit.runtime.handlers.statemachine_job", "records job outcomes"),
    "Orchestrator": ("orchestrator", "flowkit.runtime.handlers.orchestrator_job", "starts ready jobs"),
    "Notifications": ("notifications", "flowkit.runtime.handlers.notifications_job", "sends notifications"),
    "Starter": ("starter", "flowkit.runtime.handlers.starter_job", "starts runs of published workflows"),
    "Destinations": (
        "destinations",
        "flowkit.runtime.handlers.destinations_job",
        "Lambda results -> statuses",
    ),
    "Timer": ("timer", "flowkit.runtime.handlers.timer_job", "fires due retries and timeouts"),
}
_RULE_TARGETS: Final = {
    "statemachine_job": "Statemachine",
    "orchestrator_job": "Orchestrator",
    "notifications_job": "Notifications",
}
# Who needs what besides logs and the MongoDB secret.
_INVOKES_JOBS: Final = ("Orchestrator", "Timer")
_SENDS_TIMERS: Final = ("Statemachine", "Orchestrator", "Timer")
_BASIC_EXECUTION: Final = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
_ROUTER: Final = "flowkit.runtime.handlers.job_router"
_MAX_TIMEOUT: Final = 900


def _sub(text: str) -> Doc:
    return {"Fn::Sub": text}


def _ref(name: str) -> Doc:
    return {"Ref": name}


def _arn(name: str) -> Doc:
    return {"Fn::GetAtt": [name, "Arn"]}


def _logical(prefix: str, name: str, taken: set[str]) -> str:
    """A CloudFormation logical id (alphanumeric) for ``name``, unique in ``taken``."""
    words = re.split(r"[^A-Za-z0-9]+", name)
    base = prefix + "".join(word[:1].upper() + word[1:] for word in words if word)
    base = base[:200]
    logical = base
    if logical in taken:
        logical = base + hashlib.sha256(name.encode()).hexdigest()[:8].upper()
    taken.add(logical)
    return logical


def _function_arn(function: str) -> Any:
    if function.startswith("arn:"):
        parts = function.split(":")
        return ":".join(parts[:7])  # without a qualifier
    return _sub(f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{function}")


def _role(statements: list[Doc]) -> Doc:
    properties: Doc = {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        "ManagedPolicyArns": [_sub(_BASIC_EXECUTION)],
    }
    if statements:
        properties["Policies"] = [
            {"PolicyName": "flowkit", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}
        ]
    return {"Type": "AWS::IAM::Role", "Properties": properties}


class _Jobs:
    """The job functions the documents need: created ones (bodies) and existing ones (body-less)."""

    def __init__(self, documents: Sequence[Mapping[str, Any]]) -> None:
        self.created: dict[str, dict[str, Any]] = {}  # function -> {timeout, qualifiers, workflows}
        self.existing: dict[tuple[str, str | None], set[str]] = {}  # (function, qualifier) -> workflows
        problems = []
        for doc in documents:
            for spec in doc["jobs"]:
                target = spec.get("target") or {}
                function, qualifier = str(target.get("function") or ""), target.get("qualifier")
                if spec.get("handler"):
                    if not is_function_name(function):
                        problems.append(
                            f"job {spec['name']!r} of workflow {doc['name']!r} has a Python body but its target "
                            f"{function!r} is not a function name this template can create"
                        )
                        continue
                    entry = self.created.setdefault(
                        function, {"timeout": 0.0, "qualifiers": set(), "workflows": set()}
                    )
                    entry["timeout"] = max(entry["timeout"], float(spec.get("timeout_seconds") or 60))
                    entry["workflows"].add(doc["name"])
                    if qualifier:
                        entry["qualifiers"].add(qualifier)
                else:
                    self.existing.setdefault((function, qualifier), set()).add(doc["name"])
        clash = sorted({f for f, _ in self.existing} & set(self.created))
        problems += [f"function {f!r} is both a job body's function and an existing Lambda" for f in clash]
        if problems:
            raise DeployError("; ".join(problems))

    def invoke_resources(self) -> list[Any]:
        arns: list[Any] = []
        for function in sorted(self.created) + sorted({f for f, _ in self.existing}):
            base = _function_arn(function)
            arns.append(base)
            arns.append({"Fn::Join": ["", [base, ":*"]]} if isinstance(base, dict) else base + ":*")
        return arns


def build_template(
    documents: Sequence[Mapping[str, Any]],
    *,
    job_modules: Iterable[str] = (),
    prefix: str = "flowkit",
    python: str = "3.12",
    arch: str = "x86_64",
    schedules: Mapping[str, str] | None = None,
) -> Doc:
    """The CloudFormation template (a dict) for ``documents`` (compiled workflows as dicts)."""
    jobs = _Jobs(documents)
    runtime = f"python{python}"
    architectures = ["arm64" if arch == "arm64" else "x86_64"]
    detail_type = _sub("MongoDB Database Trigger for ${Database}.${StatusesCollection}")
    resources: Doc = {}
    taken: set[str] = set()
    environment = {
        "FLOWKIT_MONGO_URI_SECRET": _ref("MongoUriSecretArn"),
        "FLOWKIT_DATABASE": _ref("Database"),
        "FLOWKIT_RUNS_COLLECTION": _ref("RunsCollection"),
        "FLOWKIT_STATUSES_COLLECTION": _ref("StatusesCollection"),
        "FLOWKIT_RESULTS_COLLECTION": _ref("ResultsCollection"),
        "FLOWKIT_WORKFLOWS_COLLECTION": _ref("WorkflowsCollection"),
    }
    secret_read = {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": _ref("MongoUriSecretArn"),
    }
    dlq_send = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": _arn("DeadLetterQueue")}

    resources["DeadLetterQueue"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": f"{prefix}-dlq", "MessageRetentionPeriod": 1209600},
    }
    resources["TimerQueue"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": f"{prefix}-timers", "VisibilityTimeout": 60},
    }
    resources["ResultsBus"] = {"Type": "AWS::Events::EventBus", "Properties": {"Name": f"{prefix}-results"}}

    # ------------------------------------------------------------------ the flowkit functions
    for logical, (suffix, handler, _what) in HANDLERS.items():
        statements: list[Doc] = [secret_read, dlq_send]
        env = dict(environment)
        if logical in _INVOKES_JOBS and jobs.invoke_resources():
            statements.append(
                {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": jobs.invoke_resources()}
            )
        if logical in _SENDS_TIMERS:
            statements.append(
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": _arn("TimerQueue")}
            )
            env["FLOWKIT_TIMER_QUEUE_URL"] = _ref("TimerQueue")
        if logical == "Timer":
            statements.append(
                {
                    "Effect": "Allow",
                    "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                    "Resource": _arn("TimerQueue"),
                }
            )
        if logical == "Notifications":
            statements.append(
                {
                    "Fn::If": [
                        "HasSlack",
                        {
                            "Effect": "Allow",
                            "Action": "secretsmanager:GetSecretValue",
                            "Resource": _ref("SlackTokenSecretArn"),
                        },
                        _ref("AWS::NoValue"),
                    ]
                }
            )
            env["FLOWKIT_SLACK_TOKEN_SECRET"] = {
                "Fn::If": ["HasSlack", _ref("SlackTokenSecretArn"), _ref("AWS::NoValue")]
            }
        resources[f"{logical}Role"] = _role(statements)
        resources[f"{logical}Function"] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": f"{prefix}-{suffix}",
                "Handler": handler,
                "Runtime": runtime,
                "Architectures": architectures,
                "MemorySize": 256,
                "Timeout": 30,
                "Role": _arn(f"{logical}Role"),
                "Code": {"S3Bucket": _ref("ArtifactBucket"), "S3Key": _ref("HandlersKey")},
                "Environment": {"Variables": env},
            },
        }
        resources[f"{logical}InvokeConfig"] = {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {
                "FunctionName": _ref(f"{logical}Function"),
                "Qualifier": "$LATEST",
                "MaximumRetryAttempts": 2,
                "MaximumEventAgeInSeconds": 3600,
                "DestinationConfig": {"OnFailure": {"Destination": _arn("DeadLetterQueue")}},
            },
        }

    # ------------------------------------------------------------------ rules on the partner bus
    rule_arns = []
    for rule, (targets, _document) in STATUS_RULES.items():
        logical = _logical("Rule", rule.removeprefix("flowkit-"), taken)
        rule_arns.append(_arn(logical))
        resources[logical] = {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": rule if prefix == "flowkit" else f"{prefix}-{rule.removeprefix('flowkit-')}",
                "EventBusName": _ref("PartnerEventBusName"),
                "EventPattern": status_pattern(rule, detail_type),
                "State": "ENABLED",
                "Targets": [
                    {
                        "Id": _RULE_TARGETS[target],
                        "Arn": _arn(f"{_RULE_TARGETS[target]}Function"),
                        "RetryPolicy": {"MaximumRetryAttempts": 20, "MaximumEventAgeInSeconds": 3600},
                        "DeadLetterConfig": {"Arn": _arn("DeadLetterQueue")},
                    }
                    for target in targets
                ],
            },
        }
        for target in targets:
            resources[f"{logical}{_RULE_TARGETS[target]}Permission"] = _permission(
                f"{_RULE_TARGETS[target]}Function", _arn(logical)
            )
    resources["RuleResults"] = {
        "Type": "AWS::Events::Rule",
        # the bus by name (what Ref returns), so the rule waits for the bus
        "DependsOn": "ResultsBus",
        "Properties": {
            "Name": f"{prefix}-job-results",
            "EventBusName": f"{prefix}-results",
            "EventPattern": LAMBDA_RESULT_PATTERN,
            "State": "ENABLED",
            "Targets": [
                {
                    "Id": "Destinations",
                    "Arn": _arn("DestinationsFunction"),
                    "RetryPolicy": {"MaximumRetryAttempts": 20, "MaximumEventAgeInSeconds": 3600},
                    "DeadLetterConfig": {"Arn": _arn("DeadLetterQueue")},
                }
            ],
        },
    }
    rule_arns.append(_arn("RuleResults"))
    resources["RuleResultsDestinationsPermission"] = _permission("DestinationsFunction", _arn("RuleResults"))
    resources["TimerSchedule"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Name": f"{prefix}-timer-backstop",
            "ScheduleExpression": "rate(1 minute)",
            "State": "ENABLED",
            "Targets": [{"Id": "Timer", "Arn": _arn("TimerFunction")}],
        },
    }
    resources["TimerSchedulePermission"] = _permission("TimerFunction", _arn("TimerSchedule"))
    resources["TimerQueueMapping"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "EventSourceArn": _arn("TimerQueue"),
            "FunctionName": _ref("TimerFunction"),
            "BatchSize": 10,
        },
    }
    resources["DeadLetterQueuePolicy"] = {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [_ref("DeadLetterQueue")],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": _arn("DeadLetterQueue"),
                        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
                    }
                ],
            },
        },
    }

    # ------------------------------------------------------------------ job functions
    put_results = {"Effect": "Allow", "Action": "events:PutEvents", "Resource": _arn("ResultsBus")}
    modules = ",".join(sorted(job_modules))
    if jobs.created:
        resources["JobsRole"] = _role(
            [
                {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": _ref("MongoUriSecretArn"),
                },
                put_results,
            ]
        )
    for function, entry in sorted(jobs.created.items()):
        logical = _logical("Job", function, taken)
        resources[logical] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": function,
                "Handler": _ROUTER,
                "Runtime": runtime,
                "Architectures": architectures,
                "MemorySize": 512,
                "Timeout": int(min(_MAX_TIMEOUT, max(3, entry["timeout"]))),
                "Role": _arn("JobsRole"),
                "Code": {"S3Bucket": _ref("ArtifactBucket"), "S3Key": _ref("JobsKey")},
                "Environment": {
                    "Variables": {
                        "FLOWKIT_WORKFLOW_MODULES": modules,
                        "FLOWKIT_MONGO_URI_SECRET": _ref("MongoUriSecretArn"),
                        "FLOWKIT_DATABASE": _ref("Database"),
                        "FLOWKIT_RUNS_COLLECTION": _ref("RunsCollection"),
                        "FLOWKIT_STATUSES_COLLECTION": _ref("StatusesCollection"),
                    }
                },
            },
        }
        qualifiers = sorted(entry["qualifiers"]) or [None]
        if entry["qualifiers"]:
            # A Version is only published again when one of its properties changes: naming the
            # artifact's key makes every new jobs artifact (a new key) publish a new version, which the
            # aliases then point at. Upload each build under its own key (flowkit package names it).
            resources[f"{logical}Version"] = {
                "Type": "AWS::Lambda::Version",
                "Properties": {
                    "FunctionName": _ref(logical),
                    "Description": {"Fn::Sub": "flowkit jobs artifact ${JobsKey}"},
                },
            }
        for qualifier in qualifiers:
            suffix = "" if qualifier is None else _logical("", qualifier, set())
            if qualifier is not None:
                resources[f"{logical}Alias{suffix}"] = {
                    "Type": "AWS::Lambda::Alias",
                    "Properties": {
                        "FunctionName": _ref(logical),
                        "FunctionVersion": {"Fn::GetAtt": [f"{logical}Version", "Version"]},
                        "Name": qualifier,
                    },
                }
            invoke_config: Doc = {
                "Type": "AWS::Lambda::EventInvokeConfig",
                "Properties": {
                    "FunctionName": _ref(logical),
                    "Qualifier": qualifier or "$LATEST",
                    # flowkit owns retries: a Lambda-level retry of the same attempt could only be refused.
                    "MaximumRetryAttempts": 0,
                    "DestinationConfig": {"OnFailure": {"Destination": _arn("ResultsBus")}},
                },
            }
            if qualifier is not None:
                invoke_config["DependsOn"] = f"{logical}Alias{suffix}"
            resources[f"{logical}InvokeConfig{suffix}"] = invoke_config

    # ------------------------------------------------------------------ existing functions
    for function, qualifier in sorted(jobs.existing, key=lambda item: (item[0], item[1] or "")):
        logical = _logical(
            "Existing",
            f"{function.rsplit(':', 1)[-1] if function.startswith('arn:') else function}-{qualifier or 'latest'}",
            taken,
        )
        resources[f"{logical}InvokeConfig"] = {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {
                "FunctionName": function,
                "Qualifier": qualifier or "$LATEST",
                "MaximumRetryAttempts": 0,
                "DestinationConfig": {
                    "OnSuccess": {"Destination": _arn("ResultsBus")},
                    "OnFailure": {"Destination": _arn("ResultsBus")},
                },
            },
        }
    if jobs.existing:
        resources["ExistingFunctionsResultsPolicy"] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "Description": "Attach to the roles of existing job functions: lets Lambda send their results",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [put_results]},
            },
        }

    # ------------------------------------------------------------------ schedules (EventBridge Scheduler)
    if schedules:
        resources["SchedulerRole"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "scheduler.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "start-runs",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": "lambda:InvokeFunction",
                                    "Resource": _arn("StarterFunction"),
                                }
                            ],
                        },
                    }
                ],
            },
        }
        for workflow, expression in sorted(schedules.items()):
            logical = _logical("Schedule", workflow, taken)
            resources[logical] = {
                "Type": "AWS::Scheduler::Schedule",
                "Properties": {
                    "Name": f"{prefix}-{workflow}"[:64],
                    "ScheduleExpression": expression,
                    "ScheduleExpressionTimezone": "UTC",
                    "FlexibleTimeWindow": {"Mode": "OFF"},
                    "Target": {
                        "Arn": _arn("StarterFunction"),
                        "RoleArn": _arn("SchedulerRole"),
                        # the scheduled time in the run id: a retried delivery starts nothing twice
                        "Input": json.dumps(
                            {
                                "workflow": workflow,
                                "input": {},
                                "run_id": f"{workflow}-<aws.scheduler.scheduled-time>",
                            }
                        ),
                        "RetryPolicy": {"MaximumRetryAttempts": 3},
                        "DeadLetterConfig": {"Arn": _arn("DeadLetterQueue")},
                    },
                },
            }

    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "flowkit: "
        + (", ".join(sorted(str(doc["name"]) for doc in documents)) or "handlers only")
        + " (generated by flowkit template)",
        "Parameters": _parameters(jobs=bool(jobs.created)),
        "Conditions": {"HasSlack": {"Fn::Not": [{"Fn::Equals": [_ref("SlackTokenSecretArn"), ""]}]}},
        "Resources": resources,
        "Outputs": {
            "StarterFunctionArn": {"Value": _arn("StarterFunction"), "Description": "invoke to start a run"},
            "ResultsBusArn": {"Value": _arn("ResultsBus"), "Description": "destination of job results"},
            "DeadLetterQueueUrl": {"Value": _ref("DeadLetterQueue"), "Description": "alarm on its depth"},
            **(
                {"ExistingFunctionsResultsPolicyArn": {"Value": _ref("ExistingFunctionsResultsPolicy")}}
                if jobs.existing
                else {}
            ),
        },
    }


def _permission(function: str, source: Any) -> Doc:
    return {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "FunctionName": _ref(function),
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "SourceArn": source,
        },
    }


def _parameters(*, jobs: bool) -> Doc:
    parameters: Doc = {
        "PartnerEventBusName": {
            "Type": "String",
            "Description": "the Atlas trigger's partner event bus: aws.partner/mongodb.com/stitch.trigger/<id>",
            "AllowedPattern": "aws\\.partner/mongodb\\.com/stitch\\.trigger/.+|[A-Za-z0-9._/-]+",
        },
        "MongoUriSecretArn": {
            "Type": "String",
            "Description": 'Secrets Manager secret holding the MongoDB connection string (or {"uri": ...})',
        },
        "SlackTokenSecretArn": {
            "Type": "String",
            "Default": "",
            "Description": "Secrets Manager secret holding the Slack bot token (empty: no Slack)",
        },
        "ArtifactBucket": {"Type": "String", "Description": "S3 bucket holding the zips of flowkit package"},
        "HandlersKey": {"Type": "String", "Default": "flowkit-handlers.zip"},
        "Database": {"Type": "String", "Default": "flowkit"},
        "RunsCollection": {"Type": "String", "Default": "state-machines"},
        "StatusesCollection": {"Type": "String", "Default": "statuses"},
        "ResultsCollection": {"Type": "String", "Default": "results"},
        "WorkflowsCollection": {"Type": "String", "Default": "workflows"},
    }
    if jobs:
        parameters["JobsKey"] = {"Type": "String", "Default": "flowkit-jobs.zip"}
    return parameters
