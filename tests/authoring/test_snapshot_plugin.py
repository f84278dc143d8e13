"""The flow_snapshot fixture, used from a user's project: passes, fails on drift, passes after update."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

FLOW = """
from flowkit import job, workflow

@job(timeout={timeout})
def extract(event, context=None):
    return {{"rows": 1}}

@job(timeout=5)
def load(event, context=None):
    return None

@workflow(name="user-flow")
def user_flow():
    return extract >> load
"""

TEST = """
from flowkit import compile
from userflows import user_flow

def test_config(flow_snapshot):
    assert compile(user_flow) == flow_snapshot
"""


def test_flow_snapshot_passes_fails_on_drift_and_updates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(userflows=FLOW.format(timeout=5), test_user=TEST)
    pytester.syspathinsert()

    created = pytester.runpytest_subprocess("--snapshot-update", "-p", "no:cacheprovider")
    created.assert_outcomes(passed=1)
    stored = pytester.path / "__snapshots__" / "test_user" / "test_config.json"
    text = stored.read_text()
    assert text.startswith("{\n") and '"name": "user-flow"' in text and '"timeout_seconds": 5.0' in text

    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)

    pytester.makepyfile(userflows=FLOW.format(timeout=9))
    drift = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    drift.assert_outcomes(failed=1)
    assert "timeout_seconds" in drift.stdout.str()

    pytester.runpytest_subprocess("--snapshot-update", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert '"timeout_seconds": 9.0' in stored.read_text()


def test_snapshot_text_is_the_canonical_json_and_rejects_other_data() -> None:
    from flowkit.testing._snapshot import to_snapshot_json

    assert to_snapshot_json({"b": 1, "a": [1, 2]}) == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    with pytest.raises(
        TypeError, match="flow_snapshot stores a WorkflowDocument, a pydantic model or JSON data, got object"
    ):
        to_snapshot_json(object())


def test_snapshot_text_of_a_document_is_what_flowkit_compile_writes() -> None:
    from flowkit import compile, job, workflow
    from flowkit.testing._snapshot import to_snapshot_json

    flow = workflow(name="small")(lambda: job("remote", target="fn", timeout=1))
    doc = compile(flow)
    assert to_snapshot_json(doc) == doc.to_json()
