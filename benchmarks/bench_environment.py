"""Local runs through one reused LocalEnvironment vs. run_workflow (a new environment per run).

    python benchmarks/bench_environment.py [--runs 30] [--workflow nightly_etl]

Prints milliseconds per run, median of three rounds, for each form.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowkit.loader import load_workflows  # noqa: E402
from flowkit.local.environment import LocalEnvironment  # noqa: E402
from flowkit.local.runner import run_workflow  # noqa: E402

INPUTS = {"nightly_etl": {"date": "2026-11-27"}, "order_pipeline": {"order_id": "o-1"}, "fan_out": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--workflow", default="nightly_etl", choices=sorted(INPUTS))
    args = parser.parse_args()
    [workflow] = load_workflows(str(ROOT / "workflows" / f"{args.workflow}.py"))
    data = INPUTS[args.workflow]

    def one_call() -> float:
        began = time.perf_counter()
        for _ in range(args.runs):
            run_workflow(workflow, data)
        return (time.perf_counter() - began) / args.runs

    def reused() -> float:
        with LocalEnvironment() as env:
            env.run(workflow, data)  # the first run builds the pieces
            began = time.perf_counter()
            for _ in range(args.runs):
                env.run(workflow, data)
            return (time.perf_counter() - began) / args.runs

    run_workflow(workflow, data)  # warm imports
    rows = {"run_workflow (new environment per run)": one_call, "LocalEnvironment.run (reused)": reused}
    print(f"{args.workflow}, {args.runs} runs per round, median of 3 rounds")
    for label, measure in rows.items():
        median = statistics.median(measure() for _ in range(3))
        print(f"  {label:42s} {median * 1000:7.1f} ms/run")


if __name__ == "__main__":
    main()
