"""Running an emulator: in a background thread (:class:`EmulatorServer`) or as a subprocess
(:class:`EmulatorProcess`). Both give an :class:`~.client.EmulatorHandle`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from .client import EmulatorHandle
from .constants import (
    DEFAULT_ANALYSIS_DELAY_S,
    DEFAULT_API_KEY,
    DEFAULT_CONCURRENCY_LIMIT,
    DEFAULT_HOST,
    DEFAULT_PRESIGNED_URL_TTL_S,
    DEFAULT_PUBLIC_KEY,
    DEFAULT_REQUEST_LOG_BYTES,
    DEFAULT_REQUEST_LOG_SIZE,
    DEFAULT_STRUCTURED_OUTPUT_DELAY_S,
)

#: The speed the test helpers default to: a whole call with analysis in well under a second.
TEST_SPEED = 20.0
URL_LINE_PREFIX = "Vapi emulator listening on "


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``port=0``: a free one), bound before uvicorn starts so the real
    address is known at once and a restart can reuse the port.

    Made with ``IPPROTO_TCP`` and ``TCP_NODELAY``: asyncio turns Nagle's algorithm off only on
    sockets whose ``proto`` says TCP, and with it on, each response (headers, then body) waited for
    the client's delayed ACK: 44 ms a request instead of 3 ms, without uvloop.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def socket_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_runtime(
    *,
    api_key: str = DEFAULT_API_KEY,
    public_key: str = DEFAULT_PUBLIC_KEY,
    speed: float = 1.0,
    concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT,
    concurrency_mode: str = "queue",
    analysis_delay: float = DEFAULT_ANALYSIS_DELAY_S,
    structured_output_delay: float = DEFAULT_STRUCTURED_OUTPUT_DELAY_S,
    state_file: str | Path | None = None,
    fault_rates: Iterable[tuple[str, float]] = (),
    fault_match: str = "*",
    fault_seed: int | None = None,
    request_log_size: int = DEFAULT_REQUEST_LOG_SIZE,
    request_log_bytes: int = DEFAULT_REQUEST_LOG_BYTES,
    presigned_url_ttl: float = DEFAULT_PRESIGNED_URL_TTL_S,
    clock_offset: float = 0.0,
) -> Any:
    """A :class:`~.runtime.Runtime` from start-up options (imported only when serving).
    ``clock_offset``: seconds Vapi's clock is ahead of this machine's (negative: behind)."""
    from .engine import Engine, EngineConfig
    from .faults import FaultBook
    from .runtime import Runtime

    config = EngineConfig(
        api_key=api_key,
        public_key=public_key,
        speed=speed,
        concurrency_limit=concurrency_limit,
        concurrency_mode=concurrency_mode,
        analysis_delay_s=analysis_delay,
        structured_output_delay_s=structured_output_delay,
        request_log_size=request_log_size,
        request_log_bytes=request_log_bytes,
        presigned_url_ttl_s=presigned_url_ttl,
        clock_offset_s=clock_offset,
    )
    faults = FaultBook(seed=fault_seed)
    method, _, path = fault_match.strip().partition(" ")
    if not path:
        method, path = ("*", method) if method.startswith("/") else (method or "*", "*")
    for action, rate in fault_rates:
        faults.add({"action": action, "rate": rate, "method": method, "path": path})
    return Runtime(Engine(config, str(state_file) if state_file else None), faults)


class _Running(ABC):
    """What both ways of running share: the handle once started, and use as a context manager."""

    _NOT_RUNNING = "the emulator is not running"

    def __init__(self) -> None:
        self._handle: EmulatorHandle | None = None

    @property
    def handle(self) -> EmulatorHandle:
        """The handle of the running emulator."""
        if self._handle is None:
            raise RuntimeError(self._NOT_RUNNING)
        return self._handle

    @property
    def url(self) -> str:
        """Base URL of the running emulator."""
        return self.handle.url

    @abstractmethod
    def start(self) -> EmulatorHandle:
        """Start it; returns once it answers requests."""

    def __enter__(self) -> EmulatorHandle:
        return self.start()


class EmulatorServer(_Running):
    """An emulator serving from a background thread of this process (uvicorn on loopback).

    ``with EmulatorServer(speed=20) as emu: ...`` yields an :class:`EmulatorHandle`; keyword
    arguments are those of :func:`build_runtime` plus ``host`` and ``port`` (0: a free port).
    """

    def __init__(
        self, *, host: str = DEFAULT_HOST, port: int = 0, speed: float = TEST_SPEED, **options: Any
    ) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.options = {"speed": speed, **options}
        self.runtime: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> EmulatorHandle:
        """Start serving; returns once requests are answered."""
        import uvicorn

        from .app import create_app

        self.runtime = build_runtime(**self.options)
        sock = bind_socket(self.host, self.port)
        config = uvicorn.Config(
            create_app(self.runtime), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="vapi-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        self._handle = EmulatorHandle(
            socket_url(sock),
            self.options.get("api_key", DEFAULT_API_KEY),
            public_key=self.options.get("public_key", DEFAULT_PUBLIC_KEY),
        )
        return self._handle

    def stop(self) -> None:
        """Stop serving and release the state file."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._handle is not None:
            self._handle.close()
        if self.runtime is not None:
            self.runtime.engine.close()
        self._server = self._thread = self._handle = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmulatorProcess(_Running):
    """An emulator in its own process (``python -m airflow_provider_vapi.emulator``).

    Options map to CLI flags (``speed=10`` -> ``--speed 10``, ``state_file=p`` -> ``--state p``,
    ``concurrency_mode="reject"`` -> ``--concurrency-mode reject``); ``extra_args`` are appended.
    ``stop()`` ends it with SIGTERM, ``kill()`` with SIGKILL (a crash, for restart tests).
    """

    _NOT_RUNNING = "the emulator process is not running"

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        public_key: str = DEFAULT_PUBLIC_KEY,
        speed: float = TEST_SPEED,
        state_file: str | Path | None = None,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.args = ["--host", host, "--port", str(port), "--api-key", api_key, "--public-key", public_key]
        self.args += ["--speed", str(speed)]
        if state_file is not None:
            self.args += ["--state", str(state_file)]
        for key, value in options.items():
            self.args += [f"--{key.replace('_', '-')}", str(value)]
        self.args += list(extra_args)
        self.api_key = api_key
        self.public_key = public_key
        self.env = env
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    @property
    def command(self) -> list[str]:
        """The command line that starts it."""
        return [sys.executable, "-m", "airflow_provider_vapi.emulator", *self.args]

    def start(self, timeout: float = 30.0) -> EmulatorHandle:
        """Start the process and wait until it prints its URL."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        found = threading.Event()
        url: list[str] = []

        def drain() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line.rstrip("\n"))
                if line.startswith(URL_LINE_PREFIX) and not url:
                    url.append(line[len(URL_LINE_PREFIX) :].strip())
                    found.set()
            found.set()

        threading.Thread(target=drain, name="vapi-emulator-output", daemon=True).start()
        if not found.wait(timeout) or not url:
            self.kill()
            raise RuntimeError("the emulator process did not start:\n" + "\n".join(self.output))
        self._handle = EmulatorHandle(url[0], self.api_key, public_key=self.public_key)
        return self._handle

    def _end(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._handle is not None:
            self._handle.close()
        self._handle = None

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill at once (SIGKILL): nothing gets to clean up."""
        self._end(signal.SIGKILL)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
