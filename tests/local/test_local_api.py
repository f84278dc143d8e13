"""The public names of flowkit.local, pinned."""

from __future__ import annotations

import subprocess
import sys

import flowkit.local


def test_public_names() -> None:
    assert flowkit.local.__all__ == [
        "LocalEnvironment",
        "LocalRun",
        "LocalRunHandle",
        "Mocks",
        "Outcome",
        "RunLocation",
        "failure",
        "load_mock_file",
        "run_workflow",
        "success",
    ]
    for name in flowkit.local.__all__:
        assert getattr(flowkit.local, name) is not None


def test_importing_the_embedded_store_does_not_load_the_runner() -> None:
    code = "import sys, flowkit.local.embedded; print('flowkit.local.runner' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
