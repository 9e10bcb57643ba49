"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started by the suite.

A pytest plugin (``tests/conftest.py`` registers it through ``pytest_plugins``) with two fixtures:

``postgres_server`` (session)
    A :class:`PostgresServer`: ``host`` (127.0.0.1), ``port``, ``user`` (``postgres``, a
    superuser), ``dbname`` (``postgres``), ``uri`` (``postgresql://postgres@127.0.0.1:PORT/postgres``)
    and ``create_database(name) -> uri``. Started once per session in a fresh temporary cluster,
    stopped (``pg_ctl stop -m immediate``) and deleted when the session ends.
``postgres_uri`` (function)
    The ``postgresql://`` URI of a database created for this test alone (dropped after it), so
    tests never share state.

The cluster is made for speed, not durability: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` off, trust authentication, listening on 127.0.0.1 only, on a free port, with
its Unix socket in its own temporary directory: two test sessions on one machine never meet.

PostgreSQL refuses to run as root: as root, initdb, the server and pg_ctl run as the ``postgres``
system user that Debian's package creates (``subprocess``' ``user=``/``group=``, the same
setuid/setgid/setgroups that ``runuser`` does), and the temporary directory is given to it.

When PostgreSQL is not installed, the fixtures skip with a loud reason (``.ci/system-deps.sh``
installs it); with ``VAPI_REQUIRE_POSTGRES=1`` they fail instead.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

REQUIRE_ENV = "VAPI_REQUIRE_POSTGRES"
#: Debian installs each major version's programs here (``postgresql-15`` -> ``/usr/lib/postgresql/15/bin``).
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: How long initdb + start may take (a loaded 2-core CI machine takes a few seconds).
START_DEADLINE_SECONDS = 90.0
#: Ports taken between our probe and the server's bind (another session) are retried this often.
PORT_ATTEMPTS = 5
_DBNAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PROGRAMS = ("initdb", "pg_ctl", "postgres", "pg_isready", "psql")


class PostgresUnavailable(Exception):
    """PostgreSQL is not installed (or not usable as installed): skip, or fail when required."""


def _version_key(bin_dir: str) -> tuple[int, ...]:
    version = Path(bin_dir).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` with every program we run (or PATH's initdb's)."""
    candidates = sorted(glob.glob(DEBIAN_BIN_GLOB), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:  # not Debian: e.g. a developer's distribution or Homebrew puts them on PATH
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in candidates:
        if all(os.access(Path(candidate) / name, os.X_OK) for name in _PROGRAMS):
            return Path(candidate)
    raise PostgresUnavailable(
        f"PostgreSQL is not installed: no {'/'.join(_PROGRAMS)} under {DEBIAN_BIN_GLOB} (nor initdb "
        "on PATH). `bash .ci/system-deps.sh` (as root) installs Debian's postgresql package"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the server's child process: SIGQUIT (PostgreSQL's immediate shutdown) when pytest dies.

    So a killed test session (SIGKILL, a CI timeout) leaves no server behind. Linux only; runs after
    the switch to the ``postgres`` user, which would otherwise clear it.
    """
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up before fork: the child only calls it


@dataclass
class _RunAs:
    """Who runs PostgreSQL's programs: the current user, or ``postgres`` when we are root."""

    uid: int
    gid: int
    name: str

    @classmethod
    def pick(cls) -> _RunAs:
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return cls(entry.pw_uid, entry.pw_gid, entry.pw_name)
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root, and PostgreSQL refuses root, but there is no `postgres` system user "
                "to run it as (Debian's postgresql package creates it: `bash .ci/system-deps.sh`)"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid, entry.pw_name)

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _temp_root(run_as: _RunAs) -> Path:
    """A fresh directory that ``run_as`` owns and can reach (as root: not under a root-only TMPDIR)."""
    parent = Path(tempfile.gettempdir())
    if run_as.switches and not all(os.stat(p).st_mode & stat.S_IXOTH for p in (parent, *parent.parents)):
        parent = Path("/tmp")
    root = Path(tempfile.mkdtemp(prefix="vapi-pg-", dir=parent))
    if run_as.switches:
        os.chown(root, run_as.uid, run_as.gid)
    return root


