"""A Redis server for the distributed suite: Debian's ``redis-server``, started by the suite.

The Celery broker of the distributed deployment. Listens on 127.0.0.1 on a free port, keeps
nothing on disk (no RDB snapshots, no append-only file), runs in the foreground as a
:class:`~tests.system.procs.ManagedProcess` (its own process group, killed with the rest at
teardown, ``PR_SET_PDEATHSIG`` so a SIGKILLed pytest takes it along). It never uses the system
Redis a package may have started on 6379.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from tests.system.deployment import free_port
from tests.system.procs import ManagedProcess, wait_until


class RedisUnavailable(Exception):
    """``redis-server`` is not installed (``bash .ci/system-deps.sh`` installs Debian's package)."""


def find_redis_server() -> str:
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if path is None:
        raise RedisUnavailable(
            "redis-server is not installed: `bash .ci/system-deps.sh` (as root) installs Debian's "
            "redis-server package"
        )
    return path


class RedisServer:
    """``redis-server`` on a free loopback port; ``url`` is the broker URL (database 0)."""

    def __init__(self, workdir: Path, log_dir: Path) -> None:
        self.workdir = workdir
        self.log_dir = log_dir
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "notice",
        ]  # fmt: skip
        self.process = ManagedProcess("redis", argv, {"PATH": "/usr/bin:/bin"}, self.log_dir).start()
        wait_until(self._ready, timeout, 0.1, f"redis-server on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise RuntimeError(f"redis-server exited:\n{self.process.tail()}")
        return self.command("PING") == "+PONG"

    def command(self, *words: str) -> str:
        """One inline command; the first line of the answer (``+PONG``, ``:3``...)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall((" ".join(words) + "\r\n").encode())
            return sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=5)
