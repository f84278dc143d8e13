"""Cancelling a local run for real: ``LocalEnvironment.cancel`` / ``start``, ``cancel_after`` on the
run's clock, the ``flowkit_run`` fixture, and ``flowkit run`` (``--cancel-after``, Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowkit import Retry, job, workflow
from flowkit.errors import BadArgument, RunError
from flowkit.local import LocalEnvironment, failure, run_workflow, success
from flowkit.local.clock import VirtualClock
from flowkit.local.mocks import hang

pytest_plugins = ["pytester"]


def _retrying() -> Any:
    """work (retried after 10 minutes) >> after."""

    @job(name="work", retry=Retry(attempts=3, interval=timedelta(minutes=10), backoff=1.0))
    def work(event: Any, context: Any = None) -> Any:
        return {"ok": True}

    @job(name="after")
    def after(event: Any, context: Any = None) -> Any:
        return None

    @workflow(name="retrying")
    def retrying() -> Any:
        return work >> after

    return retrying


def _gated(gate: threading.Event, started: threading.Event) -> Any:
    """slow (runs until ``gate`` is set) >> after."""

    @job(name="slow")
    def slow(event: Any, context: Any = None) -> Any:
        started.set()
        if not gate.wait(30):
            raise TimeoutError("the test never opened the gate")
        return {"slow": "done"}

    @job(name="after")
    def after(event: Any, context: Any = None) -> Any:
        return None

    @workflow(name="gated")
    def gated() -> Any:
        return slow >> after

    return gated


def _states(run: Any) -> dict[str, str]:
    return {name: entry.state.value for name, entry in run.jobs.items()}


def _workflow_events(run: Any) -> list[tuple[str, int]]:
    return [(e.status.value, e.attempt) for e in run.events if e.job is None]


# ---------------------------------------------------------------------- cancel_after


@pytest.mark.parametrize("chaos", [None, 1, 2])
def test_cancel_after_cancels_on_the_virtual_clock_while_a_retry_waits(chaos: int | None) -> None:
    # Given a job that fails once and would be retried ten minutes later
    clock = VirtualClock()
    began = clock()

    # When the run is cancelled five minutes in, on the virtual clock
    run = run_workflow(
        _retrying(),
        mocks={"work": [failure("Flaky", "first"), success({"ok": 2})]},
        clock=clock,
        chaos=chaos,
        cancel_after=timedelta(minutes=5),
    )

    # Then it ends cancelled exactly then: the waiting job is cancelled, the next never ran
    assert run.status == "cancelled"
    assert run.document["end_reason"] == "cancel_after 300s"
    assert _states(run) == {"work": "cancelled", "after": "cancelled"}
    assert run.jobs["work"].attempt == 1  # the retry never started
    assert run.run.ended_at == began + timedelta(minutes=5)
    assert _workflow_events(run) == [("started", 0), ("cancelled", 0)]
    [end] = [e for e in run.events if e.job is None and e.status == "cancelled"]
    assert end.time == run.run.ended_at and end.output == {"reason": "cancel_after 300s"}


def test_a_local_cancel_notifies_run_cancelled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the runtime's notifications handler sending to a recording notifier
    from flowkit import Notify
    from flowkit.runtime.handlers import Runtime

    sent: list[Any] = []

    class Recorder:
        def send(self, message: Any) -> bool:
            sent.append(message)
            return True

    monkeypatch.setattr(Runtime, "_get_notifier", lambda self: Recorder())

    @job(name="work", retry=Retry(attempts=2, interval=timedelta(minutes=10)))
    def work(event: Any, context: Any = None) -> Any:
        return None

    @workflow(name="noisy", notify=Notify(slack_channel="#ops", on=["run.cancelled", "run.failed"]))
    def noisy() -> Any:
        return work

    # When a local run is cancelled (each event delivered once: a duplicated delivery notifies again,
    # see docs/notifications.md)
    run = run_workflow(noisy, mocks={"work": failure("Flaky", "x")}, clock="virtual", cancel_after=60)

    # Then exactly one run.cancelled notification went out, with the reason
    assert run.status == "cancelled"
    assert [m.kind.value for m in sent] == ["run.cancelled"]
    assert "cancel_after 60s" in json.dumps(sent[0].payload)


def test_cancel_after_that_comes_after_the_end_changes_nothing() -> None:
    run = run_workflow(
        _retrying(),
        mocks={"work": [failure("Flaky", "first"), success({"ok": 2})]},
        clock="virtual",
        cancel_after=timedelta(minutes=11),
    )

    assert run.status == "succeeded"
    assert _workflow_events(run) == [("started", 0), ("success", 0)]


def test_cancel_after_ends_a_run_whose_job_hangs_without_a_timeout() -> None:
    # Without it the run would stall; the hung attempt stays running (a Lambda cannot be stopped)
    run = run_workflow(_retrying(), mocks={"work": hang()}, clock="virtual", cancel_after=60)

    assert run.status == "cancelled"
    assert _states(run) == {"work": "running", "after": "cancelled"}


@pytest.mark.parametrize("bad", [0, -1, timedelta(0), float("nan"), float("inf"), "5m", True])
def test_a_bad_cancel_after_is_refused_before_anything_starts(bad: Any) -> None:
    with LocalEnvironment() as env:
        with pytest.raises(BadArgument, match="cancel_after"):
            env.run(_retrying(), mocks={"work": success(None)}, cancel_after=bad)
        assert env.store.runs.count_documents({}) == 0


# ---------------------------------------------------------------------- cancel from another thread


def test_a_run_cancelled_from_another_thread_lets_the_running_job_finish() -> None:
    gate, started = threading.Event(), threading.Event()
    with LocalEnvironment() as env:
        handle = env.start(_gated(gate, started), timeout=30)
        assert started.wait(10)

        assert handle.cancel("enough") is True  # while slow runs
        gate.set()
        run = handle.wait(30)

        # slow's outcome is recorded and changes nothing else; after never starts
        assert run.status == "cancelled"
        assert _states(run) == {"slow": "succeeded", "after": "cancelled"}
        assert run.jobs["slow"].output == {"slow": "done"}
        assert _workflow_events(run) == [("started", 0), ("cancelled", 0)]
        assert run.document["end_reason"] == "enough"
        assert env.cancel(run.id) is False  # already cancelled
        with pytest.raises(RunError, match="a cancel reason is a string"):
            env.cancel(run.id, reason=42)  # type: ignore[arg-type]
        # the environment goes on with the next run
        assert env.run(_retrying(), mocks={"work": success(None)}).status == "succeeded"


def test_a_cancel_asked_for_before_the_run_has_started_cancels_it_once_it_has() -> None:
    # Given an environment busy with a first run, and a second run waiting for its turn
    gate, started = threading.Event(), threading.Event()
    with LocalEnvironment() as env:
        first = env.start(_gated(gate, started), timeout=30)
        assert started.wait(10)
        second = env.start(_retrying(), mocks={"work": hang()}, timeout=30)

        # When the second is cancelled before its run document exists
        assert env.store.get_run(second.run_id) is None
        assert second.cancel("not today") is True
        gate.set()

        # Then it is cancelled as soon as it starts, and the first is not touched
        assert first.wait(30).status == "succeeded"
        run = second.wait(30)
        assert run.status == "cancelled"
        assert run.document["end_reason"] == "not today"
        assert _workflow_events(run) == [("started", 0), ("cancelled", 0)]


def test_cancelling_a_run_that_ended_otherwise_or_does_not_exist_is_an_error() -> None:
    from flowkit.errors import UnknownRun

    with LocalEnvironment() as env:
        run = env.run(_retrying(), mocks={"work": success(None)})
        with pytest.raises(RunError, match="already ended 'succeeded'"):
            env.cancel(run.id)
        with pytest.raises(UnknownRun):
            env.cancel("no-such-run")


# ---------------------------------------------------------------------- the fixture


def test_the_fixture_cancels_after_a_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        from datetime import timedelta

        from flowkit import Retry, job, workflow
        from flowkit.local import failure, success

        @job(name="work", retry=Retry(attempts=2, interval=timedelta(hours=1)))
        def work(event, context=None):
            return None

        @workflow(name="hourly")
        def hourly():
            return work

        def test_cancelled_while_the_retry_waits(flowkit_run):
            run = flowkit_run(hourly, mocks={"work": [failure("Flaky", "x"), success(1)]}, cancel_after=60)
            assert run.status == "cancelled"
            assert run.jobs["work"].state == "cancelled"
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")

    result.assert_outcomes(passed=1)


# ---------------------------------------------------------------------- flowkit run


GATED_FILE = """
import os, time
from pathlib import Path
from flowkit import job, workflow

