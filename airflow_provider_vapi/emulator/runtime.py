"""One emulator's run-time state: its engine, fault rules, request log and pending late work."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .constants import DEFAULT_REQUEST_LOG_BYTES
from .engine import Engine
from .faults import FaultBook


class RequestLog:
    """The last Vapi-API requests: at most ``size`` of them and about ``max_bytes`` of bodies, the
    oldest dropped first (and counted). Bodies are kept with their secrets redacted (never the API
    key, never admin requests)."""

    def __init__(self, size: int, max_bytes: int = DEFAULT_REQUEST_LOG_BYTES) -> None:
        if size < 0 or max_bytes < 0:
            raise ValueError("the request log size must be >= 0")
        self.size = size
        self.max_bytes = max_bytes
        self.entries: deque[dict[str, Any]] = deque()
        self._weights: deque[int] = deque()
        self._bytes = 0
        #: entries dropped to stay within the bounds since the log was last cleared.
        self.dropped = 0

    def add(self, entry: dict[str, Any], weight: int = 0) -> None:
        """Record one request (``weight``: the size of its body), dropping the oldest beyond the bounds."""
        self.entries.append(entry)
        self._weights.append(weight)
        self._bytes += weight
        while self.entries and (len(self.entries) > self.size or self._bytes > self.max_bytes):
            self.entries.popleft()
            self._bytes -= self._weights.popleft()
            self.dropped += 1

    def clear(self) -> None:
        """Forget every entry and the count of dropped ones."""
        self.entries.clear()
        self._weights.clear()
        self._bytes = 0
        self.dropped = 0

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

    def answer(self, method: str | None, path: str | None) -> dict[str, Any]:
        """The admin API's answer: the matching entries and what the bounds dropped."""
        return {
            "requests": self.query(method, path),
            "dropped": self.dropped,
            "limit": self.size,
            "limitBytes": self.max_bytes,
        }


class Runtime:
    """One emulator: its engine, fault rules, request log and the work ``late:S`` faults hold."""

    def __init__(self, engine: Engine, faults: FaultBook | None = None) -> None:
        self.engine = engine
        self.faults = faults or FaultBook()
        self._startup_faults = self.faults.specs()
        self.log = RequestLog(engine.config.request_log_size, engine.config.request_log_bytes)
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
        self.log.clear()
