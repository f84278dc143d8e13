"""Cold-start import cost and per-event cost of the runtime edge (event parsing, notifications).

    python benchmarks/bench_runtime_edge.py [--repeat 7] [--events 2000]

Import times are measured in fresh interpreters (``python -X importtime``, median of ``--repeat``),
as a Lambda cold start pays them; the module's own cost is what it adds on top of what it imports
(``self``), ``total`` includes its imports (pymongo, bson, ...) unless already loaded. ``after deps``
is the wall time of importing the module once pymongo and the store are loaded (the handlers import
them anyway), i.e. what it costs on top of what the runtime needs anyway. Neither module loads pydantic. Per-event numbers are the best of
``--repeat`` loops over ``--events`` events, in microseconds per event.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId

from flowkit.document import status_key
from flowkit.runtime.events import parse_event, to_envelope
from flowkit.runtime.notify import NotifySettings, build_message

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "events"


def importtime(statement: str, modules: list[str], repeat: int) -> dict[str, tuple[float, float]]:
    """Median (self, cumulative) milliseconds of each module imported by ``statement``."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in modules}
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
        )
        for line in result.stderr.splitlines():
            parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] in samples:
                samples[parts[2]].append((int(parts[0]) / 1000, int(parts[1]) / 1000))
    return {
        name: (statistics.median(s for s, _ in values), statistics.median(c for _, c in values))
        for name, values in samples.items()
        if values
    }


def after_deps(module: str, repeat: int) -> float:
    code = (
        "import time, pymongo, bson.json_util, flowkit.runtime.store, flowkit.runtime.config\n"
        f"t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    ]
    return statistics.median(runs)


def per_event(fn: Any, items: list[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args(argv)

    print("import (median ms, fresh interpreter)      self    total   after deps")
    modules = ["flowkit.runtime.events", "flowkit.runtime.notify"]
    times = importtime("import flowkit.runtime.events, flowkit.runtime.notify", modules, args.repeat)
    for name in modules:
        own, total = times[name]
        print(f"  {name:<40} {own:6.1f} {total:8.1f} {after_deps(name, args.repeat):10.1f}")
    slack = importtime(
        "import slack_sdk, slack_sdk.webhook, slack_sdk.http_retry", ["slack_sdk"], args.repeat
    )
    print(
        f"  {'slack_sdk (lazy: first Slack notifier)':<40} {slack['slack_sdk'][0]:6.1f} {slack['slack_sdk'][1]:8.1f}"
    )

    fixtures = sorted(FIXTURES.glob("*.json"))
    envelopes = [json.loads(path.read_text()) for path in fixtures]
    print(f"\nparse_event over the {len(fixtures)} fixtures (us/event, best of {args.repeat})")
    items = (envelopes * (args.events // len(envelopes) + 1))[: args.events]
    print(f"  {'all fixtures':<40} {per_event(parse_event, items, args.repeat):8.1f}")
    doc = {
        "_id": ObjectId(),
        "key": status_key("r-1", "load", 2, "failed"),
        "run_id": "r-1",
        "workflow": "nightly-etl",
        "job": "load",
        "attempt": 2,
        "status": "failed",
        "output": None,
        "error": {"type": "OperationalError", "message": "timed out"},
        "time": datetime.now(UTC),
    }
    for json_format in ("default", "relaxed", "canonical"):
        envelope = to_envelope(doc, database="flowkit", collection="statuses", json_format=json_format)  # type: ignore[arg-type]
        cost = per_event(parse_event, [envelope] * args.events, args.repeat)
        print(f"  {json_format:<40} {cost:8.1f}")
    print(
        f"  {'to_envelope (relaxed)':<40} "
        f"{per_event(lambda d: to_envelope(d, database='flowkit', collection='statuses'), [doc] * args.events, args.repeat):8.1f}"
    )
    status = parse_event(to_envelope(doc, database="flowkit", collection="statuses"))
    config = NotifySettings(slack_channel="#etl", mention="<!here>")
    cost = per_event(lambda s: build_message(s, config), [status] * args.events, args.repeat)
    print(f"  {'build_message (Block Kit + text + JSON)':<40} {cost:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
