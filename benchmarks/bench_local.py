"""How long a local run of an N-job fan-out / fan-in of no-op jobs takes, end to end.

    python benchmarks/bench_local.py [--jobs 1000] [--repeat 1] [--chaos SEED] [--profile]

The workflow is ``start >> parallel(noop-0 ... noop-{N-1}) >> finish``: N + 2 jobs, every one
dispatched through the real runtime handlers, the in-process bus and the embedded store. Prints
total seconds and jobs per second (goal: 1,000 jobs in a few seconds).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time
from typing import Any

from flowkit import job, parallel, workflow
from flowkit.local.runner import run_workflow


def noop(event: dict[str, Any], context: Any = None) -> None:
    return None


def fan_out(width: int) -> Any:
    start = job(name="start")(noop)
    finish = job(name="finish")(noop)
    middle = [job(name=f"noop-{i}")(noop) for i in range(width)]

    @workflow(name=f"fan-out-{width}")
    def wide() -> Any:
        return start >> parallel(*middle) >> finish

    return wide


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="width of the fan-out (default 1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs to time (the best is reported too)")
    parser.add_argument("--chaos", type=int, default=None, help="bus chaos seed")
    parser.add_argument("--workers", type=int, default=16, help="dispatcher threads")
    parser.add_argument("--profile", action="store_true", help="print the top functions by cumulative time")
    args = parser.parse_args(argv)

    profiles: list[cProfile.Profile] = []
    if args.profile:
        # cProfile sees one thread; give every pool thread its own profiler and merge them at the end.
        def start_thread_profile(*_: Any) -> None:
            threading.setprofile(None)  # type: ignore[arg-type]
            sys.setprofile(None)
            profile = cProfile.Profile()
            profiles.append(profile)
            profile.enable()

        threading.setprofile(start_thread_profile)

    wf = fan_out(args.jobs)
    total_jobs = args.jobs + 2
    timings = []
    for _ in range(args.repeat):
        profiler = cProfile.Profile() if args.profile else None
        began = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        run = run_workflow(wf, {}, chaos=args.chaos, timeout=600, workers=args.workers)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - began
        timings.append(seconds)
        if run.status != "succeeded":
            print(f"run {run.id} ended {run.status}", file=sys.stderr)
            return 1
        print(
            f"{total_jobs} jobs ({args.jobs}-wide fan-out/fan-in, chaos={args.chaos}): "
            f"{seconds:.2f} s total, {total_jobs / seconds:.0f} jobs/s "
            f"(run loop {run.elapsed:.2f} s, {len(run.events)} status events)"
        )
        if profiler is not None:
            stats = pstats.Stats(profiler)
            for profile in profiles:
                stats.add(profile)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
    if args.repeat > 1:
        best = min(timings)
        print(f"best of {args.repeat}: {best:.2f} s, {total_jobs / best:.0f} jobs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
