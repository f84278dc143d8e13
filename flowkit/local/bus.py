"""The in-process event bus: the local stand-in for the Atlas trigger -> EventBridge -> Lambda path.

Every document inserted into ``statuses`` (the store calls ``EventBus.publish`` after the insert, where
the Atlas trigger would fire) becomes the same EventBridge envelope a Lambda receives, and is delivered
to the handlers the EventBridge rules route it to (``ROUTES``). Deliveries run on a worker pool, so
handlers run concurrently like Lambdas do. A handler that raises is retried a bounded number of times
(EventBridge -> Lambda asynchronous invocations retry twice); after that the delivery is recorded as a
``DeadLetter``.

With ``chaos=SEED`` a seeded scheduler makes delivery as unfriendly as the real thing is allowed to be:
each event reaches its handlers in a random order, after random delays (so events overtake each other),
and some deliveries are duplicated. The decisions for an event depend only on the seed and the event's
idempotency key, so a seed reproduces the same delivery plan for the same events.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from flowkit.local._activity import Activity
from flowkit.local._context import LambdaContext
from flowkit.local._pool import DaemonPool
from flowkit.vocab import OUTCOME_STATUSES, EventStatus

__all__ = ["HANDLERS", "DeadLetter", "Delivery", "EventBus", "routes"]

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
Envelope = Callable[[dict[str, Any]], dict[str, Any]]

HANDLERS: Final = ("statemachine_job", "orchestrator_job", "notifications_job")

# Retries after the first attempt, as for an asynchronous Lambda invocation.
DEFAULT_RETRIES: Final = 2

_OUTCOMES: Final = OUTCOME_STATUSES  # an attempt's outcome: success, failed, timed_out

# Chaos: probability that a delivery is duplicated, and the longest delay of a delivery, in seconds.
CHAOS_DUPLICATE: Final = 0.3
CHAOS_MAX_DELAY: Final = 0.02


def routes(status_doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The handlers the EventBridge rules deliver a status document to (docs/architecture.md)."""
    status = status_doc.get("status")
    if status_doc.get("job") is None:  # workflow-level
        if status == EventStatus.STARTED:
            return ("orchestrator_job", "notifications_job")
        return ("notifications_job",)
    if status in _OUTCOMES:
        return HANDLERS
    return ("notifications_job",)


@dataclass(frozen=True)
class Delivery:
    """One delivery of one event to one handler; the envelope travels as JSON text, as it does to Lambda."""

    handler: str
    envelope: str
    key: str
    attempt: int = 1


@dataclass(frozen=True)
class DeadLetter:
    """A delivery whose handler raised on every attempt."""

    handler: str
    key: str
    attempts: int
    error: str
    envelope: dict[str, Any]


