"""Soak the order-independence harness: thousands of random delivery schedules, on purpose.

    python benchmarks/soak_order.py N [--scenario NAME ...] [--seed S] [--duplicates D] [--controls]

Runs N schedules per scenario of ``tests/runtime/_harness.py`` through the same driver as
``tests/runtime/test_order_independence.py`` (real handlers, store and Reporter on the embedded
database, invocations interleaved one database operation at a time, duplicates, late deliveries,
stuck invocations; for the timer scenarios of ``tests/runtime/_timer_scenarios.py`` also clock ticks
and timer sweeps at any point, repeated and late), with plain seeded random choices. Prints schedules per second and every failing
seed; exits 1 if any schedule broke an invariant. Replay one with ``--seed S`` and N=1.

``--controls``: every schedule also takes an operator's ``cancel`` and ``redrive`` at random points
(``tests/runtime/test_order_control.py``), and is checked with its invariants (each attempt dispatched
once, the run ends exactly once per redrive, no job left unfinished), every scenario by default,
the timer scenarios included (every timer is let fire at the end).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "_shared"))  # pytest's pythonpath

from test_order_control import check_control_invariants
from test_order_independence import SCENARIOS, RandomChoices, run_schedule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="schedules per scenario")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--duplicates", type=int, default=6, help="duplicate/late deliveries per schedule")
    parser.add_argument("--controls", action="store_true", help="also cancel and redrive at random points")
    args = parser.parse_args(argv)
    failures: list[tuple[str, int]] = []
    total_began = time.perf_counter()
    default = sorted(SCENARIOS)
    for name in args.scenario or default:
        began = time.perf_counter()
        for seed in range(args.seed, args.seed + args.n):
            try:
                if args.controls:
                    world = run_schedule(
                        SCENARIOS[name],
                        RandomChoices(seed),
                        duplicates=args.duplicates,
                        controls=("cancel", "redrive"),
                    )
                    check_control_invariants(world, "r-1")
                else:
                    run_schedule(SCENARIOS[name], RandomChoices(seed), duplicates=args.duplicates)
            except Exception:
                failures.append((name, seed))
                print(f"FAILED {name} seed {seed}:\n{traceback.format_exc()}", file=sys.stderr)
        elapsed = time.perf_counter() - began
        print(f"{name:20} {args.n:>7} schedules {elapsed:8.1f} s {args.n / elapsed:8.1f}/s", flush=True)
    count = args.n * len(args.scenario or default)
    print(
        f"{'total':20} {count:>7} schedules {time.perf_counter() - total_began:8.1f} s, {len(failures)} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
