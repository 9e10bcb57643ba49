"""Processes the system suite starts, and the guarantee that none of them outlives it.

Every process gets its own process group and carries a marker in its environment
(``VAPI_SYSTEM_RUN=<run id>``). Airflow's task processes put themselves in new process groups
(the task SDK's supervisor calls ``setpgid``) and rewrite their environment block (``setproctitle``),
so neither the groups nor the marker find everything: pytest also makes itself a *child
subreaper* (``PR_SET_CHILD_SUBREAPER``), so every orphan of a killed component is re-parented to
pytest instead of init and stays in pytest's process tree. ``reap()`` kills the registered groups,
then every descendant of pytest and every marked process; it runs at fixture teardown, at
interpreter exit (``atexit``) and on SIGTERM, so a failing or interrupted test leaves nothing
behind. Direct children also get ``PR_SET_PDEATHSIG`` so that even a SIGKILLed pytest takes its
Airflow components down with it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

RUN_MARKER = "VAPI_SYSTEM_RUN"
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)


def _die_with_parent() -> None:
    """In the child, before exec: die when pytest dies, even by SIGKILL."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _process_table() -> dict[int, tuple[int, int, bytes]]:
    """pid -> (ppid, pgid, state) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def descendants(root: int) -> list[int]:
    """Live (non-zombie) processes below ``root`` in the process tree."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if table.get(pid, (0, 0, b"Z"))[2] != b"Z":
            found.append(pid)
        stack.extend(children.get(pid, []))
    return sorted(found)


def marked_pids(run_id: str = RUN_ID) -> list[int]:
    """Live processes (not zombies) whose environment carries this run's marker."""
    needle = f"{RUN_MARKER}={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    """A process's command line (its title, for processes that set one), or ``""``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class ManagedProcess:
    """One long-running component: its own process group, output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**env, RUN_MARKER: RUN_ID}
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self) -> ManagedProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        _REGISTRY.append(self)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def group_pids(self) -> list[int]:
        """Every process of this component: its group and everything below it in the tree."""
        if self.popen is None:
            return []
        root = self.popen.pid
        table = _process_table()
        found = {p for p, (_, pgid, state) in table.items() if pgid == root and state != b"Z"}
        if root in table and table[root][2] != b"Z":
            found.add(root)
        return sorted(found | set(descendants(root)))

    def signal_all(self, sig: int) -> None:
        for pid in self.group_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL the component and everything it started: a crash, nothing gets to clean up."""
        self.signal_all(signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
        self._close_log()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL whatever is left after ``grace`` seconds."""
        stop_all([self], grace)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(procs: Sequence[ManagedProcess], grace: float = 10.0) -> None:
    """Stop several components at once: SIGTERM to all, one shared grace period, then SIGKILL."""
    started = [p for p in procs if p.popen is not None]
    pids = {p.name: p.group_pids() for p in started}
    for group in pids.values():
        for pid in group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(x) for g in pids.values() for x in g):
        for proc in started:
            assert proc.popen is not None
            proc.popen.poll()
        time.sleep(0.1)
    for proc in started:
        for pid in pids[proc.name] + proc.group_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        assert proc.popen is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=10)
        proc._close_log()


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


_REGISTRY: list[ManagedProcess] = []


def reap(grace: float = 5.0) -> list[int]:
    """Stop every process this run started; returns the pids that needed the /proc sweep."""
    with contextlib.suppress(Exception):
        stop_all(list(reversed(_REGISTRY)), grace)
    _REGISTRY.clear()
    leftovers = sorted(set(marked_pids()) | set(descendants(os.getpid())))
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while (marked_pids() or descendants(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.1)
    _collect_zombies()
    return leftovers


def _collect_zombies() -> None:
    """As subreaper, pytest inherits orphans: wait for the dead ones so they don't linger."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stray_processes() -> list[int]:
    """What teardown must leave: nothing marked, nothing below pytest."""
    return sorted(set(marked_pids()) | set(descendants(os.getpid())))


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.5, what: str = "condition"
) -> object:
    """Poll ``predicate`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def _on_sigterm(signum: int, frame: object) -> None:
    reap(grace=2.0)
    raise SystemExit(128 + signum)


def install_safety_nets() -> None:
    """Subreaper, atexit and SIGTERM: reap even when pytest is interrupted."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    atexit.register(reap, 2.0)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)
