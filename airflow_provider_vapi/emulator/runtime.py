"""One emulator's run-time state: its engine, fault rules, request log and pending late work."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .engine import Engine
from .faults import FaultBook


class RequestLog:
    """The last N Vapi-API requests (never the API key, never admin requests)."""

    def __init__(self, size: int) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, entry: dict[str, Any]) -> None:
        """Record one request."""
        self.entries.append(entry)

    def query(self, method: str | None, path: str | None) -> list[dict[str, Any]]:
        """Entries, oldest first, filtered by method and path (``/call*`` is a prefix)."""
        out = []
        for entry in list(self.entries):
            if method and entry["method"] != method.upper():
                continue
            if path:
                if path.endswith("*"):
                    if not entry["path"].startswith(path[:-1]):
                        continue
                elif entry["path"] != path:
                    continue
            out.append(entry)
        return out


class Runtime:
    """One emulator: its engine, fault rules, request log and the work ``late:S`` faults hold."""

    def __init__(self, engine: Engine, faults: FaultBook | None = None) -> None:
        self.engine = engine
        self.faults = faults or FaultBook()
        self._startup_faults = self.faults.specs()
        self.log = RequestLog(engine.config.request_log_size)
        #: requests a ``late:S`` fault will process later (tasks of the server's event loop).
        self.late_work: set[asyncio.Task[Any]] = set()

    def reset(self) -> None:
        """Back to how it started: seeds, no requests, start-up config and start-up fault rules;
        pending ``late:S`` work is abandoned. Call it on the server's event loop (the admin API)."""
        for task in list(self.late_work):
            task.cancel()
        self.late_work.clear()
        self.engine.reset()
        self.faults.clear()
        for spec in self._startup_faults:
            self.faults.add(spec)
        self.log.entries.clear()
