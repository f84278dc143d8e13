"""The live table and the final summary render every job's state, attempt and elapsed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from _localrun import example
from rich.console import Console

from flowkit.local.display import LiveDisplay, job_elapsed, render_summary
from flowkit.local.runner import run_workflow

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def _job(state: str, attempt: int, seconds: float | None = None, **extra: Any) -> dict[str, Any]:
    finished = None if seconds is None else T0 + timedelta(seconds=seconds)
    return {
        "state": state,
        "attempt": attempt,
        "dispatched_at": T0 if attempt else None,
        "finished_at": finished,
        **extra,
    }


def test_live_table_shows_state_attempt_and_elapsed() -> None:
    run = {
        "_id": "r-1",
        "workflow": "wf",
        "status": "running",
        "jobs": {
            "extract": _job("succeeded", 1, 1.5, output={"rows": 3}),
            "load": _job("running", 1),
            "report": _job("pending", 0),
            "charge": _job("failed", 1, 0.25, error={"type": "CardDeclined", "message": "no"}),
        },
    }
    console = Console(record=True, width=120, force_terminal=False)
    display = LiveDisplay(lambda: run, console=console)

    console.print(display._render())
    text = console.export_text()

    assert "wf r-1 — running" in text
    assert "extract" in text and "succeeded" in text and "1.50s" in text and '{"rows": 3}' in text
    assert "CardDeclined: no" in text and "0.25s" in text
    assert "report" in text and "pending" in text


def test_live_table_of_a_wide_run_shows_moving_jobs_first_and_counts_the_rest() -> None:
    jobs = {f"done-{i}": _job("succeeded", 1, 1) for i in range(50)}
    jobs["busy"] = _job("running", 1)
    console = Console(record=True, width=120)
    display = LiveDisplay(
        lambda: {"_id": "r", "workflow": "w", "status": "running", "jobs": jobs}, console=console
    )

    console.print(display._render())
    text = console.export_text()

    assert text.index("busy") < text.index("done-0")
    assert "21 more jobs not shown (1 running, 50 succeeded)" in text


def test_elapsed_runs_to_now_while_in_flight() -> None:
    assert job_elapsed(_job("running", 1), now=T0 + timedelta(seconds=2)) == 2.0
    assert job_elapsed(_job("pending", 0)) is None


def test_summary_names_the_outcome_and_where_the_run_is() -> None:
    run = run_workflow(example("nightly_etl"), {"date": "2026-11-27", "rows": 0}, run_id="etl-9")
    console = Console(record=True, width=200)

    render_summary(run, console=console)
    text = console.export_text()

    assert "nightly-etl — run succeeded in" in text
    assert "skipped" in text
    assert (
        "run succeeded — run document: embedded in-process store, database 'flowkit', "
        "collection 'state-machines', _id 'etl-9'"
    ) in text


def test_run_workflow_with_the_live_display_still_returns_the_finished_run() -> None:
    run = run_workflow(example("nightly_etl"), {"date": "2026-11-27"}, display=True)

    assert run.status == "succeeded"


def test_live_table_shows_attempts_used_and_jobs_waiting_for_a_retry() -> None:
    run = {
        "_id": "r-2",
        "workflow": "wf",
        "status": "running",
        "config": {
            "jobs": [
                {"name": "reserve", "retry": {"max_attempts": 3}},
                {"name": "charge", "retry": {"max_attempts": 2}},
                {"name": "ship", "retry": {"max_attempts": 1}},
            ]
        },
        "jobs": {
            "reserve": _job(
                "waiting",
                2,
                0.5,
                due=T0 + timedelta(seconds=40),
                error={"type": "Timeout", "message": "the attempt passed its 5 s timeout"},
            ),
            "charge": _job("running", 4, attempt_base=3),
            "ship": _job("pending", 0),
        },
    }
    console = Console(record=True, width=160, force_terminal=False)

    console.print(LiveDisplay(lambda: run, console=console)._render())
    text = console.export_text()

    [reserve] = [line for line in text.splitlines() if "reserve" in line]
    assert "waiting" in reserve and "2/3" in reserve
    assert "retry at 02:00:40 after Timeout: the attempt passed its 5 s timeout" in reserve
    [charge] = [line for line in text.splitlines() if "charge" in line]
    assert "4 (1/2)" in charge  # attempt 4, the first of 2 since the redrive


def test_on_the_run_clock_a_job_in_flight_shows_its_elapsed_time_on_that_clock() -> None:
    # Given a job dispatched at T0 on a virtual clock that now reads T0 + 42 s (the wall clock is elsewhere)
    run = {"_id": "r-1", "workflow": "wf", "status": "running", "jobs": {"load": _job("running", 1)}}
    console = Console(record=True, width=120, force_terminal=False)
    display = LiveDisplay(lambda: run, console=console, clock=lambda: T0 + timedelta(seconds=42))

    console.print(display._render())

    assert "42.00s" in console.export_text()