class EventBus:
    """Delivers status documents to handlers; ``publish`` is the store's ``on_status`` hook."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        envelope: Envelope,
        *,
        workers: int = 8,
        retries: int = DEFAULT_RETRIES,
        retry_delay: float = 0.01,
        chaos: int | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        activity: Activity | None = None,
    ) -> None:
        unknown = set(handlers) - set(HANDLERS)
        if unknown:
            raise ValueError(f"unknown handlers {sorted(unknown)}; expected {list(HANDLERS)}")
        self._handlers = dict(handlers)
        self._envelope = envelope
        self._retries = retries
        self._retry_delay = retry_delay
        self._chaos = chaos
        self._on_event = on_event
        self._pool = DaemonPool(workers, "flowkit-bus")
        self._lock = threading.Condition()
        self.activity = activity or Activity()
        self._closed = False
        self._events: list[dict[str, Any]] = []
        self._dead: list[DeadLetter] = []
        self._delivered = 0
        # delayed deliveries: (due, sequence, delivery); served by one timer thread
        self._timers: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self._timer_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every status document published, in publication order."""
        with self._lock:
            return list(self._events)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead)

    @property
    def chaos(self) -> int | None:
        """The chaos seed of the deliveries planned from now on (None: in order, once each)."""
        return self._chaos

    @chaos.setter
    def chaos(self, seed: int | None) -> None:
        self._chaos = seed

    def pop_run(self, run_id: str) -> tuple[list[dict[str, Any]], list[DeadLetter]]:
        """Remove and return the events and dead letters of one run: a reused bus forgets finished runs."""
        prefix = f"{run_id}/"
        with self._lock:
            events = [doc for doc in self._events if doc.get("run_id") == run_id]
            dead = [letter for letter in self._dead if letter.key.startswith(prefix)]
            self._events = [doc for doc in self._events if doc.get("run_id") != run_id]
            self._dead = [letter for letter in self._dead if not letter.key.startswith(prefix)]
        return events, dead

    @property
    def deliveries(self) -> int:
        """Handler invocations made so far (retries and chaos duplicates included)."""
        with self._lock:
            return self._delivered

    def publish(self, status_doc: dict[str, Any]) -> None:
        """Route one inserted status document to its handlers (called right after the insert)."""
        # Each invocation decodes its own copy of the JSON, so no handler can see another's changes.
        envelope = json.dumps(self._envelope(status_doc), separators=(",", ":"))
        key = str(status_doc.get("key", ""))
        targets = [name for name in routes(status_doc) if name in self._handlers]
        plan: list[tuple[float, str]]
        plan = [(0.0, name) for name in targets] if self._chaos is None else self._chaos_plan(key, targets)
        with self._lock:
            if self._closed:
                logger.warning("event %s published after the bus closed; dropped", key)
                return
            self._events.append(status_doc)
            self.activity.add(len(plan))
        for delay, name in plan:
            self._schedule(Delivery(name, envelope, key), delay)
        if self._on_event is not None:
            self._on_event(status_doc)

    def close(self) -> None:
        """Stop accepting events, drop delayed deliveries, and wait for running handlers."""
        with self._lock:
            self._closed = True
            dropped = len(self._timers)
            self._timers.clear()
            self._lock.notify_all()
        self.activity.done(dropped)
        if dropped:
            logger.warning("bus closed with %d delayed deliveries not yet made", dropped)
        self._pool.shutdown(wait=True, timeout=10)
        if self._timer_thread is not None:
            self._timer_thread.join()

    # ------------------------------------------------------------------ delivery

    def _chaos_plan(self, key: str, targets: list[str]) -> list[tuple[float, str]]:
        rng = random.Random(f"{self._chaos}/{key}")
        order = list(targets)
        rng.shuffle(order)
        plan = []
        for name in order:
            plan.append((rng.uniform(0, CHAOS_MAX_DELAY), name))
            if rng.random() < CHAOS_DUPLICATE:
                plan.append((rng.uniform(0, CHAOS_MAX_DELAY * 3), name))
        return plan

    def _schedule(self, delivery: Delivery, delay: float) -> None:
        if delay <= 0:
            try:
                self._pool.submit(self._deliver, delivery)
            except RuntimeError:  # closed meanwhile
                logger.warning(
                    "delivery of %s to %s dropped: the bus is closed", delivery.key, delivery.handler
                )
                self.activity.done()
            return
        with self._lock:
            if self._closed:
                logger.warning(
                    "delivery of %s to %s dropped: the bus is closed", delivery.key, delivery.handler
                )
                self.activity.done()
                return
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._sequence), delivery))
            if self._timer_thread is None:
                self._timer_thread = threading.Thread(
                    target=self._timer_loop, name="flowkit-bus-timer", daemon=True
                )
                self._timer_thread.start()
            self._lock.notify_all()

    def _timer_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (not self._timers or self._timers[0][0] > time.monotonic()):
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._lock.wait(timeout)
                if self._closed:
                    return
                _, _, delivery = heapq.heappop(self._timers)
            self._schedule(delivery, 0)

    def _deliver(self, delivery: Delivery) -> None:
        handler = self._handlers[delivery.handler]
        context = LambdaContext(function_name=delivery.handler)
        retry = False
        try:
            handler(json.loads(delivery.envelope), context)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if delivery.attempt <= self._retries:
                logger.warning(
                    "%s failed on event %s (attempt %d), retrying: %s",
                    delivery.handler,
                    delivery.key,
                    delivery.attempt,
                    error,
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                retry = True
            else:
                logger.error(
                    "%s failed on event %s %d times; dead-lettered: %s\n%s",
                    delivery.handler,
                    delivery.key,
                    delivery.attempt,
                    error,
                    traceback.format_exc(),
                )
                with self._lock:
                    self._dead.append(
                        DeadLetter(
                            delivery.handler,
                            delivery.key,
                            delivery.attempt,
                            error,
                            json.loads(delivery.envelope),
                        )
                    )
        finally:
            with self._lock:
                self._delivered += 1
        if retry:
            again = Delivery(delivery.handler, delivery.envelope, delivery.key, delivery.attempt + 1)
            self.activity.add()
            self._schedule(again, self._retry_delay * delivery.attempt)
        self.activity.done()