HERE = Path(os.environ["GATE_DIR"])

@job(name="slow", timeout=120)
def slow(event, context=None):
    (HERE / "started").write_text("1")
    for _ in range(600):
        if (HERE / "open").exists():
            return {"slow": "done"}
        time.sleep(0.05)
    raise TimeoutError("the gate never opened")

@job(name="after", timeout=60)
def after(event, context=None):
    return None

@workflow(name="gated")
def gated():
    return slow >> after
"""


def _start_cli(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    (tmp_path / "gated.py").write_text(GATED_FILE)
    env = {**os.environ, "GATE_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "flowkit", "run", str(tmp_path / "gated.py"), "--display", "never", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_ctrl_c_cancels_the_run_lets_the_running_job_finish_and_shows_the_final_table(
    tmp_path: Path,
) -> None:
    process = _start_cli(tmp_path, "--json")
    _wait_for(tmp_path / "started", process)

    process.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the cancel is made while slow still runs
    assert process.poll() is None
    (tmp_path / "open").write_text("1")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 1, err
    assert "cancelling run gated-" in err and "Ctrl-C again to abort" in err
    document = json.loads(out)
    assert document["status"] == "cancelled"
    assert document["end_reason"] == "interrupted by Ctrl-C"
    assert {name: j["state"] for name, j in document["jobs"].items()} == {
        "slow": "succeeded",
        "after": "cancelled",
    }
    assert document["jobs"]["slow"]["output"] == {"slow": "done"}


def test_ctrl_c_shows_the_table_of_the_cancelled_run(tmp_path: Path) -> None:
    process = _start_cli(tmp_path)
    _wait_for(tmp_path / "started", process)

    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    (tmp_path / "open").write_text("1")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 1, err
    assert "run cancelled (interrupted by Ctrl-C)" in out
    assert "after" in out and "cancelled" in out


def test_a_second_ctrl_c_aborts_at_once(tmp_path: Path) -> None:
    process = _start_cli(tmp_path)
    _wait_for(tmp_path / "started", process)

    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "aborted: the run was left unfinished" in err
    assert "Traceback" not in err
    assert not (tmp_path / "open").exists()  # it did not wait for the job


RETRY_FILE = """
from datetime import timedelta
from flowkit import Retry, job, workflow

