"""Generated hostile values through a small workflow's input, outputs and errors, on the embedded store.

Whatever the values, with every event delivered twice and every job invoked twice:

- the run ends (succeeded, or failed with a clear error on the job that produced the bad value), or it is
  refused at start with a ``FlowkitError`` naming the problem; nothing is left pending or in flight;
- no job body runs twice for one attempt;
- a stored output is exactly what the job returned (types included: ``5`` stays an int, ``5.0`` a
  float), and the next job receives exactly that.

The number of examples is ``FLOWKIT_HOSTILE_EXAMPLES`` (default 40); the count of cases run is printed
(``pytest -s``), e.g. ``FLOWKIT_HOSTILE_EXAMPLES=1000 python -m pytest -s
tests/runtime/test_hostile_properties.py``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from typing import Any

from _harness import World, document, job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowkit.errors import FlowkitError
from flowkit.local.embedded import embedded_database
from flowkit.runtime.limits import value_problem
from flowkit.runtime.report import reported
from flowkit.runtime.start import start_run
from flowkit.vocab import ERROR_MESSAGE_LIMIT

EXAMPLES = int(os.environ.get("FLOWKIT_HOSTILE_EXAMPLES", "40"))
CASES: Counter[str] = Counter()

HOSTILE_KEYS = st.sampled_from(["$x", "$numberLong", "$date", "a.b", "nul\0key", "lone\udc80", "", "ok"])
HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\udc80", "a\ud800b", "$date", '{"$numberLong": "5"}', "x" * 300_000]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: beyond 64 bits too
    st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 5]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([5.0, -0.0, 5e-324]),
    HOSTILE_TEXT,
)


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


VALUES = st.one_of(
    st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.one_of(HOSTILE_KEYS, st.text(max_size=5)), children, max_size=3),
            st.frozensets(st.integers(), max_size=2),  # not JSON at all
        ),
        max_leaves=8,
    ),
    st.integers(90, 110).map(_nested),
)


def _exact(value: Any) -> str:
    """A rendering that tells 5 from 5.0 and True from 1, for comparing stored data with produced data."""
    return json.dumps(
        value, sort_keys=True, default=lambda v: f"<{type(v).__name__}>", allow_nan=True
    ) + repr(_types(value))


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    run_input=st.one_of(
        st.just({}),
        st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
        st.dictionaries(st.one_of(HOSTILE_KEYS, st.text(max_size=5)), VALUES, max_size=3),
    ),
    output=VALUES,
    fails=st.booleans(),
    message=HOSTILE_TEXT,
)
def test_hostile_values_never_stick_a_run_rerun_a_body_or_change_user_data(
    run_input: dict[str, Any], output: Any, fails: bool, message: str
) -> None:
    CASES["run"] += 1
    world = World(embedded_database("hostile"))
    runs: Counter[tuple[str, int]] = Counter()
    received: dict[str, Any] = {}

    @reported(reporter=world.reporter)
    def body(event: dict[str, Any], context: Any = None) -> Any:
        runs[(event["job"], event["attempt"])] += 1
        received[event["job"]] = event
        if event["job"] == "a":
            if fails:
                raise ValueError(message)
            return output
        return {"seen": event["needs"]["a"]}

    doc = document("hostile", [job("a"), job("b", "a")])
    try:
        start_run(world.store, doc, run_input, run_id="r")
    except FlowkitError as exc:
        # refused at start, with the problem named, and nothing stored
        assert value_problem(run_input, "input") is not None or "cannot be stored" in exc.message
        assert world.store.get_run("r") is None
        CASES["refused at start"] += 1
        return

    # every event delivered twice, every dispatched job invoked twice
    done = 0
    while True:
        if world.deliveries:
            delivery = world.deliveries.pop(0)
            world.deliver(delivery)
            world.deliver(delivery)
            continue
        if done < len(world.dispatcher.payloads):
            payload = world.dispatcher.payloads[done]
            done += 1
            body(dict(payload), None)
            body(dict(payload), None)
            continue
        break

    run = world.store.resolve_run(world.store.get_run("r"))  # big outputs and errors: from the results
    assert run["status"] in ("succeeded", "failed"), run["status"]
    states = {name: j["state"] for name, j in run["jobs"].items()}
    assert all(state in ("succeeded", "failed", "cancelled") for state in states.values()), states
    assert all(count == 1 for count in runs.values()), runs
    a = run["jobs"]["a"]
    if fails:
        assert a["state"] == "failed" and a["error"]["type"] == "ValueError"
        assert len(a["error"]["message"]) <= ERROR_MESSAGE_LIMIT
        CASES["body raised"] += 1
    elif a["state"] == "succeeded":
        # stored exactly as produced, and passed on exactly
        assert _exact(a["output"]) == _exact(output)
        assert _exact(received["b"]["needs"]["a"]) == _exact(output)
        b = run["jobs"]["b"]
        # b returns a's output one level deeper: that may be one level too deep, a clear failure of b
        assert b["state"] == "succeeded" or b["error"]["type"] == "InvalidOutput", b
        CASES["output kept exactly"] += 1
    else:
        assert a["error"]["type"] == "InvalidOutput", a["error"]
        assert "cannot be stored unchanged" in a["error"]["message"] or "limit" in a["error"]["message"]
        assert states["b"] == "cancelled"
        CASES["output refused clearly"] += 1
    assert not (math.isnan(a["output"]) if isinstance(a["output"], float) else False)


def test_report_hostile_case_count() -> None:
    """Runs after the property (file order): prints how many hostile cases ran and how they ended."""
    print(f"\nhostile cases run: {CASES['run']} ({dict(CASES)})")
    assert CASES["run"] >= 1
