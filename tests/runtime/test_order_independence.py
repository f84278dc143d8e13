"""Order independence (issue item 8): whatever the delivery schedule, the run comes out right.

1. Hypothesis draws schedules over the real handlers, store and Reporter (embedded database): which
   pending envelope goes to which handler next, which in-flight invocation performs its next database
   operation (so handlers interleave *inside* their read/compare-and-set sequences), which dispatched
   job reports, duplicates of any delivery, and late re-deliveries of old ones.
   A few of those schedules also run against the wire server over TCP.
2. Real threads race through the handlers against a MongoDB wire-protocol server over TCP.
3. Several OS processes, each with its own MongoClient (like Lambda containers), share the work.

After every schedule: each job dispatched exactly once per attempt (so each join fired once), no
outcome lost, skipped branches skipped, the run ended exactly once with the right status and one
workflow-level end event, and no delivery was rejected. ``benchmarks/soak_order.py N`` runs
thousands of schedules on purpose.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from _harness import Delivery, Scenario, World, check_invariants, scenarios
from _stepper import SteppedDatabase, Stepper
from _timer_scenarios import TimerScenario, check_timer_invariants, finish, timer_scenarios
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowkit.local.clock import VirtualClock
from flowkit.local.embedded import embedded_database
from flowkit.runtime.start import start_run

SCENARIOS: dict[str, Scenario | TimerScenario] = {s.name: s for s in [*scenarios(), *timer_scenarios()]}
EXAMPLES = int(os.environ.get("FLOWKIT_ORDER_EXAMPLES", "20"))
HERE = Path(__file__).resolve().parent


class HypothesisChoices:
    """Schedule choices drawn by hypothesis (which can then shrink a failing schedule)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def choose(self, options: list[tuple[str, int]]) -> tuple[str, int]:
        choice: tuple[str, int] = self.data.draw(st.sampled_from(options))
        return choice

    def get_stuck(self) -> bool:
        return bool(self.data.draw(st.integers(0, 3)) == 0)


