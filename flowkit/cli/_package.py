"""`flowkit package [TARGET] [--arch x86_64|arm64] [--python 3.11|3.12|3.13] [-o DIR]`.

Builds ``flowkit-handlers.zip`` (always) and ``flowkit-jobs.zip`` (when TARGET is given: the modules of
its workflows' ``@job`` bodies) from manylinux wheels for the chosen platform; prints each artifact's
size. See ``flowkit.deploy.package``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowkit.errors import BadArgument


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "package",
        help="build the Lambda artifacts (handlers, and your jobs)",
        description="Build flowkit-handlers.zip (pymongo, slack-sdk, flowkit; no pydantic or networkx; boto3 "
        "from the Lambda runtime) and, for TARGET, flowkit-jobs.zip (your workflow modules for the job router). "
        "Wheels are manylinux ones for --arch and --python, so this works from any machine.",
    )
    parser.add_argument("target", metavar="TARGET", nargs="?", help="workflows whose @job bodies to package")
    parser.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64", help="Lambda architecture")
    parser.add_argument("--python", choices=["3.11", "3.12", "3.13"], default="3.12", help="Lambda runtime")
    parser.add_argument(
        "-o", "--output", metavar="DIR", default="dist", help="where the zips go (default dist)"
    )
    parser.add_argument("--with-boto3", action="store_true", help="ship boto3 instead of the runtime's")
    parser.add_argument(
        "--no-slack", action="store_true", help="leave slack-sdk out (no Slack notifications)"
    )
    parser.add_argument(
        "--requirements", metavar="FILE", help="your jobs' own requirements (a pip requirements file)"
    )
    parser.add_argument(
        "--pip-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra pip argument, e.g. --pip-arg=--index-url=URL (repeatable)",
    )
    parser.add_argument(
        "--no-deps", action="store_true", help="flowkit and your modules only (third-party code from a layer)"
    )
    parser.set_defaults(handler=run)


def job_modules(target: str) -> list[str]:
    """The modules holding the ``@job`` bodies of TARGET's workflows (from the compiled documents)."""
    from flowkit.cli._compile import compile_documents

    modules = {
        spec.handler.split(":", 1)[0]
        for doc in compile_documents(target)
        for spec in doc.jobs
        if spec.handler is not None
    }
    return sorted(modules)


def run(args: argparse.Namespace) -> int:
    from flowkit.deploy.package import build

    modules = job_modules(args.target) if args.target else []
    if args.target and not modules:
        raise BadArgument(f"{args.target}: no job has a Python body, so there is no jobs artifact to build")
    requirements: list[str] = []
    if args.requirements:
        try:
            requirements = ["-r", str(Path(args.requirements).resolve(strict=True))]
        except OSError as exc:
            raise BadArgument(f"--requirements: cannot read {args.requirements}: {exc}") from exc
    artifacts = build(
        Path(args.output),
        job_modules=modules,
        arch=args.arch,
        python=args.python,
        slack=not args.no_slack,
        with_boto3=args.with_boto3,
        job_requirements=requirements,
        pip_args=args.pip_arg,
        no_deps=args.no_deps,
    )
    for artifact in artifacts:
        print(artifact.describe())
    if modules:
        print(f"job modules (FLOWKIT_WORKFLOW_MODULES): {','.join(modules)}")
    sys.stdout.flush()
    return 0
