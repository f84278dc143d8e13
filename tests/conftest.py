"""Database fixtures shared by the whole suite.

- ``database``: an embedded in-process database (``flowkit.local.embedded``), fresh per test. Fast.
- ``wire_database``: a database reached over TCP through pymongo. By default an ``nx-27017 --db memory``
  server (a MongoDB wire-protocol server) started once per session on a free 127.0.0.1 port; when
  ``FLOWKIT_TEST_MONGO_URI`` is set, that real MongoDB instead. Each test gets its own database, dropped
  afterwards. Tests using it are marked ``wire``.
- ``any_database``: both of the above (parametrized), for behaviour that must hold on every backend.

Collection names over the wire use underscores (``state_machines``): nx-27017 rejects hyphens.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MONGO_URI_ENV = "FLOWKIT_TEST_MONGO_URI"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_accepting(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"nx-27017 exited with {process.returncode}; log:\n{log.read_text(errors='replace')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nx-27017 did not accept connections on port {port} within {timeout}s")


class WireServer:
    """Where the over-the-wire tests connect, and what kind of server it is."""

    def __init__(self, uri: str, *, stand_in: bool) -> None:
        self.uri = uri
        self.stand_in = stand_in  # True for nx-27017, False for a real MongoDB

    def client(self, **kwargs: Any) -> Any:
        import pymongo

        options: dict[str, Any] = {"serverSelectionTimeoutMS": 5000, "tz_aware": True}
        options.update(kwargs)
        return pymongo.MongoClient(self.uri, **options)


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireServer]:
    """A MongoDB wire-protocol server for the session: ``FLOWKIT_TEST_MONGO_URI`` or an nx-27017."""
    real = os.environ.get(MONGO_URI_ENV)
    if real:
        yield WireServer(real, stand_in=False)
        return
    folder = tmp_path_factory.mktemp("nx27017")
    port = _free_port()
    log = folder / "server.log"
    command = [
        sys.executable,
        "-c",
        "import sys; from nx_27017.nx_27017 import main; sys.exit(main())",
    ]
    command += ["--db", "memory", "-p", str(port), "--log-file", str(log), "--pid-file", str(folder / "pid")]
    with open(folder / "stdout.log", "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_accepting(port, process, log)
        yield WireServer(f"mongodb://127.0.0.1:{port}/?directConnection=true", stand_in=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def wire_client(wire_server: WireServer) -> Iterator[Any]:
    client = wire_server.client()
    yield client
    client.close()


@pytest.fixture
def wire_database(wire_client: Any) -> Iterator[Any]:
    """A fresh database on the wire server (dropped after the test)."""
    name = f"flowkit_test_{uuid.uuid4().hex[:12]}"
    database = wire_client[name]
    yield database
    wire_client.drop_database(name)


@pytest.fixture
def database() -> Any:
    """A fresh embedded in-process database."""
    from flowkit.local.embedded import embedded_database

    return embedded_database(f"flowkit_test_{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["embedded", "wire"])
def any_database(request: pytest.FixtureRequest) -> Any:
    """The same test on the embedded database and over the wire."""
    if request.param == "embedded":
        return request.getfixturevalue("database")
    return request.getfixturevalue("wire_database")


def pytest_configure(config: pytest.Config) -> None:
    # When a hypothesis test fails, hypothesis imports libcst to suggest an @example patch; libcst
    # triggers a DeprecationWarning from mypy_extensions, which `filterwarnings = error` would turn
    # into an INTERNALERROR hiding the real failure report.
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )


_WIRE_FIXTURES = frozenset({"wire_server", "wire_client", "wire_database"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that talks to the wire server ``wire``, so ``-m "not wire"`` skips them all."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        over_wire = bool(fixtures & _WIRE_FIXTURES) or (
            callspec is not None and callspec.params.get("any_database") == "wire"
        )
        if over_wire:
            item.add_marker(pytest.mark.wire)