class RandomChoices:
    """Schedule choices from a seeded random generator (no shrinking; for soaks and quick searches)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, options: list[tuple[str, int]]) -> tuple[str, int]:
        return self.rng.choice(options)

    def get_stuck(self) -> bool:
        return self.rng.random() < 0.25


def run_schedule(
    scenario: Scenario | TimerScenario,
    choices: Any,
    *,
    duplicates: int = 6,
    max_steps: int = 5000,
    database: Any = None,
    controls: tuple[str, ...] = (),
) -> World:
    """Drive one run of ``scenario`` under the schedule ``choices`` makes and check the invariants.

    Besides picking what happens next, the schedule makes things *slow*: an invocation may get stuck
    before one of its database operations (a Lambda paused mid-handler), and a new delivery or
    dispatched job may be held back (late delivery). Slow things only go on when nothing else can, so
    everything else overtakes them: exactly the long pauses that expose decisions on stale snapshots,
    which uniform choices alone almost never produce.

    A ``TimerScenario`` runs on a virtual clock, and the schedule may also move the clock (``tick``)
    and fire the due timers (``sweep``: the timer handler, stepped like the others) at any point,
    repeatedly and late; at the end every timer is let fire (``finish``).

    ``controls`` (``"cancel"``, ``"redrive"``): operator actions the schedule may also take, each once,
    at any point (and interleaved, operation by operation, with the handlers); then the run is checked
    with ``check_control_invariants`` by the caller (``test_order_control.py``) instead of the
    scenario's expectations.
    """
    stepper = Stepper()
    timed = isinstance(scenario, TimerScenario)
    world = World(
        SteppedDatabase(embedded_database() if database is None else database, stepper),
        outcomes=scenario.outcomes,
        outputs=getattr(scenario, "outputs", {}),
        clock=VirtualClock() if timed else None,
        timers=timed,
    )
    ticks = sweeps = 12 if timed else 0
    run_id = "r-1"
    start_run(world.store, scenario.document, scenario.input, run_id=run_id)
    history: list[Delivery] = []
    budget = duplicates
    slow: set[Any] = set()  # stuck invocation ids, held deliveries (by id) and held jobs
    seen: set[Any] = set()
    done: set[str] = set()

    def maybe_slow(key: Any) -> None:
        if key not in seen:
            seen.add(key)
            if choices.get_stuck():
                slow.add(key)

    for _ in range(max_steps):
        ready = stepper.ready()
        for wid in ready:
            maybe_slow(("wid", wid, stepper.waiting.get(wid), stepper.steps.get(wid, 0)))
        work: list[tuple[tuple[str, int], Any]] = [
            (("step", wid), ("wid", wid, stepper.waiting.get(wid), stepper.steps.get(wid, 0)))
            for wid in ready
        ]
        for i, delivery in enumerate(world.deliveries):
            maybe_slow(("delivery", id(delivery)))
            work.append((("deliver", i), ("delivery", id(delivery))))
            if budget > 0:
                work.append((("duplicate", i), None))
        for i, dispatch in enumerate(world.pending_jobs()):
            maybe_slow(("job", dispatch))
            work.append((("job", i), ("job", dispatch)))
        if budget > 0:
            work += [(("late", i), None) for i in range(len(history))]
        if ticks > 0:
            work.append((("tick", 0), None))
        if sweeps > 0:
            work.append((("sweep", 0), None))
        work += [(("control", i), None) for i, name in enumerate(controls) if name not in done]
        options = [option for option, key in work if key not in slow]
        if not options:
            options = [option for option, _ in work]  # only slow things left: one of them goes on
        if not options:
            break
        action, index = choices.choose(options)
        if action == "step":
            stepper.step(index)
            continue
        if action == "tick":
            ticks -= 1
            world.clock.advance(getattr(scenario, "tick", 1.0))
            continue
        if action == "sweep":
            sweeps -= 1
            stepper.spawn("timer", world.fire_timers)
            continue
        if action == "job":
            dispatch = world.take_job(index)
            report = world.report_job if not controls else world.report_job_or_stale
            stepper.spawn("job", lambda d=dispatch, r=report: r(d))  # type: ignore[misc]
            continue
        if action == "control":
            done.add(controls[index])
            stepper.spawn(controls[index], lambda name=controls[index]: world.control(run_id, name))
            continue
        if action == "deliver":
            delivery = world.deliveries.pop(index)
            history.append(delivery)
        else:
            budget -= 1
            delivery = world.deliveries[index] if action == "duplicate" else history[index]
        stepper.spawn(delivery.handler, lambda d=delivery: world.deliver(d))
    else:
        raise AssertionError("the schedule did not finish")
    assert stepper.errors == [], stepper.errors
    if controls:
        if timed:
            finish(world, run_id)  # every timer fires, as the sweep schedule guarantees in production
        return world
    if isinstance(scenario, TimerScenario):
        finish(world, run_id)
        check_timer_invariants(world, scenario, run_id)
    else:
        check_invariants(world, scenario, run_id)
    return world


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_schedule_gives_the_same_run(name: str, data: Any) -> None:
    run_schedule(SCENARIOS[name], HypothesisChoices(data))


@pytest.mark.parametrize(
    "name",
    ["join", "skip-race", "handled-failure", "failure-not-handled", "always-waits-in-flight", "big-outputs"],
)
@settings(max_examples=max(2, EXAMPLES // 4), deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_schedules_over_tcp_give_the_same_run(wire_client: Any, name: str, data: Any) -> None:
    """The same stepped schedules against the wire server (each example in a fresh database)."""
    database = wire_client[f"flowkit_order_{uuid.uuid4().hex[:10]}"]
    try:
        run_schedule(SCENARIOS[name], HypothesisChoices(data), database=database)
    finally:
        wire_client.drop_database(database.name)


def test_the_harness_catches_a_handler_that_decides_on_a_stale_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The harness can fail: break rule 5 (a skip that returns the run as read *before* it, so the
    skipping handler may miss an outcome recorded meanwhile) and some schedule leaves the run hanging."""
    from flowkit.runtime import store as store_module

    def stale_skip(
        self: Any, run_id: str, job: str, attempt: int, *, at: Any = None, projection: Any = None
    ) -> Any:
        before = self.runs.find_one({"_id": run_id})
        result = self.runs.update_one(
            {
                "_id": run_id,
                "status": "running",
                f"jobs.{job}.state": "pending",
                f"jobs.{job}.attempt": attempt,
            },
            {"$set": {f"jobs.{job}.state": "skipped"}},
        )
        if not result.modified_count:
            return None
        before["jobs"][job]["state"] = "skipped"
        return before

    monkeypatch.setattr(store_module.Store, "skip", stale_skip)
    failures = 0
    for seed in range(300):  # a search budget: about 1 schedule in 100 exposes this bug
        try:
            run_schedule(SCENARIOS["skip-race"], RandomChoices(seed), duplicates=0)
        except AssertionError:
            failures += 1
            break
    assert failures == 1, "no schedule exposed the stale snapshot"


