"""How large a run document can ever grow, computed from its workflow; refused over the bound.

Outputs and errors beyond ``vocab.INLINE_LIMIT`` live in the results collection, so what a run adds
to its document is bounded per job: its state and counters, its times and timer, one output or error
inline (or a reference), and one attempts-history entry per failed attempt its retry policy allows
(``Retry(attempts=m)``: at most m). The worst case of a run is then

    the new run document (configuration, input, every job pending)
    + for every job: the growth of its entry from pending to its worst (``job_growth(m)``)
    + the run's own fields at their worst (end time, cancel reason, redrive times, phase name)

and it must stay within ``vocab.RUN_DOCUMENT_BOUND`` (15 MiB: MongoDB's 16 MiB less a margin).
``Bound.of_run`` measures a new run document (``start_run`` refuses a run over the bound, nothing
written); ``start.config_problem`` the compiled document with an empty input (``flowkit compile`` /
``validate`` / ``run`` report it as a problem of the workflow); ``redrive_problem`` a run about to be
redriven (a redrive gives the jobs it resets a fresh retry budget, so their history can grow again).

Each size is measured by encoding a concrete worst-case entry with ``bson``, so the computation uses
the same encoder as the store. A field added to a job entry must be added to ``_worst_entry`` too:
``tests/runtime/test_run_bounds.py`` drives jobs to their worst and checks the bound holds.
Standard library and ``bson`` only (the starter Lambda imports it).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import bson

from flowkit.runtime.documents import pending_entry
from flowkit.vocab import (
    ERROR_MESSAGE_LIMIT,
    INLINE_LIMIT,
    RESULT_KINDS,
    RUN_DOCUMENT_BOUND,
    JobState,
    RunStatus,
    TimerKind,
)

__all__ = ["Bound", "job_growth", "redrive_problem", "timers_growth"]

_MIB: Final = 1024 * 1024
_DATE: Final = datetime(2026, 1, 1, tzinfo=UTC)  # every BSON date is 8 bytes
_DIGEST: Final = 24  # hex digits of a result reference's digest (flowkit.runtime.results)
_EMPTY_VALUE: Final = len(bson.encode({"v": ""}))  # BSON of {"v": ""}: 13 bytes


def _longest(words: Iterable[str]) -> str:
    return max((str(word) for word in words), key=len)


def _inline_filler() -> str:
    """A value whose ``{"v": value}`` is exactly ``INLINE_LIMIT`` bytes: the largest kept inline (an
    element's size depends only on that size, not on the value's type)."""
    return "x" * (INLINE_LIMIT - _EMPTY_VALUE)


def _ref(attempt: int) -> str:
    return f"{attempt}/{_longest(RESULT_KINDS)}/{'0' * _DIGEST}"


def _size(doc: Mapping[str, Any]) -> int:
    return len(bson.encode(doc))


def _initial_entry() -> Mapping[str, Any]:
    """A job entry as a new run has it (its size does not depend on ``unmet`` while it fits 32 bits)."""
    return pending_entry(0)


def _slot(kind: str, attempt: int) -> int:
    """The most an output (or error) and its reference can take in an entry: inline or referenced."""
    inline = _size({kind: _inline_filler(), f"{kind}_ref": None})
    referenced = _size({kind: None, f"{kind}_ref": _ref(attempt)})
    return max(inline, referenced)


@functools.lru_cache(maxsize=64)
def job_growth(max_attempts: int, top_attempt: int | None = None) -> int:
    """Bytes a job entry can grow from pending with ``max_attempts`` tries, numbered up to ``top_attempt``.

    Its worst: the longest state, every time and its timer set, the attempt counters as 64-bit
    integers, an output or error at ``INLINE_LIMIT`` (or its reference, whichever is larger; a job
    holds one of the two at a time), and ``max_attempts`` history entries each with such an error.
    """
    top = max(top_attempt if top_attempt is not None else max_attempts, 1)
    history = {
        "attempt": bson.Int64(top),
        "state": _longest(s.value for s in (JobState.FAILED, JobState.TIMED_OUT)),
        "error": _inline_filler(),
        "error_ref": None,
        "finished_at": _DATE,
    }
    history_ref = {**history, "error": None, "error_ref": _ref(top)}
    entry_of_history = max(_size(history), _size(history_ref))
    worst = {
        "state": _longest(s.value for s in JobState),
        "attempt": bson.Int64(top),
        "attempt_base": bson.Int64(top),
        "unmet": bson.Int64(0),
        "output": None,
        "error": None,
        "output_ref": None,
        "error_ref": None,
        "dispatched_at": _DATE,
        "started_at": _DATE,
        "finished_at": _DATE,
        "heartbeat_at": _DATE,
        "attempts": {},
        "due": _DATE,
        "timer": _longest(t.value for t in TimerKind),
    }
    slots = max(_slot(kind, top) for kind in RESULT_KINDS) - _size({"output": None, "output_ref": None})
    # each history entry: its key (the attempt number, as many digits as the largest) and its document
    history_bytes = max_attempts * (1 + len(str(top)) + 1 + entry_of_history)
    return _size(worst) + slots + history_bytes - _size(_initial_entry())


def _run_growth(config: Mapping[str, Any], initial: Mapping[str, Any]) -> int:
    """Bytes the run's own fields can add: end, cancel reason, redrive, draining, timers, phase name."""
    phases = [
        str(phase.get("name", "")) for phase in config.get("phases") or () if isinstance(phase, Mapping)
    ]
    fields = (
        "status",
        "phase",
        "phase_index",
        "remaining",
        "unhandled",
        "ended_at",
        "end_reason",
        "redrive_count",
        "redriven_at",
        "redrive_deadline",
        "deadline",
        "timer_seq",
        "next_due_ms",
        "draining",
        "released",
        "unrunnable_done",
    )
    before = {name: initial[name] for name in fields if name in initial}
    worst = {
        "status": _longest(s.value for s in RunStatus),
        "phase": _longest(phases) if phases else None,
        "phase_index": bson.Int64(0),
        "remaining": bson.Int64(0),
        "unhandled": bson.Int64(0),
        "ended_at": _DATE,
        # a cancel reason is stored cut to ERROR_MESSAGE_LIMIT characters, at most 4 UTF-8 bytes each
        "end_reason": "\U0001f600" * ERROR_MESSAGE_LIMIT,
        "redrive_count": bson.Int64(0),
        "redriven_at": _DATE,
        "redrive_deadline": _DATE,
        "deadline": _DATE,
        "timer_seq": bson.Int64(0),
        "next_due_ms": bson.Int64(0),
        "draining": True,
        "released": bson.Int64(0),
        "unrunnable_done": f"{2**63 - 1}:{2**63 - 1}",
    }
    return max(_size(worst) - _size(before), 0)


