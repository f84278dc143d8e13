"""``@workflow``: a named function that returns the composition of its jobs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from flowkit.dsl.job import Body, Job
from flowkit.dsl.nodes import Node, Parallel, Serial, When
from flowkit.dsl.options import Defaults, Duration, Notify, seconds

if TYPE_CHECKING:
    pass

__all__ = ["Workflow", "iter_jobs", "workflow"]


class Workflow:
    """A workflow definition. ``flowkit.compile(workflow)`` turns it into a ``WorkflowDocument``."""

    __slots__ = ("builder", "defaults", "description", "name", "notify", "timeout")

    def __init__(
        self,
        name: str,
        builder: Callable[[], Node],
        *,
        description: str | None = None,
        notify: Notify | None = None,
        defaults: Defaults | None = None,
        timeout: Duration | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a workflow name must be a str, got {name!r}")
        if notify is not None and not isinstance(notify, Notify):
            raise TypeError(f"workflow {name!r}: notify= must be a flowkit.Notify, got {notify!r}")
        if defaults is not None and not isinstance(defaults, Defaults):
            raise TypeError(f"workflow {name!r}: defaults= must be a flowkit.Defaults, got {defaults!r}")
        if description is not None and not isinstance(description, str):
            raise TypeError(f"workflow {name!r}: description= must be a str, got {description!r}")
        if not callable(builder):
            raise TypeError(f"@workflow decorates a function returning the composition, got {builder!r}")
        if description is None:
            doc = inspect.getdoc(builder)
            description = doc.strip().splitlines()[0] if doc else ""
        self.name = name
        self.builder = builder
        self.description = description
        self.notify = notify
        self.defaults = defaults or Defaults()
        self.timeout = seconds(timeout, what=f"workflow {name!r}: timeout=")

    def __repr__(self) -> str:
        return f"<Workflow {self.name}>"

    @property
    def module(self) -> str:
        """Module the workflow function is defined in."""
        return str(getattr(self.builder, "__module__", ""))

    def build(self) -> Node:
        """Call the workflow function and return its composition (TypeError if it is not one)."""
        root = self.builder()
        if not isinstance(root, Node):
            raise TypeError(
                f"workflow {self.name!r}: the function must return a job or a composition "
                f"(sequence, parallel, when, a >> b), got {root!r} ({type(root).__name__})"
            )
        return root

    def jobs(self) -> list[Job]:
        """Every job of the composition, in declaration order (a job used twice appears twice)."""
        return list(iter_jobs(self.build()))

    def bodies(self) -> dict[str, Body]:
        """Compiled job name -> Python body; body-less jobs are absent. Call as ``body(event, context)``."""
        return {j.name: j.fn for j in iter_jobs(self.build()) if j.fn is not None}


def iter_jobs(node: Node) -> Any:
    """Yield the jobs of a composition in declaration order."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Job):
            yield current
        elif isinstance(current, Serial | Parallel):
            stack.extend(reversed(current.items))
        elif isinstance(current, When):
            if current.otherwise is not None:
                stack.append(current.otherwise)
            stack.append(current.then)


@overload
def workflow(fn: Callable[[], Node], /) -> Workflow: ...
@overload
def workflow(
    *,
    name: str | None = None,
    description: str | None = None,
    notify: Notify | None = None,
    defaults: Defaults | None = None,
    timeout: Duration | None = None,
) -> Callable[[Callable[[], Node]], Workflow]: ...


def workflow(fn: Callable[[], Node] | None = None, /, **options: Any) -> Any:
    """Declare a workflow: ``@workflow(name="nightly-etl", notify=Notify(...), defaults=Defaults(...))``
    on a function that returns the composition. Bare ``@workflow`` names it after the function.
    ``timeout`` (seconds or timedelta): a run not ended this long after its start ends ``timed_out``.
    """
    if fn is not None:
        if options:
            raise TypeError("use @workflow(...) with options, or bare @workflow")
        return Workflow(fn.__name__, fn)

    def decorate(builder: Callable[[], Node]) -> Workflow:
        opts = dict(options)
        name = opts.pop("name", None)
        return Workflow(name if name is not None else builder.__name__, builder, **opts)

    return decorate
