"""Mocked job outcomes for local runs, in the spirit of Step Functions Local's MockConfigFile.

A mock replaces a job's body (or stands in for a job that has none, such as a Lambda written in
another language). Per job it is a sequence of outcomes, one per attempt; past the end of the
sequence the last outcome repeats. An outcome is a success with an output or a failure with an error:

    {"jobs": {
        "charge":  [{"failure": {"type": "CardDeclined", "message": "insufficient funds"}}],
        "notify":  {"success": {"sent": true}},
        "archive": [{"failure": {"type": "Timeout"}}, {"success": null}],
        "export":  [{"hang": true}, {"success": {"rows": 3}}]
    }}

``{"hang": true}`` starts the attempt and never reports its outcome (a Lambda that died): the job's
timeout or heartbeat fires, and its retry policy applies. The outcomes are per attempt, so a list
drives retries: attempt n gets the n-th outcome.

On the command line, ``--mock JOB=@output.json`` or ``--mock JOB=<inline JSON>`` mocks a success
with that output. From Python, ``run_workflow(..., mocks={"charge": failure("CardDeclined")})``;
a mapping value is an ``Outcome``, a list of them, a callable body ``(event, context) -> output``,
or any other JSON value, taken as a success output.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError, model_validator

from flowkit._jsonarg import BadArgument, read_json_argument
from flowkit.document import JobError, WorkflowDocument
from flowkit.errors import InvalidMock

__all__ = [
    "MockFailure",
    "Mocks",
    "Outcome",
    "combine",
    "failure",
    "hang",
    "load_mock_file",
    "mocks_from",
    "parse_mock_option",
    "success",
]

Body = Callable[[dict[str, Any], Any], Any]


class MockFailure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    message: str = ""

    def to_error(self) -> JobError:
        return JobError(type=self.type, message=self.message)


class Outcome(BaseModel):
    """One attempt's mocked outcome: exactly one of ``success`` (the output), ``failure``, or
    ``hang`` (the job starts and then never reports, like a Lambda that died: its timeout fires)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    success: JsonValue = None
    failure: MockFailure | None = None
    hang: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Outcome:
        given = ["success" in self.model_fields_set, self.failure is not None, self.hang is not None]
        if sum(given) != 1:
            raise ValueError(
                "an outcome has exactly one key: 'success' (the output), "
                "'failure' ({'type': ..., 'message': ...}) or 'hang' (true)"
            )
        return self

    @property
    def failed(self) -> bool:
        return self.failure is not None


def success(output: Any = None) -> Outcome:
    """A mocked success with ``output`` (any JSON value)."""
    return Outcome(success=output)


def failure(type: str, message: str = "") -> Outcome:
    """A mocked failure with error ``type`` and ``message``."""
    return Outcome(failure=MockFailure(type=type, message=message))


def hang() -> Outcome:
    """A mocked attempt that starts and never reports (its job's timeout or heartbeat fires)."""
    return Outcome(hang=True)


