"""Build, compile and validate time for large workflows: chains, fan-out/fan-in, layered and random DAGs.

    python benchmarks/bench_compile.py [--sizes 100,1000,10000] [--repeat 3]

Prints the best of ``--repeat`` runs (CPU time of this process, so other load on the machine matters
less), in milliseconds, for each shape and size: ``build`` is writing the workflow in the DSL (N
``@job`` declarations and their composition: a chain is ``a >> b >> c >> ...``, a fan-out
``head >> parallel(...) >> tail``, a layered DAG a ``sequence`` of ``parallel`` layers of 10 jobs (each job
needs the 10 of the layer before), a
random DAG jobs with ``needs=``); ``compile`` is DSL -> document (incl. the content hash),
``validate`` the graph checks on the document; ``compile+validate`` is ``flowkit.compile`` (both), and
``all`` is build + ``flowkit.compile``. The goal is linear growth and well under a second at 10,000 jobs.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from flowkit import compile, job, parallel, sequence, workflow
from flowkit.compiler import _gc_paused, build_document
from flowkit.dsl import Job, Node, Workflow
from flowkit.validation import validate_document


def _body(event: Any, context: Any = None) -> None:
    return None


def _jobs(n: int, needs: Callable[[int], list[str]] | None = None) -> list[Job]:
    return [job(name=f"j{i}", timeout=10, needs=needs(i) if needs else [])(_body) for i in range(n)]


def chain(n: int) -> Node:
    jobs = _jobs(n)
    root: Node = jobs[0]
    for item in jobs[1:]:
        root = root >> item
    return root


def layered(n: int, width: int = 10) -> Node:
    jobs = _jobs(n)
    return sequence(*(parallel(*jobs[i : i + width]) for i in range(0, n, width)))


def fan_out(n: int) -> Node:
    head, *middle, tail = _jobs(n)
    return head >> parallel(*middle) >> tail


def random_dag(n: int) -> Node:
    rng = random.Random(n)

    def needs(i: int) -> list[str]:
        return [f"j{k}" for k in sorted(rng.sample(range(i), min(i, rng.randint(0, 3))))]

    return parallel(*_jobs(n, needs))


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        with _gc_paused():  # as flowkit.compile does
            fn()
        times.append(time.process_time() - start)
    return min(times) * 1000


def calibration() -> float:
    """Milliseconds for sum(range(10**6)): about 15 ms on a current laptop; scale the numbers by it."""
    return best(lambda: sum(range(10**6)), 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated job counts")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"calibration: sum(range(10**6)) takes {calibration():.1f} ms CPU on this machine")
    print(
        f"{'shape':<12}{'jobs':>8}{'build ms':>10}{'compile ms':>12}{'validate ms':>13}"
        f"{'compile+validate':>18}{'all ms':>9}{'us/job':>9}"
    )
    for shape in (chain, fan_out, layered, random_dag):
        for n in sizes:
            root = shape(n)
            wf: Workflow = workflow(name=shape.__name__.replace("_", "-"))(lambda root=root: root)
            doc, problems = build_document(wf)
            if problems or validate_document(doc).errors:
                raise SystemExit(f"{shape.__name__} {n}: unexpected problems")
            build_ms = best(lambda shape=shape, n=n: shape(n), args.repeat)
            compile_ms = best(lambda wf=wf: build_document(wf), args.repeat)
            validate_ms = best(lambda doc=doc: validate_document(doc), args.repeat)
            total_ms = best(lambda wf=wf: compile(wf), args.repeat)
            print(
                f"{shape.__name__:<12}{n:>8}{build_ms:>10.1f}{compile_ms:>12.1f}{validate_ms:>13.1f}"
                f"{total_ms:>18.1f}{build_ms + total_ms:>9.1f}{(build_ms + total_ms) * 1000 / n:>9.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
