"""Jobs: ``@job`` on a Python body, or ``job("name", target=...)`` for a body-less Lambda.

A job body is ``def body(event, context=None)``: ``event`` is the dispatch payload
(``run_id, workflow, job, attempt, input, job_input, needs``) and the return value is the job's JSON
output. Calling a ``Job`` calls its body directly, so bodies are unit-testable as plain functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from inspect import CO_VARARGS
from types import FunctionType, MappingProxyType
from typing import Any, overload

from flowkit.dsl.expressions import Cond, Ref
from flowkit.dsl.nodes import Node
from flowkit.dsl.options import Duration, Retry, seconds
from flowkit.vocab import JobState, RunOn

__all__ = ["RUN_ON", "Body", "Job", "always", "job"]

Body = Callable[..., Any]
_OPTIONS = frozenset(
    {"timeout", "heartbeat", "retry", "input", "description", "target", "qualifier", "needs"}
)
RUN_ON = tuple(RunOn)
"""When a job may start: ``all_success`` (its needs succeeded, were skipped, or failed on a handled path)
or ``all_done`` (its needs finished in any state: ``always(job)``)."""
_FAILED = [JobState.FAILED.value, JobState.TIMED_OUT.value]


class Job(Node):
    """One unit of work. Immutable: ``named()`` returns a renamed copy."""

    __slots__ = (
        "description",
        "fn",
        "heartbeat",
        "input",
        "name",
        "needs",
        "qualifier",
        "retry",
        "run_on",
        "target",
        "timeout",
    )
    name: str
    fn: Body | None
    timeout: float | None
    heartbeat: float | None
    retry: Retry | None
    input: Mapping[str, Any]
    description: str
    target: str | None
    qualifier: str | None
    needs: tuple[str, ...]
    run_on: str

    def __init__(
        self,
        name: str,
        fn: Body | None,
        *,
        timeout: Duration | None = None,
        heartbeat: Duration | None = None,
        retry: Retry | None = None,
        input: Mapping[str, Any] | None = None,
        description: str | None = None,
        target: str | None = None,
        qualifier: str | None = None,
        needs: Sequence[str] = (),
        run_on: str = RunOn.ALL_SUCCESS,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a job name must be a str, got {name!r}")
        where = f"job {name!r}"
        if fn is not None:
            _check_signature(fn, name)
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"{where}: retry= must be a flowkit.Retry, got {retry!r}")
        if input is not None and not isinstance(input, Mapping):
            raise TypeError(f"{where}: input= must be a dict, got {input!r}")
        if isinstance(needs, str) or not all(isinstance(n, str) for n in needs):
            raise TypeError(f"{where}: needs= must be a list of job names, got {needs!r}")
        for attr, value in (("target", target), ("qualifier", qualifier), ("description", description)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{where}: {attr}= must be a str, got {value!r}")
        if run_on not in RUN_ON:
            raise ValueError(
                f"{where}: run_on= must be one of {', '.join(map(repr, RUN_ON))}, got {run_on!r}"
            )
        if description is None:
            doc = inspect.getdoc(fn) if fn is not None else None
            description = doc.strip().splitlines()[0] if doc else ""
        values: dict[str, Any] = {
            "name": name,
            "fn": fn,
            "timeout": seconds(timeout, what=f"{where}: timeout="),
            "heartbeat": seconds(heartbeat, what=f"{where}: heartbeat="),
            "retry": retry,
            "input": MappingProxyType(dict(input or {})),
            "description": description,
            "target": target,
            "qualifier": qualifier,
            "needs": tuple(needs),
            "run_on": RunOn(run_on),
        }
        for attr, value in values.items():
            object.__setattr__(self, attr, value)

    def named(self, name: str, **options: Any) -> Job:
        """A copy of this job under another name (to use the same body twice in a workflow).

        ``options`` (the same as ``@job``'s: ``input``, ``timeout``, ``target``, ...) replace the
        original's in the copy: ``shard.named("shard-07", input={"shard": 7})``.
        """
        unknown = set(options) - _OPTIONS
        if unknown:
            raise TypeError(f"job {self.name!r}: named() got unknown options {sorted(unknown)}")
        return self._replace(name=name, **options)

    def _replace(self, **changes: Any) -> Job:
        values: dict[str, Any] = {
            "name": self.name,
            "fn": self.fn,
            "timeout": self.timeout,
            "heartbeat": self.heartbeat,
            "retry": self.retry,
            "input": dict(self.input),
            "description": self.description,
            "target": self.target,
            "qualifier": self.qualifier,
            "needs": self.needs,
            "run_on": self.run_on,
        }
        values.update(changes)
        name, fn = values.pop("name"), values.pop("fn")
        return Job(name, fn, **values)

    def __call__(self, event: Any, context: Any = None) -> Any:
        if self.fn is None:
            if inspect.isfunction(event) and context is None:
                raise TypeError(
                    f"job({self.name!r}) declares a body-less job; to name a decorated function write "
                    f"@job(name={self.name!r})"
                )
            raise TypeError(f"job {self.name!r} has no Python body (it runs as {self.target!r})")
        return self.fn(event, context)

    def __repr__(self) -> str:
        return f"<Job {self.name}>"

    # references for conditions ----------------------------------------------------------------
    @property
    def output(self) -> Ref:
        """This job's output: ``extract.output["rows"] > 0``."""
        return Ref({"ref": ["jobs", self.name, "output"]})

    @property
    def status(self) -> Ref:
        """This job's state: ``"succeeded"``, ``"failed"``, ``"skipped"``, ..."""
        return Ref({"ref": ["jobs", self.name, "status"]})

    @property
    def succeeded(self) -> Cond:
        return self.status == JobState.SUCCEEDED.value

    @property
    def failed(self) -> Cond:
        """True when this job failed or timed out: a ``when`` on it is a handled failure path."""
        return self.status.is_in(_FAILED)

    @property
    def timed_out(self) -> Cond:
        """True when this job's last attempt timed out."""
        return self.status == JobState.TIMED_OUT.value

    @property
    def skipped(self) -> Cond:
        return self.status == JobState.SKIPPED.value

    @property
    def error(self) -> Ref:
        """This job's error once it failed (``error["message"]``); missing otherwise."""
        return Ref({"ref": ["jobs", self.name, "error"]})

    @property
    def error_type(self) -> Ref:
        """The type of this job's error once it failed: ``charge.error_type == "CardDeclined"``.

        For a Python body it is the exception's class name; a timed-out attempt's is ``Timeout``.
        Missing (so ``==`` is false) unless the job failed.
        """
        return Ref({"ref": ["jobs", self.name, "error", "type"]})

    def failed_with(self, *error_types: str) -> Cond:
        """True when this job failed with one of ``error_types``: ``charge.failed_with("CardDeclined")``."""
        if not error_types or not all(isinstance(t, str) and t for t in error_types):
            raise TypeError(
                f"job {self.name!r}: failed_with() takes one or more error type names, got {error_types!r}"
            )
        if len(error_types) == 1:
            return self.error_type == error_types[0]
        return self.error_type.is_in(list(error_types))


def _accepts_two_positionals(fn: Body) -> bool:
    """Fast path: whether a plain function (not wrapped, no ``__signature__``) accepts ``(None, None)``.

    Reads the code object instead of building an ``inspect.Signature`` (which was two thirds of
    building a large workflow). False means "not sure": the caller then asks ``inspect``.
    """
    if type(fn) is not FunctionType or hasattr(fn, "__wrapped__") or hasattr(fn, "__signature__"):
        return False
    code = fn.__code__
    positional = code.co_argcount
    required = positional - len(fn.__defaults__ or ())
    kwdefaults = fn.__kwdefaults__ or {}
    keyword_only = code.co_varnames[positional : positional + code.co_kwonlyargcount]
    if any(kw not in kwdefaults for kw in keyword_only):
        return False
    return required <= 2 and (positional >= 2 or bool(code.co_flags & CO_VARARGS))


def _check_signature(fn: Body, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"job {name!r}: the body must be a function, got {fn!r}")
    if _accepts_two_positionals(fn):
        return
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        signature.bind(None, None)
    except TypeError as exc:
        raise TypeError(
            f"job {name!r}: the body must accept (event, context=None), but {signature} does not: {exc}"
        ) from None


@overload
def job(fn: Body, /) -> Job: ...
@overload
def job(name: str, /, **options: Any) -> Job: ...
@overload
def job(*, name: str | None = None, **options: Any) -> Callable[[Body], Job]: ...


def job(fn_or_name: Body | str | None = None, /, *, name: str | None = None, **options: Any) -> Any:
    """Declare a job.

    - ``@job`` / ``@job(timeout=300, retry=Retry(...), input={...}, needs=[...])`` on a body
      ``def extract(event, context=None)``; the job is named after the function (or ``name=``).
    - ``job("charge-card", target="arn:aws:lambda:...:function:charge", qualifier="prod")``: a
      body-less job that runs an existing Lambda function.

    Options: ``timeout`` (seconds or timedelta, counted from the dispatch of each attempt),
    ``heartbeat`` (seconds or timedelta: an attempt silent this long times out), ``retry``, ``input`` (static JSON input),
    ``description``, ``target`` (function name or ARN), ``qualifier`` (alias/version), ``needs``
    (extra dependencies by job name).
    """
    if isinstance(fn_or_name, str):
        if name is not None:
            raise TypeError(f"job({fn_or_name!r}, name={name!r}): give the name once")
        return Job(fn_or_name, None, **options)
    if fn_or_name is not None:
        if name is not None or options:
            raise TypeError("use @job(...) with options, or bare @job")
        return Job(_fn_name(fn_or_name), fn_or_name)

    def decorate(fn: Body) -> Job:
        return Job(name if name is not None else _fn_name(fn), fn, **options)

    return decorate


def _fn_name(fn: Body) -> str:
    if isinstance(fn, Job):
        raise TypeError(f"{fn!r} is already a job")
    if not callable(fn):
        raise TypeError(f"@job decorates a function, got {fn!r}")
    return str(getattr(fn, "__name__", type(fn).__name__))


def always(job: Job) -> Job:
    """``job`` as a step that runs once its needs have finished, *whatever* their outcome.

    ``load >> always(cleanup)``: ``cleanup`` runs after ``load`` succeeded, failed, timed out or was
    skipped. It does not handle anything: if ``load`` failed, ``cleanup`` still runs and the run still
    ends ``failed`` (after ``cleanup`` finished). Airflow calls this trigger rule ``all_done``.
    """
    if not isinstance(job, Job):
        hint = " (decorate the function with @job)" if callable(job) else ""
        raise TypeError(f"always() takes one job, got {job!r} ({type(job).__name__}){hint}")
    return job._replace(run_on=RunOn.ALL_DONE)