def test_the_harness_catches_failure_paths_skipped_without_compare_and_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failure-path schedules can fail: when the skips of a failed job's failure paths do not
    compare-and-set the ``left`` count they were decided on, two skips racing both see another path
    left, the failure never counts, and the run never ends."""
    from flowkit.runtime import store as store_module

    real = store_module.Store.skip

    def loose_skip(self: Any, *args: Any, require: Any = None, **kwargs: Any) -> Any:
        return real(self, *args, **kwargs)

    monkeypatch.setattr(store_module.Store, "skip", loose_skip)
    failures = 0
    for seed in range(300):  # a search budget
        try:
            run_schedule(SCENARIOS["failure-not-handled"], RandomChoices(seed))
        except AssertionError:
            failures += 1
            break
    assert failures == 1, "no schedule exposed the racing skips"


def test_the_harness_catches_an_always_job_started_while_a_need_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The always schedules can fail: when a claim does not count itself in its always dependents'
    ``waits``, a draining run starts its cleanup while a job it needs is still running."""
    from flowkit.runtime import engine

    monkeypatch.setattr(engine, "claim_increments", lambda plan, job, claimed=True: {})
    failures = 0
    for seed in range(100):
        try:
            run_schedule(SCENARIOS["always-waits-in-flight"], RandomChoices(seed))
        except AssertionError:
            failures += 1
            break
    assert failures == 1, "no schedule exposed the early cleanup"