@job(name="work", retry=Retry(attempts=3, interval=timedelta(minutes=10)), timeout=60)
def work(event, context=None):
    raise ValueError("always")

@job(name="after", timeout=60)
def after(event, context=None):
    return None

@workflow(name="backoff")
def backoff():
    return work >> after
"""


@pytest.mark.parametrize(("after", "status", "attempts"), [("5m", "cancelled", 1), ("15m", "cancelled", 2)])
def test_cancel_after_on_the_virtual_clock_from_the_command_line(
    tmp_path: Path, after: str, status: str, attempts: int
) -> None:
    (tmp_path / "backoff.py").write_text(RETRY_FILE)
    command = [sys.executable, "-m", "flowkit", "run", str(tmp_path / "backoff.py"), "--clock", "virtual"]
    result = subprocess.run(
        [*command, "--cancel-after", after, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )

    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == status
    assert document["end_reason"] == f"cancel_after {float(after[:-1]) * 60:g}s"
    assert document["jobs"]["work"]["attempt"] == attempts
    assert document["jobs"]["work"]["state"] == "cancelled"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "expected a duration such as 90, 90s, 5m or 1.5h, got 'soon'"),
        ("5 minutes", "expected a duration such as 90, 90s, 5m or 1.5h, got '5 minutes'"),
        ("0s", "expected a duration of more than 0, got '0s'"),
    ],
)
def test_a_bad_cancel_after_is_a_usage_error(tmp_path: Path, value: str, message: str) -> None:
    (tmp_path / "backoff.py").write_text(RETRY_FILE)
    result = subprocess.run(
        [sys.executable, "-m", "flowkit", "run", str(tmp_path / "backoff.py"), f"--cancel-after={value}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert result.returncode == 2
    assert f"--cancel-after: {message}" in result.stderr