@dataclass(frozen=True)
class Mocks:
    """Mocked outcomes (and replacement bodies) per job, with where each one came from."""

    outcomes: Mapping[str, tuple[Outcome, ...]] = field(default_factory=dict)
    bodies: Mapping[str, Body] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def __contains__(self, job: object) -> bool:
        return job in self.outcomes or job in self.bodies

    @property
    def jobs(self) -> list[str]:
        return sorted({*self.outcomes, *self.bodies})

    def outcome(self, job: str, attempt: int) -> Outcome:
        """The outcome of ``job`` at ``attempt`` (1-based); the last one repeats."""
        sequence = self.outcomes[job]
        return sequence[min(max(attempt, 1), len(sequence)) - 1]

    def merged(self, other: Mocks) -> Mocks:
        """These mocks overridden, job by job, by ``other``."""
        outcomes = {k: v for k, v in self.outcomes.items() if k not in other.bodies}
        bodies = {k: v for k, v in self.bodies.items() if k not in other.outcomes}
        return Mocks(
            outcomes={**outcomes, **other.outcomes},
            bodies={**bodies, **other.bodies},
            sources={**self.sources, **other.sources},
        )

    def check_jobs(self, document: WorkflowDocument) -> None:
        """Raise ``InvalidMock`` for every mocked job the workflow does not have."""
        known = [spec.name for spec in document.jobs]
        problems = []
        for job in self.jobs:
            if job in known:
                continue
            hint = difflib.get_close_matches(job, known, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (jobs: {', '.join(sorted(known))})"
            where = self.sources.get(job, "mocks")
            problems.append(f"{where}: job '{job}' is not in workflow '{document.name}'{suggestion}")
        if problems:
            raise InvalidMock("; ".join(problems), workflow=document.name)


def _field_errors(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        path = ".".join(str(p) for p in item["loc"])
        lines.append(f"field '{path}': {message}" if path else message)
    return list(dict.fromkeys(lines))


def _outcomes(job: str, value: Any, where: str) -> tuple[Outcome, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InvalidMock(f"{where}: job '{job}': the list of outcomes is empty", job=job)
    outcomes = []
    problems = []
    for position, item in enumerate(items, start=1):
        try:
            outcomes.append(Outcome.model_validate(item))
        except ValidationError as exc:
            problems += [
                f"{where}: job '{job}', outcome #{position} (attempt {position}): {line}"
                for line in _field_errors(exc)
            ]
    if problems:
        raise InvalidMock("; ".join(problems), job=job)
    return tuple(outcomes)


def load_mock_file(path: str | Path) -> Mocks:
    """Read and validate a mock file; errors name the file, the job and the outcome's position."""
    where = f"mock file {path}"
    try:
        raw, _ = read_json_argument(f"@{path}", where=where, file_where=where)
    except BadArgument as exc:
        raise InvalidMock(
            str(exc).replace(f"{where}: cannot read {path}:", f"{where}: cannot read it:")
        ) from exc
    shape = (
        '{"jobs": {"JOB": [{"success": <output>} or {"failure": {"type": ..., "message": ...}} '
        'or {"hang": true}, ...]}}'
    )
    if not isinstance(raw, dict) or not isinstance(raw.get("jobs"), dict):
        raise InvalidMock(f"{where}: expected an object like {shape}")
    if extra := sorted(set(raw) - {"jobs"}):
        raise InvalidMock(f"{where}: unknown top-level keys {extra}; expected {shape}")
    outcomes: dict[str, tuple[Outcome, ...]] = {}
    problems = []
    for job, value in raw["jobs"].items():
        try:
            outcomes[job] = _outcomes(job, value, where)
        except InvalidMock as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidMock("; ".join(problems))
    return Mocks(outcomes=outcomes, sources=dict.fromkeys(outcomes, where))


def parse_mock_option(option: str) -> Mocks:
    """``JOB=@output.json`` or ``JOB=<inline JSON>``: a success with that output, for every attempt."""
    job, sep, value = option.partition("=")
    job = job.strip()
    if not sep or not job:
        raise InvalidMock(f"--mock {option!r}: expected JOB=@output.json or JOB=<JSON>")
    try:
        output, source = read_json_argument(
            value, where=f"--mock {job}", file_where=f"--mock {job}=@{{path}}"
        )
    except BadArgument as exc:
        raise InvalidMock(str(exc), job=job) from exc
    return Mocks(outcomes={job: (success(output),)}, sources={job: source})


def mocks_from(value: Mocks | Mapping[str, Any] | None) -> Mocks:
    """The Python API's ``mocks=`` argument as ``Mocks``."""
    if value is None:
        return Mocks()
    if isinstance(value, Mocks):
        return value
    if not isinstance(value, Mapping):
        raise InvalidMock(f"mocks: expected a mapping of job name to outcome, got {type(value).__name__}")
    outcomes: dict[str, tuple[Outcome, ...]] = {}
    bodies: dict[str, Body] = {}
    for job, item in value.items():
        if isinstance(item, Outcome):
            outcomes[job] = (item,)
        elif _is_outcome_list(item):
            outcomes[job] = tuple(item)
        elif callable(item):
            bodies[job] = item
        else:
            try:
                outcomes[job] = (success(item),)
            except ValidationError as exc:
                raise InvalidMock(f"mocks: job '{job}': output is not JSON: {exc}", job=job) from exc
    return Mocks(outcomes=outcomes, bodies=bodies, sources=dict.fromkeys([*outcomes, *bodies], "mocks"))


def _is_outcome_list(item: Any) -> bool:
    return (
        isinstance(item, Sequence)
        and not isinstance(item, str)
        and bool(item)
        and all(isinstance(x, Outcome) for x in item)
    )


def combine(parts: Iterable[Mocks]) -> Mocks:
    """Later mocks override earlier ones, job by job."""
    result = Mocks()
    for part in parts:
        result = result.merged(part)
    return result