def timers_growth(names: Iterable[str], present: Mapping[str, Any]) -> int:
    """Bytes the run's ``timers`` map can add: an entry (a date) for each job of ``names`` not in
    ``present`` (the map as it is)."""
    return sum(2 + len(name.encode()) + 8 for name in names if name not in present)


def _attempts(spec: Mapping[str, Any]) -> int:
    retry = spec.get("retry") or {}
    try:
        return max(int(retry.get("max_attempts", 1)), 1)
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True)
class Bound:
    """A run document's size when it starts and the most it can grow, in bytes."""

    workflow: str
    jobs: int
    initial: int
    growth: int
    config: int
    input: int
    max_attempts: int

    @property
    def total(self) -> int:
        return self.initial + self.growth

    @property
    def over(self) -> bool:
        return self.total > RUN_DOCUMENT_BOUND

    @classmethod
    def of_run(cls, run: Mapping[str, Any]) -> Bound:
        """The bound of a new run document (as ``start.new_run_document`` makes it).

        Its size is computed without encoding it whole: the configuration once, the rest of the run
        with an empty configuration and jobs map, and the jobs map from one entry's size (every job
        starts with the same entry; only its name differs).
        """
        jobs = run.get("jobs") or {}
        rest = {key: value for key, value in run.items() if key not in ("config", "jobs")}
        return cls.of_parts(rest, run.get("config") or {}, list(jobs))

    @classmethod
    def of_parts(cls, rest: Mapping[str, Any], config: Mapping[str, Any], names: list[str]) -> Bound:
        """The bound of a new run with fields ``rest`` (all but ``config`` and ``jobs``), configuration
        ``config`` and one pending entry per name of ``names``."""
        entry = _size(_initial_entry())
        specs = [spec for spec in config.get("jobs") or () if isinstance(spec, Mapping)]
        attempts = [_attempts(spec) for spec in specs]
        config_size = _size(config)
        jobs_size = 5 + sum(2 + len(name.encode()) + entry for name in names)
        # an empty document is 5 bytes: the real ones replace those
        initial = _size({**rest, "config": {}, "jobs": {}}) + config_size - 5 + jobs_size - 5
        return cls(
            workflow=str(rest.get("workflow") or config.get("name")),
            jobs=len(specs),
            initial=initial,
            growth=sum(job_growth(m) for m in attempts)
            + _run_growth(config, rest)
            + timers_growth(names, {}),
            config=config_size,
            input=_size(rest.get("input") or {}),
            max_attempts=max(attempts, default=1),
        )

    def message(self, *, what: str = "a run document") -> str:
        return (
            f"workflow {self.workflow!r}: {what} could grow to {self.total / _MIB:.1f} MiB "
            f"({self.initial / _MIB:.1f} MiB when it starts: {self.jobs} jobs, configuration "
            f"{self.config / _MIB:.1f} MiB, input {self.input / _MIB:.1f} MiB; then up to "
            f"{self.growth / _MIB:.1f} MiB as its jobs run: states, times, outputs and errors of up to "
            f"{INLINE_LIMIT} bytes kept inline, and the attempt history of up to {self.max_attempts} "
            f"attempts per job), over the {RUN_DOCUMENT_BOUND / _MIB:.0f} MiB a run document may reach "
            "(MongoDB's 16 MiB less a 1 MiB margin): split the workflow, allow fewer Retry attempts, "
            "or pass large data by reference (an S3 key) instead of in the input"
        )


def redrive_problem(run: Mapping[str, Any], names: Iterable[str]) -> str | None:
    """Why redriving ``run`` (resetting the jobs ``names``, each with a fresh retry budget) could take
    its document past the bound: it has now what it has, plus what those jobs can add again."""
    names = list(names)
    config = run.get("config") or {}
    specs = {spec.get("name"): spec for spec in config.get("jobs") or () if isinstance(spec, Mapping)}
    now = _size(run)
    growth = 0
    for name in names:
        job = run["jobs"].get(name) or {}
        m = _attempts(specs.get(name) or {})
        growth += job_growth(m, int(job.get("attempt") or 0) + m)
    total = now + growth + _run_growth(config, run) + timers_growth(run["jobs"], run.get("timers") or {})
    if total <= RUN_DOCUMENT_BOUND:
        return None
    return (
        f"run {run.get('_id')!r} cannot be redriven: its document is {now / _MIB:.1f} MiB and the "
        f"{len(names)} jobs a redrive runs again could add up to {(total - now) / _MIB:.1f} "
        f"MiB, over the {RUN_DOCUMENT_BOUND / _MIB:.0f} MiB a run document may reach: start a new run instead"
    )
