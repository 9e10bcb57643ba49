"""pytest fixtures for testing against the bundled Vapi emulator (loaded through ``pytest11``).

Loaded in every pytest session where the package is installed, so it imports nothing heavy:
FastAPI/uvicorn are imported only when a fixture starts a server.

Fixtures:

``vapi_emulator_server`` (session)
    One emulator on a free loopback port in a background thread, at speed 20 (a whole call with
    analysis takes well under a second). Yields an :class:`~.client.EmulatorHandle`.

``vapi_emulator`` (function)
    The session server, reset (no calls, no recorded requests, no faults, start-up config) before
    the test. Yields the handle: ``.url``, ``.api_key``, ``.public_key`` (what a call's
    ``monitor.controlUrl`` wants when its assistant sets ``monitorPlan.controlAuthenticationEnabled``:
    send ``Authorization: Bearer <public_key>``), ``.assistant_id``, ``.phone_number_id``,
    ``.requests(method=None, path=None)``, ``.fault(...)``, ``.faults([...])``, ``.configure(...)``,
    ``.set_clock_offset(seconds)``,
    ``.calls()``, ``.call(id)``, ``.wait_for(id, ...)``, ``.reset()``,
    ``.create_structured_output(name, schema)``, ``.run_structured_output(call_ids, id)``,
    ``.inject_inbound_call(number, ...)``, ``.seed_calls(count, start, end, ...)``,
    ``.create_campaign(numbers, ...)``, ``.campaigns()``, ``.campaign(id)``,
    ``.campaign_contacts(id)``, ``.wait_for_campaign(id)`` ...

``vapi_emulator_factory`` (function)
    ``factory(**options) -> EmulatorHandle`` starts a dedicated emulator with special start-up
    options (``concurrency_mode="reject"``, ``api_key=...``, ``public_key=...``, ``state_file=...``,
    ``speed=...``, ``clock_offset=-120.0``: Vapi's clock two minutes behind the test's, every
    stamp and time filter on it; change it later with ``handle.set_clock_offset(seconds)``); all
    are stopped after the test.

Settings (``[tool.pytest.ini_options]`` / ``pytest.ini``) of the session server:
``vapi_emulator_request_log_size`` (requests its log keeps, default 10,000) and
``vapi_emulator_request_log_bytes`` (bytes of memory its entries hold, default 64 MiB; secrets
redacted; a request without a valid key is a line without its query or body). The admin API
(``/_emulator/...``) takes the handle's bearer key, as the Vapi routes do; the handle sends it.

Outside fixtures: ``EmulatorServer(...)`` (thread) and ``EmulatorProcess(...)`` (subprocess) from
:mod:`airflow_provider_vapi.emulator.server` are context managers yielding the same handle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import EmulatorHandle


_LOG_SETTINGS = {
    "request_log_size": ("vapi_emulator_request_log_size", "requests the session emulator's log keeps"),
    "request_log_bytes": (
        "vapi_emulator_request_log_bytes",
        "bytes of memory the session emulator's log entries hold",
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    """The session server's request-log bounds, as ini settings."""
    for name, help_text in _LOG_SETTINGS.values():
        parser.addini(name, help_text, default="")


def _log_options(config: pytest.Config) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for option, (name, _) in _LOG_SETTINGS.items():
        value = str(config.getini(name)).strip()
        if value:
            options[option] = int(value)
    return options


@pytest.fixture(scope="session")
def vapi_emulator_server(pytestconfig: pytest.Config) -> Iterator[EmulatorHandle]:
    """A session-wide emulator in a background thread (speed 20); stopped at session end."""
    from .server import EmulatorServer

    server = EmulatorServer(**_log_options(pytestconfig))
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
