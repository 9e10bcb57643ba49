"""Bearer auth, body checks, fault injection and the request log: one pure-ASGI middleware around
the Vapi routes and the admin API (cheap on the polling hot path). The fault actions are described
in :mod:`.faults`, the body checks in :mod:`.bodies`, the log's redaction in :mod:`.redaction`, who
may use a call's monitor URLs in :mod:`.monitor`.

The key is checked first, from the headers alone: a request refused (401, or 400 for two
``Authorization`` headers) has its body read to the end and thrown away; the log records a short
line of it (method, path, status: never its query or body) and counts it (``refused``). Only then
is the body read, checked and, on the Vapi and storage routes, recorded (redacted)."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import Response

from .asgi import ASGIApp, Message, Receive, Scope, Send, breaking, error_response, recording, replaying
from .bodies import checked_body, read_body
from .constants import ADMIN_PREFIX, STORAGE_PREFIX
from .errors import DUPLICATE_AUTHORIZATION_MESSAGE, INVALID_KEY_MESSAGE, ApiError, reason_phrase
from .monitor import CONTROL_PREFIX, bearer_matches
from .recordings import storage_error
from .runtime import Runtime, log_entry

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
    """Bearer auth, then body checks, request recording and fault injection around the Vapi routes;
    bearer auth and body checks around the admin API."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_key = any(name == b"authorization" for name, _ in scope["headers"])
        refusal = self._refusal(scope)
        if refusal is not None:
            await read_body(receive, limit=0)  # read to the end, nothing of it kept
            if not scope["path"].startswith(ADMIN_PREFIX):
                self.runtime.log.refuse(scope["method"], scope["path"], has_key, refusal.status_code)
            await refusal(scope, receive, send)
            return
        raw, too_large = await read_body(receive)
        body, problem = checked_body(raw, too_large)
        if scope["path"].startswith(ADMIN_PREFIX):
            await self._admin(raw, problem, scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        entry = log_entry(scope["method"], scope["path"], query, body, has_key)
        self.runtime.log.add(entry)
        if problem is not None and not scope["path"].startswith(_STORAGE):
            entry["status"] = problem.status
            await error_response(problem.status, problem.message)(scope, receive, send)
            return
        faults = self.runtime.faults
        fault = faults.take(scope["method"], scope["path"], query) if faults else None
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

    def _refusal(self, scope: Scope) -> Response | None:
        """The answer to a request that may not go further (before its body is read), or None.

        Two ``Authorization`` headers: 400, whatever the route. Then the key the route wants: the
        API (private) key on Vapi's routes and the admin API; the public key on a call's
        ``monitor.controlUrl`` when its assistant sets ``monitorPlan.controlAuthenticationEnabled``
        (else, as on Vapi, none); none on ``/_emulator/health`` and the presigned storage routes.
        """
        given = [value for name, value in scope["headers"] if name == b"authorization"]
        path: str = scope["path"]
        if len(given) > 1:
            if path.startswith(_STORAGE):
                return storage_error(400, "InvalidArgument", DUPLICATE_AUTHORIZATION_MESSAGE)
            return error_response(400, DUPLICATE_AUTHORIZATION_MESSAGE)
        config = self.runtime.engine.config
        if path == HEALTH_PATH or path.startswith(_STORAGE):
            wanted = None
        elif path.startswith(CONTROL_PREFIX):
            locked = self.runtime.engine.monitor_locked(path[len(CONTROL_PREFIX) :], "control")
            wanted = config.public_key if locked else None
        else:
            wanted = config.api_key
        if wanted is None or bearer_matches(given, wanted):
            return None
        return error_response(401, INVALID_KEY_MESSAGE)

    async def _admin(
        self, raw: bytes, problem: ApiError | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The admin API (its key already checked, but for ``/_emulator/health``, which readiness
        probes ask without one): the same body checks; never recorded, no faults."""
        if problem is not None:
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
