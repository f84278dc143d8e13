"""Diagram time for large documents: extraction + DOT text, Mermaid text, and a real SVG render.

    python benchmarks/bench_diagram.py [--sizes 100,1000,10000] [--render-sizes 100,1000] [--repeat 3]

Documents are built directly (no DSL): a chain, a fan-out (one job, N in parallel, one join), and N
jobs in layers of 50 where every job needs every job of the layer before. Prints the best of
``--repeat`` runs in milliseconds: ``dot`` and ``mermaid`` are CPU time of this process (text only);
``svg`` is wall time including the Graphviz ``dot`` process.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flowkit.diagram import render, to_dot, to_mermaid
from flowkit.document import JobSpec, Phase, Target, WorkflowDocument


def _doc(name: str, jobs: list[JobSpec]) -> WorkflowDocument:
    phases: dict[str, list[str]] = {}
    for spec in jobs:
        phases.setdefault(spec.phase, []).append(spec.name)
    return WorkflowDocument(
        name=name, version="bench", phases=[Phase(name=p, jobs=j) for p, j in phases.items()], jobs=jobs
    )


def _job(name: str, phase: str, needs: list[str]) -> JobSpec:
    return JobSpec(name=name, phase=phase, target=Target(function=f"fn-{name}"), needs=sorted(needs))


def chain(n: int) -> WorkflowDocument:
    return _doc("chain", [_job(f"j{i}", f"p{i}", [f"j{i - 1}"] if i else []) for i in range(n)])


def fan_out(n: int) -> WorkflowDocument:
    middle = [f"j{i}" for i in range(1, n - 1)]
    return _doc(
        "fan-out",
        [_job("j0", "a", [])] + [_job(m, "b", ["j0"]) for m in middle] + [_job(f"j{n - 1}", "c", middle)],
    )


def layers(n: int, width: int = 50) -> WorkflowDocument:
    jobs, previous = [], []
    for layer in range(max(1, n // width)):
        names = [f"l{layer}_{i}" for i in range(width)]
        jobs += [_job(name, f"p{layer}", previous) for name in names]
        previous = names
    return _doc("layers", jobs)


def best(repeat: int, fn: Callable[[], object], clock: Callable[[], float]) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--render-sizes", default="100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    render_sizes = {int(s) for s in args.render_sizes.split(",") if s}
    print(f"{'shape':<8} {'jobs':>6} {'dot ms':>9} {'mermaid ms':>11} {'svg ms':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            for shape in (chain, fan_out, layers):
                doc = shape(size)
                dot_ms = best(args.repeat, functools.partial(to_dot, doc), time.process_time)
                mermaid_ms = best(args.repeat, functools.partial(to_mermaid, doc), time.process_time)
                svg = "-"
                if size in render_sizes:
                    path = Path(tmp) / "d.svg"
                    svg = f"{best(1, functools.partial(render, doc, path), time.perf_counter):.0f}"
                print(f"{shape.__name__:<8} {len(doc.jobs):>6} {dot_ms:>9.1f} {mermaid_ms:>11.1f} {svg:>9}")


if __name__ == "__main__":
    main()