def test_the_harness_catches_a_retry_claimed_without_compare_and_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer schedules can fail: a retry claim that does not check the job is still waiting at that
    attempt lets a duplicated or late sweep dispatch an attempt twice."""
    from pymongo import ReturnDocument

    from flowkit.runtime import store as store_module
    from flowkit.runtime.store import _run, _set_timer, job_path
    from flowkit.vocab import JobState, TimerKind

    def loose_claim(
        self: Any, run_id: str, job: str, attempt: int, *, at: Any, due: Any = None, projection: Any = None
    ) -> Any:
        prefix = job_path(job)
        update: dict[str, Any] = {
            "$set": {f"{prefix}.state": JobState.DISPATCHED, f"{prefix}.dispatched_at": at},
            "$inc": {f"{prefix}.attempt": 1},
        }
        if due is not None:
            _set_timer(update, prefix, due, TimerKind.ATTEMPT)
        found = self.runs.find_one_and_update(
            {"_id": run_id, "status": "running"},
            update,
            projection=projection,
            return_document=ReturnDocument.AFTER,
        )
        return _run(found)

    monkeypatch.setattr(store_module.Store, "claim_retry", loose_claim)
    failures = 0
    for seed in range(300):  # a search budget: about 1 schedule in 25 exposes this bug
        try:
            run_schedule(SCENARIOS["retry-then-succeed"], RandomChoices(seed))
        except AssertionError:
            failures += 1
            break
    assert failures == 1, "no schedule exposed the double dispatch"


# ---------------------------------------------------------------------- real threads over TCP


def race_threads(world: World, scenario: Scenario, *, threads: int, seed: int) -> None:
    """Worker threads take random work (deliveries, duplicates, job reports) until the run is quiet."""
    rng = random.Random(seed)
    rng_lock = threading.Lock()
    in_flight = 0
    errors: list[BaseException] = []
    cv = threading.Condition()

    def take() -> Any:
        nonlocal in_flight
        with cv:
            while True:
                with world.lock:
                    deliveries = len(world.deliveries)
                    jobs = len(world.dispatcher.dispatched) - world.executed
                    if deliveries or jobs:
                        with rng_lock:
                            pick = rng.randrange(deliveries + jobs)
                            duplicate = rng.random() < 0.2
                        in_flight += 1
                        if pick < deliveries:
                            delivery = world.deliveries[pick] if duplicate else world.deliveries.pop(pick)
                            return ("deliver", delivery)
                        return ("job", None)
                if in_flight == 0:
                    return None
                cv.wait(timeout=0.05)

    def worker() -> None:
        nonlocal in_flight
        while True:
            work = take()
            if work is None:
                return
            try:
                if work[0] == "deliver":
                    world.deliver(work[1])
                else:
                    pending = world.pending_jobs()
                    if pending:
                        world.report_job(world.take_job(rng.randrange(len(pending))))
            except BaseException as exc:
                errors.append(exc)
            finally:
                with cv:
                    in_flight -= 1
                    cv.notify_all()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    assert errors == [], errors


@pytest.mark.wire
@pytest.mark.parametrize(
    "name",
    [
        "join",
        "when-skip",
        "handled-failure",
        "failure-not-handled",
        "unhandled-failure",
        "always-after-failure",
        "nested",
    ],
)
def test_real_threads_race_over_tcp(wire_database: Any, name: str) -> None:
    scenario = SCENARIOS[name]
    for seed in range(3):
        world = World(wire_database, outcomes=scenario.outcomes, outputs=scenario.outputs)
        run_id = f"r-{seed}"
        start_run(world.store, scenario.document, scenario.input, run_id=run_id)
        race_threads(world, scenario, threads=8, seed=seed)
        check_invariants(world, scenario, run_id)


# ---------------------------------------------------------------------- OS processes


@pytest.mark.wire
def test_many_processes_share_the_work_like_lambda_containers(wire_server: Any, wire_database: Any) -> None:
    """Four processes, each with its own MongoClient, take deliveries and job reports from a queue
    collection (every delivery enqueued twice: at-least-once) until the run has ended and the queue is
    empty. Dispatches are written to a collection so that double dispatches would show."""
    scenario: Scenario = SCENARIOS["handled-failure"]
    world = World(wire_database)  # only to set up the collections and start the run
    world.store.on_status = None
    queue = wire_database["work_queue"]
    start_run(world.store, scenario.document, scenario.input, run_id="r-mp")
    queue.insert_many(
        [
            {"kind": "deliver", "handler": "orchestrator", "key": "r-mp/*/0/started", "r": n / 2}
            for n in range(2)
        ]
    )

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_worker.py"), wire_server.uri, wire_database.name, "charge", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    results = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], [r[1].decode()[-2000:] for r in results]

    run = world.store.get_run("r-mp")
    dispatches = [(d["job"], d["attempt"]) for d in wire_database["dispatches"].find({})]
    assert sorted(dispatches) == sorted(set(dispatches)), dispatches
    assert {name for name, _ in dispatches} == scenario.dispatched
    assert {name: j["state"] for name, j in run["jobs"].items()} == scenario.states
    assert (run["status"], run["phase"]) == (scenario.status, None)
    ends = [s for s in world.store.statuses.find({"run_id": "r-mp", "job": None}) if s["status"] != "started"]
    assert [e["status"] for e in ends] == ["success"]
    handled = sum(int(r[0].decode().split()[-1]) for r in results)
    assert handled >= 2 * len(scenario.dispatched)  # the work really was shared out and done
