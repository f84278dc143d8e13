"""Options of jobs and workflows: ``Retry``, ``Notify``, ``Defaults``, and duration parsing.

Types are checked when an option is created (a ``TypeError`` at the line that is wrong); value ranges
(a negative timeout, ``attempts=0``, ...) are reported by the validator together with every other
problem of the workflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from flowkit.vocab import DEFAULT_NOTIFY_ON

__all__ = ["Defaults", "Notify", "Retry", "seconds"]

Duration = int | float | timedelta


def seconds(value: object, *, what: str) -> float | None:
    """Seconds of a duration given as a number of seconds or a ``timedelta``; None stays None."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{what} must be seconds (int or float) or a datetime.timedelta, got {value!r}")


def _number(value: object, *, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{what} must be a number, got {value!r}")


@dataclass(frozen=True)
class Retry:
    """How often and how fast a failed job is retried: ``Retry(attempts=3, interval=2, backoff=2.0)``.

    ``attempts`` counts every try (1 = no retry); ``interval`` and ``max_delay`` are seconds or
    ``timedelta``. The wait before attempt n+1 is ``interval * backoff ** (n - 1)``, capped by
    ``max_delay``; ``jitter="full"`` waits a uniform random time between 0 and that. ``on`` lists the
    error types that are retried (default: all), ``not_on`` the ones that never are; a timed-out
    attempt has the error type ``"Timeout"`` (or ``"HeartbeatTimeout"``).
    """

    attempts: int = 3
    interval: Duration = 1.0
    backoff: float = 2.0
    max_delay: Duration | None = None
    jitter: str = "none"
    on: Sequence[str] | None = None
    not_on: Sequence[str] = ()

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"Retry(attempts=...) must be an int, got {self.attempts!r}")
        seconds(self.interval, what="Retry(interval=...)")
        seconds(self.max_delay, what="Retry(max_delay=...)")
        _number(self.backoff, what="Retry(backoff=...)")
        if not isinstance(self.jitter, str):
            raise TypeError(f"Retry(jitter=...) must be 'none' or 'full', got {self.jitter!r}")
        for attr in ("on", "not_on"):
            value = getattr(self, attr)
            if value is None:
                continue
            if isinstance(value, str) or not all(isinstance(e, str) for e in value):
                raise TypeError(f"Retry({attr}=...) must be a list of error type names, got {value!r}")
            object.__setattr__(self, attr, tuple(value))


@dataclass(frozen=True)
class Notify:
    """Where run and job events are announced (Slack channel and/or the generic webhook)."""

    slack_channel: str | None = None
    on: Sequence[str] = tuple(kind.value for kind in DEFAULT_NOTIFY_ON)
    mention: str | None = None
    webhook: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.on, str) or not all(isinstance(e, str) for e in self.on):
            raise TypeError(f"Notify(on=...) must be a list of event names, got {self.on!r}")
        object.__setattr__(self, "on", tuple(self.on))
        for attr in ("slack_channel", "mention"):
            value = getattr(self, attr)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Notify({attr}=...) must be a str, got {value!r}")


@dataclass(frozen=True)
class Defaults:
    """Workflow-wide defaults a job can override: target prefix, qualifier, timeout, retry.

    A job with a Python body and no ``target`` runs in the Lambda function ``function_prefix`` + its
    name in kebab case (``export_events`` -> ``etl-export-events``, see ``flowkit.naming``), or, when
    ``jobs_function`` is set, in that one function, which serves every body of the workflow through
    the job router (``flowkit.runtime.handlers.job_router``: the payload names the job).
    """

    function_prefix: str = ""
    qualifier: str | None = None
    timeout: Duration | None = None
    retry: Retry | None = None
    jobs_function: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.function_prefix, str):
            raise TypeError(f"Defaults(function_prefix=...) must be a str, got {self.function_prefix!r}")
        if self.qualifier is not None and not isinstance(self.qualifier, str):
            raise TypeError(f"Defaults(qualifier=...) must be a str, got {self.qualifier!r}")
        if self.jobs_function is not None and (
            not isinstance(self.jobs_function, str) or not self.jobs_function
        ):
            raise TypeError(
                f"Defaults(jobs_function=...) must be a function name, got {self.jobs_function!r}"
            )
        seconds(self.timeout, what="Defaults(timeout=...)")
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise TypeError(f"Defaults(retry=...) must be a flowkit.Retry, got {self.retry!r}")
