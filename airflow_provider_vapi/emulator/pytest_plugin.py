"""pytest fixtures for testing against the bundled Vapi emulator (loaded through ``pytest11``).

Loaded in every pytest session where the package is installed, so it imports nothing heavy:
FastAPI/uvicorn are imported only when a fixture starts a server.

Fixtures:

``vapi_emulator_server`` (session)
    One emulator on a free loopback port in a background thread, at speed 20 (a whole call with
    analysis takes well under a second). Yields an :class:`~.client.EmulatorHandle`.

``vapi_emulator`` (function)
    The session server, reset (no calls, no recorded requests, no faults, start-up config) before
    the test. Yields the handle: ``.url``, ``.api_key``, ``.assistant_id``, ``.phone_number_id``,
    ``.requests(method=None, path=None)``, ``.fault(...)``, ``.faults([...])``, ``.configure(...)``,
    ``.calls()``, ``.call(id)``, ``.wait_for(id, ...)``, ``.reset()`` ...

``vapi_emulator_factory`` (function)
    ``factory(**options) -> EmulatorHandle`` starts a dedicated emulator with special start-up
    options (``concurrency_mode="reject"``, ``api_key=...``, ``state_file=...``, ``speed=...``);
    all are stopped after the test.

Outside fixtures: ``EmulatorServer(...)`` (thread) and ``EmulatorProcess(...)`` (subprocess) from
:mod:`airflow_provider_vapi.emulator.server` are context managers yielding the same handle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import EmulatorHandle


@pytest.fixture(scope="session")
def vapi_emulator_server() -> Iterator[EmulatorHandle]:
    """A session-wide emulator in a background thread (speed 20); stopped at session end."""
    from .server import EmulatorServer

    server = EmulatorServer()
    handle = server.start()
    try:
        yield handle
    finally:
        server.stop()


@pytest.fixture
def vapi_emulator(vapi_emulator_server: EmulatorHandle) -> EmulatorHandle:
    """The session emulator, reset to its seeds, faults cleared and config restored, per test."""
    vapi_emulator_server.reset()
    return vapi_emulator_server


@pytest.fixture
def vapi_emulator_factory() -> Iterator[Callable[..., EmulatorHandle]]:
    """Start dedicated emulators with special options: ``factory(concurrency_mode="reject")``."""
    from .server import EmulatorServer

    servers: list[EmulatorServer] = []

    def start(**options: Any) -> EmulatorHandle:
        server = EmulatorServer(**options)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
