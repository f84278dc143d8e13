"""`flowkit template [TARGET] [-o FILE] [--schedule WORKFLOW=EXPRESSION] ...`: the CloudFormation template.

JSON, or YAML when FILE ends in ``.yaml`` / ``.yml`` (needs PyYAML). See ``flowkit.deploy.template``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from flowkit.errors import BadArgument, MissingDependency


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "template",
        help="write the CloudFormation template for your workflows",
        description="Write the CloudFormation template that runs TARGET's workflows on AWS: the flowkit "
        "functions, one function per job target, the rules on the Atlas trigger's partner bus, destinations, "
        "dead-letter queue, timer resources and least-privilege roles. Secrets are parameters (ARNs).",
    )
    parser.add_argument("target", metavar="TARGET", nargs="?", help="your workflows (default: handlers only)")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (.json, .yaml) instead of stdout"
    )
    parser.add_argument("--prefix", default="flowkit", help="name prefix of flowkit's own resources")
    parser.add_argument("--python", choices=["3.11", "3.12", "3.13"], default="3.12", help="Lambda runtime")
    parser.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64", help="Lambda architecture")
    parser.add_argument(
        "--schedule",
        action="append",
        default=[],
        metavar="WORKFLOW=EXPRESSION",
        help="start WORKFLOW on an EventBridge Scheduler expression, e.g. 'nightly-etl=cron(0 2 * * ? *)'",
    )
    parser.set_defaults(handler=run)


def _schedules(values: list[str], names: set[str]) -> dict[str, str]:
    schedules = {}
    for value in values:
        workflow, sep, expression = value.partition("=")
        if not sep or not workflow or not expression.strip():
            raise BadArgument(
                f"--schedule {value!r}: expected WORKFLOW=EXPRESSION, e.g. 'nightly-etl=rate(1 day)'"
            )
        if workflow not in names:
            known = ", ".join(sorted(names)) or "none"
            raise BadArgument(
                f"--schedule {value!r}: no workflow named {workflow!r} in TARGET (workflows: {known})"
            )
        if not expression.strip().startswith(("cron(", "rate(", "at(")):
            raise BadArgument(f"--schedule {value!r}: the expression must be cron(...), rate(...) or at(...)")
        schedules[workflow] = expression.strip()
    return schedules


def run(args: argparse.Namespace) -> int:
    from flowkit.cli._compile import compile_documents
    from flowkit.deploy.template import build_template

    documents = [doc.model_dump(mode="json") for doc in compile_documents(args.target)] if args.target else []
    modules = sorted(
        {
            str(spec["handler"]).split(":", 1)[0]
            for doc in documents
            for spec in doc["jobs"]
            if spec["handler"]
        }
    )
    schedules = _schedules(args.schedule, {doc["name"] for doc in documents})
    template = build_template(
        documents,
        job_modules=modules,
        prefix=args.prefix,
        python=args.python,
        arch=args.arch,
        schedules=schedules,
    )
    if args.output and args.output.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError as exc:
            raise MissingDependency(
                "writing YAML needs PyYAML (pip install pyyaml), or use a .json file"
            ) from exc
        text = yaml.safe_dump(template, sort_keys=False, width=120)
    else:
        text = json.dumps(template, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{args.output}: {len(template['Resources'])} resources", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
