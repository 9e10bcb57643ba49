"""Bearer auth, body checks, fault injection and the request log: one pure-ASGI middleware around
the Vapi routes and the admin API (cheap on the polling hot path). The fault actions are described
in :mod:`.faults`, the body checks in :mod:`.bodies`, the log's redaction in :mod:`.redaction`."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any
from urllib.parse import parse_qsl

from .asgi import ASGIApp, Message, Receive, Scope, Send, breaking, error_response, recording, replaying
from .bodies import checked_body, read_body
from .constants import ADMIN_PREFIX, STORAGE_PREFIX
from .engine import iso
from .errors import INVALID_KEY_MESSAGE, ApiError, reason_phrase
from .recordings import storage_error
from .redaction import redact
from .runtime import Runtime

_DROPPED = "ASGI callable returned without completing response."
_FAULT_MESSAGES = {
    429: "Too Many Requests. Please retry after some time.",
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable. Please try again later.",
}
HEALTH_PATH = f"{ADMIN_PREFIX}/health"
#: The presigned storage routes: recorded and open to faults, but no API key (a capability URL
#: carries its own signature) and no body checks (S3 ignores a GET's body).
_STORAGE = f"{STORAGE_PREFIX}/"
_ABANDONED = "Service Unavailable: the emulator was reset before this late request was processed."


class _DroppedAnswerFilter(logging.Filter):
    """Hide uvicorn's complaint about the answers the ``drop`` fault cuts off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROPPED


logging.getLogger("uvicorn.error").addFilter(_DroppedAnswerFilter())


class EmulatorMiddleware:
    """Bearer auth, body checks, fault injection and request recording around the Vapi routes;
    bearer auth and body checks around the admin API."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw, too_large = await read_body(receive)
        body, problem = checked_body(raw, too_large)
        if scope["path"].startswith(ADMIN_PREFIX):
            await self._admin(raw, problem, scope, receive, send)
            return
        entry = _log_entry(scope, body)
        self.runtime.log.add(entry, len(raw))
        if scope["path"].startswith(_STORAGE):
            problem = None
        elif not scope["path"].startswith("/control/") and not self._authorized(scope):
            entry["status"] = 401
            await error_response(401, INVALID_KEY_MESSAGE)(scope, receive, send)
            return
        if problem is not None:
            entry["status"] = problem.status
            await error_response(problem.status, problem.message)(scope, receive, send)
            return
        faults = self.runtime.faults
        fault = faults.take(scope["method"], scope["path"], entry["query"]) if faults else None
        action, retry_after = fault if fault else ("ok", 0.0)
        entry["fault"] = action if fault else None
        if action.isdigit():
            await self._refuse(int(action), retry_after, entry, scope, receive, send)
        elif action.startswith("late:"):
            await self._late(float(action.split(":", 1)[1]), entry, raw, scope, receive, send)
        else:
            if action.startswith("delay:"):
                await asyncio.sleep(float(action.split(":", 1)[1]))
            await self.app(scope, replaying(raw, receive), recording(entry, breaking(action, send)))

    async def _admin(
        self, raw: bytes, problem: ApiError | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The admin API: the same key as the Vapi routes (but ``/_emulator/health``, which readiness
        probes ask without one), the same body checks; never recorded, no faults."""
        if scope["path"] != HEALTH_PATH and not self._authorized(scope):
            await error_response(401, INVALID_KEY_MESSAGE)(scope, receive, send)
        elif problem is not None:
            await error_response(problem.status, problem.message)(scope, receive, send)
        else:
            await self.app(scope, replaying(raw, receive), send)

    @staticmethod
    async def _refuse(
        status: int, retry_after: float, entry: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A status fault: Vapi's error body at once (S3's XML one on the storage routes), nothing
        processed."""
        headers = {"Retry-After": str(math.ceil(retry_after))} if status == 429 else None
        entry["status"] = status
        if scope["path"].startswith(_STORAGE):
            answer = storage_error(status)
            answer.headers.update(headers or {})
            await answer(scope, receive, send)
            return
        message = _FAULT_MESSAGES.get(status, reason_phrase(status))
        await error_response(status, message, headers)(scope, receive, send)

    async def _late(
        self, seconds: float, entry: dict[str, Any], raw: bytes, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """``late:S``: the request is processed by a task of its own after ``seconds`` (whether or not
        the client is still there); the answer it produced is then sent, if anyone is listening."""
        work = asyncio.get_running_loop().create_task(
            self._process_later(seconds, entry, raw, scope, receive)
        )
        self.runtime.late_work.add(work)
        work.add_done_callback(self.runtime.late_work.discard)
        try:
            messages = await asyncio.shield(work)
        except asyncio.CancelledError:
            if not work.cancelled():
                raise  # this connection's task was cancelled: the work goes on regardless
            entry["status"] = 503
            await error_response(503, _ABANDONED)(scope, receive, send)
            return
        for message in messages:
            await send(message)

    async def _process_later(
        self, seconds: float, entry: dict[str, Any], raw: bytes, scope: Scope, receive: Receive
    ) -> list[Message]:
        """Wait, process the request, and return the answer's messages (not sent yet)."""
        await asyncio.sleep(seconds)
        messages: list[Message] = []

        async def keep(message: Message) -> None:
            messages.append(message)

        await self.app(scope, replaying(raw, receive), recording(entry, keep))
        return messages

    def _authorized(self, scope: Scope) -> bool:
        expected = b"bearer " + self.runtime.engine.config.api_key.encode()
        for name, value in scope["headers"]:
            if name == b"authorization":
                return bool(value.lower()[:7] == b"bearer " and value[7:] == expected[7:])
        return False


def _log_entry(scope: Scope, body: Any) -> dict[str, Any]:
    """The request-log entry of a request, its secrets redacted (status and fault filled in later).

    ``fingerprints`` maps the path of each redacted secret to :func:`.redaction.fingerprint` of it;
    ``authorization`` says whether the request carried an ``Authorization`` header (never its value:
    how a test proves the API key was not sent to a presigned storage URL)."""
    redacted, fingerprints = redact(body)
    return {
        "authorization": any(name == b"authorization" for name, _ in scope["headers"]),
        "method": scope["method"],
        "path": scope["path"],
        "query": dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
        "body": redacted,
        "fingerprints": fingerprints,
        "status": None,
        "timestamp": iso(time.time_ns() // 1_000_000),
        "fault": None,
    }