@dataclass
class PostgresServer:
    """A running PostgreSQL server for this test session (what ``postgres_server`` yields)."""

    host: str
    port: int
    bin_dir: Path
    root: Path
    version: str
    major: int = 0
    user: str = "postgres"
    dbname: str = "postgres"
    startup_seconds: float = 0.0
    _run_as: _RunAs | None = field(default=None, repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def uri(self) -> str:
        """``postgresql://`` URI of the ``postgres`` database (shared: tests want ``postgres_uri``)."""
        return self.uri_for(self.dbname)

    def uri_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str | None = None) -> str:
        """Run ``sql`` with psql as the superuser; its output (unaligned, tuples only)."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname or self.dbname,
             "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}) on {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create the (new, empty) database ``name``; its ``postgresql://`` URI."""
        if not _DBNAME.match(name):
            raise ValueError(f"database name {name!r}: use [a-z0-9_], at most 63, not starting with a digit")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.uri_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections a test left open to it."""
        if not _DBNAME.match(name):
            raise ValueError(f"database name {name!r}")
        force = " WITH (FORCE)" if self.major >= 13 else ""  # FORCE is new in PostgreSQL 13
        self.psql(f'DROP DATABASE IF EXISTS "{name}"{force}')

    def log_tail(self, lines: int = 30, since: int = 0) -> str:
        """The last ``lines`` lines of the server's log (from byte ``since`` on)."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(since)
                text = log.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``, then make sure the postmaster is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            subprocess.run(
                [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w"],
                capture_output=True, timeout=60, check=False, cwd=self.root,
                **(self._run_as.popen_kwargs() if self._run_as else {}),
            )  # fmt: skip
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def _run(run_as: _RunAs, argv: list[str], cwd: Path) -> None:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False, **run_as.popen_kwargs()
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(argv[0]).name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


def _ready(server: PostgresServer) -> bool:
    """Whether our server accepts connections: asked on its Unix socket, in our own directory, so a
    server of another session on the same port cannot answer for it (and the postmaster creates the
    socket only after it bound the TCP port)."""
    result = subprocess.run(
        [str(server.bin_dir / "pg_isready"), "-q", "-h", str(server.root), "-p", str(server.port),
         "-U", server.user, "-d", server.dbname, "-t", "1"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return result.returncode == 0


def _launch(server: PostgresServer, run_as: _RunAs, deadline: float) -> bool:
    """Start the postmaster on ``server.port``; True once it accepts connections, False when the
    port was taken meanwhile (retry on another). Raises on any other failure."""
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(server.port),
        "unix_socket_directories": str(server.root),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "logging_collector": "off",
    }
    argv = [str(server.bin_dir / "postgres"), "-D", str(server.data_dir)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    with open(server.log_file, "ab") as log:
        log_start = log.tell()
        server._process = subprocess.Popen(
            argv, cwd=server.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches pytest, whose teardown stops the server
            preexec_fn=_die_with_parent, **run_as.popen_kwargs(),
        )  # fmt: skip
    process = server._process
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server._process = None
            log_text = server.log_tail(10, since=log_start)
            if "could not bind" in log_text or "Address already in use" in log_text:
                return False
            raise RuntimeError(f"postgres exited ({process.returncode}) while starting:\n{log_text}")
        if _ready(server) and process.poll() is None:
            return True
        time.sleep(0.05)  # polling interval, not a wait for readiness: the deadline bounds the loop
    server.stop()
    raise RuntimeError(
        f"postgres did not accept connections within {START_DEADLINE_SECONDS:.0f}s:\n{server.log_tail()}"
    )


def start_server() -> PostgresServer:
    """initdb a fresh cluster in a temporary directory and start it on a free loopback port."""
    bin_dir = find_bin_dir()
    run_as = _RunAs.pick()
    started = time.monotonic()
    deadline = started + START_DEADLINE_SECONDS
    root = _temp_root(run_as)
    version = bin_dir.parent.name
    server = PostgresServer(
        host="127.0.0.1", port=0, bin_dir=bin_dir, root=root, version=version, _run_as=run_as
    )
    try:
        _run(
            run_as,
            [str(bin_dir / "initdb"), "-D", str(server.data_dir), "--username", server.user,
             "--auth", "trust", "--encoding", "UTF8", "--no-locale", "--no-sync"],
            cwd=root,
        )  # fmt: skip
        for _attempt in range(PORT_ATTEMPTS):
            server.port = _free_port()
            if _launch(server, run_as, deadline):
                break
        else:
            raise RuntimeError(f"no free loopback port after {PORT_ATTEMPTS} tries:\n{server.log_tail()}")
        server.version = server.psql("SHOW server_version")
        server.major = int(server.psql("SHOW server_version_num")) // 10000
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    server.startup_seconds = time.monotonic() - started
    return server


def _unavailable(reason: str) -> NoReturn:
    """Skip loudly, or fail when ``VAPI_REQUIRE_POSTGRES=1`` says PostgreSQL must be there."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"NO POSTGRESQL, and {REQUIRE_ENV}=1 requires it: {reason}", pytrace=False)
    pytest.skip(f"\n{'!' * 78}\nSKIPPED, NO POSTGRESQL: {reason}\n{'!' * 78}")


def _start_or_skip() -> PostgresServer:
    try:
        return start_server()
    except PostgresUnavailable as exc:
        reason = str(exc)
    _unavailable(reason)  # outside the except: the report shows the reason, not a chained traceback


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this session's own, on 127.0.0.1 (see the module's docstring)."""
    server = _start_or_skip()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


_DB_COUNTER = itertools.count(1)


@pytest.fixture
def postgres_uri(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The ``postgresql://`` URI of a new, empty database for this test alone."""
    slug = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")
    name = f"t{next(_DB_COUNTER)}_{slug}"[:63]
    uri = postgres_server.create_database(name)
    yield uri
    try:
        postgres_server.drop_database(name)
    except RuntimeError as exc:  # the server died: the session's teardown reports it
        print(f"pg_server: could not drop {name}: {exc}", file=sys.stderr)
