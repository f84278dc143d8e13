"""The public authoring surface is small and pinned."""

from __future__ import annotations

import subprocess
import sys

import flowkit


def test_public_names_are_pinned() -> None:
    assert flowkit.__all__ == [
        "Defaults",
        "FlowkitError",
        "InvalidWorkflow",
        "Notify",
        "Retry",
        "always",
        "compile",
        "input",
        "job",
        "parallel",
        "sequence",
        "validate",
        "when",
        "workflow",
    ]


def test_every_public_name_resolves() -> None:
    for name in flowkit.__all__:
        assert getattr(flowkit, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        flowkit.nope  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("flowkit.nope resolved")


def test_validate_is_a_function_like_compile() -> None:
    from flowkit.compiler import compile, validate

    assert flowkit.validate is validate
    assert flowkit.compile is compile


def test_importing_flowkit_loads_neither_dsl_nor_networkx() -> None:
    code = (
        "import sys, flowkit, flowkit.errors, flowkit.document, flowkit.conditions; "
        "bad = [m for m in ('flowkit.dsl', 'flowkit.compiler', 'networkx') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
