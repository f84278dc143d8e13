"""What a person sees while a local run goes: a live table of jobs, then a summary (rich).

``LiveDisplay`` redraws a few times a second from the stored run document (the same document a
production run has), showing every job's state, attempt and elapsed time. ``render_summary`` is the
final table plus where the run document is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from flowkit.errors import MissingDependency
from flowkit.vocab import JobState, RunStatus

if TYPE_CHECKING:
    from flowkit.local.result import LocalRun

__all__ = ["LiveDisplay", "render_summary"]

STYLES: Final[Mapping[str, str]] = {
    JobState.PENDING: "dim",
    JobState.DISPATCHED: "cyan",
    JobState.RUNNING: "bold cyan",
    JobState.WAITING: "blue",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "bold red",
    JobState.SKIPPED: "yellow",
    JobState.TIMED_OUT: "red",
    JobState.CANCELLED: "magenta",
}
_ACTIVE: Final = (JobState.RUNNING, JobState.DISPATCHED, JobState.WAITING, JobState.FAILED, JobState.PENDING)
_MAX_LIVE_ROWS: Final = 30


def _rich() -> Any:
    try:
        import rich.console
        import rich.live
        import rich.table
    except ImportError as exc:  # pragma: no cover - rich is in the 'local' extra
        raise MissingDependency(
            "the local run display needs rich: python -m pip install 'flowkit[local]'"
        ) from exc
    return rich


def _aware(moment: Any) -> datetime | None:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if not isinstance(moment, datetime):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def job_elapsed(job: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from start (or dispatch, before it started) to finish, or to ``now`` while in flight."""
    begin = _aware(job.get("started_at")) or _aware(job.get("dispatched_at"))
    if begin is None:
        return None
    end = _aware(job.get("finished_at")) or now or datetime.now(UTC)
    return max(0.0, (end - begin).total_seconds())


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _state(job: Mapping[str, Any]) -> str:
    state = job.get("state", JobState.PENDING)
    return str(getattr(state, "value", state))


def attempts_text(job: Mapping[str, Any], max_attempts: int = 1) -> str:
    """The attempt column: ``2/3`` (attempts used of the retry policy's), ``2`` without retries.

    After a redrive the budget counts from it: ``4 (1/3)`` is attempt 4, the first of 3 since then.
    """
    attempt = int(job.get("attempt") or 0)
    base = int(job.get("attempt_base") or 0)
    if base:
        return f"{attempt} ({attempt - base}/{max_attempts})"
    return f"{attempt}/{max_attempts}" if max_attempts > 1 else str(attempt)


def _max_attempts(config: Mapping[str, Any] | None) -> dict[str, int]:
    specs = (config or {}).get("jobs") or ()
    return {
        spec["name"]: int((spec.get("retry") or {}).get("max_attempts") or 1)
        for spec in specs
        if isinstance(spec, Mapping) and "name" in spec
    }


def _detail(job: Mapping[str, Any], state: str, room: int) -> str:
    error = job.get("error")
    detail = f"{error.get('type')}: {error.get('message')}" if isinstance(error, Mapping) else ""
    if state == JobState.WAITING:
        due = _aware(job.get("due"))
        when = f"retry at {due:%H:%M:%S}" if due is not None else "waiting to retry"
        detail = f"{when} after {detail}" if detail else when
    if not detail and job.get("output") is not None:
        detail = _short(job.get("output"), room)
    if not detail and (job.get("output_ref") or job.get("error_ref")):
        # too big to keep in the run document: the live table does not fetch it (the summary does)
        detail = "(in the results collection)"
    return detail if len(detail) <= room else detail[: room - 1] + "…"


def _table(
    jobs: Mapping[str, Mapping[str, Any]],
    *,
    title: str,
    live: bool,
    width: int = 100,
    config: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Any:
    rich = _rich()
    table = rich.table.Table(title=title, title_justify="left", expand=False)
    widest = max((len(name) for name in jobs), default=3)
    table.add_column("job", no_wrap=True, min_width=min(widest, 40))
    table.add_column("state", no_wrap=True, min_width=10)
    table.add_column("attempt", justify="right", no_wrap=True, min_width=7)
    table.add_column("elapsed", justify="right", no_wrap=True, min_width=8)
    table.add_column("output / error", overflow="ellipsis", no_wrap=True, min_width=10)
    # what is left of the line for outputs and errors: cut them there rather than wrap the table
    room = max(10, width - min(widest, 40) - 10 - 7 - 8 - 16)
    names = list(jobs)
    if live and len(names) > _MAX_LIVE_ROWS:
        # show what is moving first, then whatever fits
        names.sort(key=lambda n: _ACTIVE.index(s) if (s := _state(jobs[n])) in _ACTIVE else len(_ACTIVE))
    shown = names[:_MAX_LIVE_ROWS] if live else names
    now = now or datetime.now(UTC)
    max_attempts = _max_attempts(config)
    for name in shown:
        job = jobs[name]
        state = _state(job)
        table.add_row(
            name,
            f"[{STYLES.get(state, '')}]{state}[/]",
            attempts_text(job, max_attempts.get(name, 1)),
            _seconds(job_elapsed(job, now)),
            _detail(job, state, room),
        )
    if len(shown) < len(names):
        counts: dict[str, int] = {}
        for name in names:
            counts[_state(jobs[name])] = counts.get(_state(jobs[name]), 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        table.caption = f"{len(names) - len(shown)} more jobs not shown ({summary})"
    return table


class LiveDisplay:
    """A live table redrawn from ``fetch()`` (the current run document, or None before it exists).

    ``clock``: the run's clock (a virtual one too), for the elapsed time of jobs in flight.
    """

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any] | None],
        *,
        console: Any = None,
        refresh_per_second: float = 4,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        rich = _rich()
        self._fetch = fetch
        self._clock = clock
        self.console = console or rich.console.Console()
        self._live = rich.live.Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=True,
        )

    def _render(self) -> Any:
        run = self._fetch()
        if run is None:
            return "starting…"
        title = f"{run.get('workflow', '')} {run.get('_id', '')} — {run.get('status', '')}"
        return _table(
            run.get("jobs", {}),
            title=title,
            live=True,
            width=self.console.width,
            config=run.get("config"),
            now=self._clock() if self._clock is not None else None,
        )

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()


def render_summary(run: LocalRun, console: Any = None) -> None:
    """Print the final table of jobs, the run's outcome, and where the run document is."""
    rich = _rich()
    console = console or rich.console.Console()
    document = run.document
    status = str(document["status"])
    title = f"{run.run.workflow} — run {status} in {run.elapsed:.2f}s"
    console.print(
        _table(document["jobs"], title=title, live=False, width=console.width, config=document.get("config"))
    )
    if run.dead_letters:
        console.print(f"[bold red]{len(run.dead_letters)} dead-lettered deliveries:[/]")
        for letter in run.dead_letters:
            console.print(
                f"  {letter.handler} on {letter.key} after {letter.attempts} attempts: {letter.error}",
                highlight=False,
                soft_wrap=True,
            )
    style = "green" if status == RunStatus.SUCCEEDED else "bold red"
    reason = document.get("end_reason")
    why = f" ({reason})" if reason else ""
    console.print(
        f"[{style}]run {status}[/]{why} — run document: {run.location}", highlight=False, soft_wrap=True
    )
