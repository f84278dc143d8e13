"""The command line's exit codes: one table for every subcommand, applied in ``flowkit.cli.main``.

    0  done: what was asked for happened (the run succeeded, the files are up to date, ...)
    1  what was asked for failed: the run failed, compiled files drifted, the workflow is invalid,
       MongoDB could not be reached, a diagram could not be rendered
    2  usage or bad input: unknown option or TARGET, bad JSON, a bad mock, missing configuration
  130  ``flowkit run`` aborted by a second Ctrl-C (the first cancels the run; ``cli._run.ABORTED``)

A subcommand returns 0 or ``FAILED`` for outcomes it reports itself (a failed run, drift) and raises a
``FlowkitError`` for everything else; ``exit_code`` maps the exception to its code by the first class
of its MRO found in ``EXIT_CODES``. A new kind of error gets its code by adding one line there.
"""

from __future__ import annotations

from typing import Final

from flowkit.errors import (
    BadArgument,
    ConfigError,
    FlowkitError,
    InvalidMock,
    LoadError,
    MissingDependency,
)

__all__ = ["EXIT_CODES", "FAILED", "OK", "USAGE", "exit_code"]

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2

EXIT_CODES: Final[dict[type[BaseException], int]] = {
    LoadError: USAGE,
    BadArgument: USAGE,
    InvalidMock: USAGE,
    ConfigError: USAGE,
    MissingDependency: USAGE,
    FlowkitError: FAILED,  # InvalidWorkflow, RunError, StoreError, RenderError, ...
}


def exit_code(error: BaseException) -> int:
    """The exit code of an error that ended a command (``FAILED`` for one the table does not name)."""
    for cls in type(error).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return FAILED
