"""The ``flowkit_run`` fixture of flowkit's pytest plugin, used from a user's own test session."""

from __future__ import annotations

import pytest
from _localrun import WORKFLOWS

pytest_plugins = ["pytester"]


def test_flowkit_run_runs_a_workflow_with_input_and_mocks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=f"""
        from flowkit.loader import load_workflows
        from flowkit.local.mocks import failure

        [nightly_etl] = load_workflows({str(WORKFLOWS / "nightly_etl.py")!r})
        [orders] = load_workflows({str(WORKFLOWS / "order_pipeline.py")!r})

        def test_empty_day_skips_load(flowkit_run):
            run = flowkit_run(nightly_etl, input={{"date": "2026-11-27"}}, mocks={{"extract": {{"rows": 0}}}})
            assert run.status == "succeeded"
            assert run.jobs["load"].state == "skipped"
            assert run.jobs["report"].output["extracted"] == 0

        def test_mocked_decline_releases_stock(flowkit_run):
            run = flowkit_run(orders, {{"order_id": "o-9"}}, mocks={{"charge": failure("CardDeclined", "no")}})
            assert run.jobs["charge"].error.type == "CardDeclined"
            assert run.jobs["release-stock"].state == "succeeded"

        def test_a_wrong_expectation_fails(flowkit_run):
            run = flowkit_run(nightly_etl, input={{"date": "2026-11-27"}})
            assert run.jobs["load"].state == "skipped"
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")

    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_a_wrong_expectation_fails*", "*AssertionError*"])
