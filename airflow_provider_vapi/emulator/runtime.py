"""One emulator's run-time state: its engine, fault rules, request log and pending late work."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque
from typing import Any

from .constants import DEFAULT_REQUEST_LOG_BYTES
from .engine import Engine, iso
from .faults import FaultBook
from .redaction import redact


class RequestLog:
    """The last Vapi-API requests, authenticated ones only: at most ``size`` of them and at most
    ``max_bytes`` of memory, the oldest dropped first (and counted).

    An entry is what :func:`log_entry` makes: a few short fields and one compact ASCII JSON string of
    its query, redacted body and fingerprints. Its weight is what it really holds, measured with
    ``sys.getsizeof`` (the dict and every string in it, the JSON string's bytes included), so
    neither a body that parses into many objects nor a long query string can make the log grow
    past its bound. A request refused before its key was accepted (401, or 400 for two
    ``Authorization`` headers) is only a short line (:meth:`refuse`: method, the first
    :data:`REFUSED_PATH_CHARS` of its path, status; never its query or body), counted in
    :attr:`refused`.
    """

    def __init__(self, size: int, max_bytes: int = DEFAULT_REQUEST_LOG_BYTES) -> None:
        if size < 0 or max_bytes < 0:
            raise ValueError("the request log size must be >= 0")
        self.size = size
        self.max_bytes = max_bytes
        self.entries: deque[dict[str, Any]] = deque()
        self._weights: deque[int] = deque()
        self.bytes = 0
        #: entries dropped to stay within the bounds since the log was last cleared.
        self.dropped = 0
        #: requests refused before their key was accepted, since the log was last cleared.
        self.refused = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Record one request (made by :func:`log_entry`), dropping the oldest beyond the bounds."""
        weight = sys.getsizeof(entry) + sum(sys.getsizeof(v) for v in entry.values() if isinstance(v, str))
        self.entries.append(entry)
        self._weights.append(weight)
        self.bytes += weight
        while self.entries and (len(self.entries) > self.size or self.bytes > self.max_bytes):
            self.entries.popleft()
            self.bytes -= self._weights.popleft()
            self.dropped += 1

    def refuse(self, method: str, path: str, authorization: bool, status: int) -> None:
        """Record a request refused before its key was accepted: a short line, nothing it carried."""
        line = log_entry(method, path[:REFUSED_PATH_CHARS], {}, None, authorization)
        line["status"] = status
        self.add(line)
        self.refused += 1

    def clear(self) -> None:
        """Forget every entry and the counts of dropped and refused ones."""
        self.entries.clear()
        self._weights.clear()
        self.bytes = self.dropped = self.refused = 0

    def query(self, method: str | None, path: str | None) -> list[dict[str, Any]]:
        """Entries, oldest first, filtered by method and path (``/call*`` is a prefix)."""
        out = []
        for found in list(self.entries):
            if method and found["method"] != method.upper():
                continue
            if path:
                if path.endswith("*"):
                    if not found["path"].startswith(path[:-1]):
                        continue
                elif found["path"] != path:
                    continue
            out.append(found)
        return out

    def answer(self, method: str | None, path: str | None) -> bytes:
        """The admin API's answer (JSON): the matching entries, what the bounds dropped, what was
        refused, the bounds and the bytes held."""
        requests = b",".join(_entry_json(found) for found in self.query(method, path))
        rest = {
            "dropped": self.dropped,
            "refused": self.refused,
            "limit": self.size,
            "limitBytes": self.max_bytes,
            "bytes": self.bytes,
        }
        return b'{"requests":[' + requests + b"]," + json.dumps(rest, separators=(",", ":")).encode()[1:]


#: How much of a refused request's path its line keeps.
REFUSED_PATH_CHARS = 200
#: The entry's key for its JSON string of query, body and fingerprints (never answered as such).
_PAYLOAD = "payload"
_NOTHING = '{"query":{},"body":null,"fingerprints":{}}'


def log_entry(
    method: str, path: str, query: dict[str, str], body: Any, authorization: bool
) -> dict[str, Any]:
    """A request-log entry, its secrets redacted (``status`` and ``fault`` are filled in later).

    ``fingerprints`` maps the path of each redacted secret to :func:`.redaction.fingerprint` of it
    (a query parameter's path is ``?name``); ``authorization`` says whether the request carried an
    ``Authorization`` header (never its value: how a test proves the API key was not sent to a
    presigned storage URL)."""
    if body is None and not query:
        payload = _NOTHING  # the polling hot path: nothing to redact or serialize
    else:
        body, fingerprints = redact(body)
        query, query_prints = redact(query)
        fingerprints.update({f"?{name}": mark for name, mark in query_prints.items()})
        payload = json.dumps(
            {"query": query, "body": body, "fingerprints": fingerprints}, separators=(",", ":")
        )
    return {
        "authorization": authorization,
        "method": method,
        "path": path,
        "status": None,
        "timestamp": iso(time.time_ns() // 1_000_000),
        "fault": None,
        _PAYLOAD: payload,
    }


def _entry_json(found: dict[str, Any]) -> bytes:
    """One entry as the admin API answers it: its fields and those of its JSON string, side by side."""
    fields = {k: v for k, v in found.items() if k != _PAYLOAD}
    payload: str = found[_PAYLOAD]
    return (json.dumps(fields, separators=(",", ":"))[:-1] + "," + payload[1:]).encode()


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
