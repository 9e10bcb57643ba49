"""The HTTP face of the emulator: Vapi's routes, the control URL and the ``/_emulator`` admin API.

Auth, fault injection and the request log live in one pure-ASGI middleware (cheap on the polling
hot path); the routes return pre-serialized JSON from the engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .constants import ADMIN_PREFIX, ASSISTANT_ID, CUSTOMER_ID, PHONE_NUMBER_ID
from .engine import Engine, iso
from .errors import INVALID_KEY_MESSAGE, ApiError, bad_request, reason_phrase
from .faults import FaultBook
from .validation import UUID_RE, delete_call_errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = "application/json; charset=utf-8"
_DROPPED = "ASGI callable returned without completing response."
_FAULT_MESSAGES = {
    429: "Too Many Requests. Please retry after some time.",
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable. Please try again later.",
}


class _DroppedAnswerFilter(logging.Filter):
    """Hide uvicorn's complaint about the answers the ``drop`` fault cuts off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROPPED


logging.getLogger("uvicorn.error").addFilter(_DroppedAnswerFilter())


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
    """One emulator: its engine, fault rules and request log."""

    def __init__(self, engine: Engine, faults: FaultBook | None = None) -> None:
        self.engine = engine
        self.faults = faults or FaultBook()
        self._startup_faults = self.faults.specs()
        self.log = RequestLog(engine.config.request_log_size)

    def reset(self) -> None:
        """Back to how it started: seeds, no requests, start-up config and start-up fault rules."""
        self.engine.reset()
        self.faults.clear()
        for spec in self._startup_faults:
            self.faults.add(spec)
        self.log.entries.clear()


def _json_response(data: Any, status: int = 200) -> Response:
    body = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return Response(content=body, status_code=status, media_type=_JSON)


def _error_response(status: int, message: str | list[str], headers: dict[str, str] | None = None) -> Response:
    return (
        _json_response(ApiError(status, message).body(), status)
        if not headers
        else Response(
            content=json.dumps(ApiError(status, message).body()).encode(),
            status_code=status,
            media_type=_JSON,
            headers=headers,
        )
    )


async def _body(request: Request, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise bad_request(["body must be an object"])
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"Unexpected token in JSON at position {getattr(exc, 'pos', 0)}") from None


def _check_uuid(value: str) -> None:
    if not UUID_RE.match(value):
        raise bad_request("Validation failed (uuid is expected)")


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class EmulatorMiddleware:
    """Bearer auth, fault injection and request recording around the Vapi routes."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": _query(scope),
            "body": _logged_body(raw),
            "status": None,
            "timestamp": iso(time.time_ns() // 1_000_000),
            "fault": None,
        }
        self.runtime.log.add(entry)
        if not path.startswith("/control/") and not self._authorized(scope):
            entry["status"] = 401
            await _error_response(401, INVALID_KEY_MESSAGE)(scope, receive, send)
            return
        fault = self.runtime.faults.take(method, path) if self.runtime.faults else None
        action = fault[0] if fault else "ok"
        if fault:
            entry["fault"] = action
        if action.isdigit():
            status = int(action)
            headers = {"Retry-After": str(math.ceil(fault[1]))} if status == 429 and fault else None
            entry["status"] = status
            message_text = _FAULT_MESSAGES.get(status, reason_phrase(status))
            await _error_response(status, message_text, headers)(scope, receive, send)
            return
        if action.startswith("delay:"):
            await asyncio.sleep(float(action.split(":", 1)[1]))

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        dropping = action == "drop"
        cut = False

        async def record(message: Message) -> None:
            nonlocal cut
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            elif dropping and message["type"] == "http.response.body":
                if cut:
                    return
                cut = True
                body = message.get("body", b"")
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
                return
            await send(message)

        await self.app(scope, replay, record)

    def _authorized(self, scope: Scope) -> bool:
        expected = b"bearer " + self.runtime.engine.config.api_key.encode()
        for name, value in scope["headers"]:
            if name == b"authorization":
                return bool(value.lower()[:7] == b"bearer " and value[7:] == expected[7:])
        return False


def _query(scope: Scope) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))


def _logged_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def create_app(runtime: Runtime) -> ASGIApp:
    """The ASGI application of one emulator."""
    app = FastAPI(title="Vapi emulator", openapi_url=None, docs_url=None, redoc_url=None)
    engine = runtime.engine

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return _json_response(exc.body(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = (
            f"Cannot {request.method} {request.url.path}" if exc.status_code in (404, 405) else exc.detail
        )
        status = 404 if exc.status_code == 405 else exc.status_code
        return _json_response(ApiError(status, str(message)).body(), status)

    # -- Vapi API -------------------------------------------------------------------------------

    @app.post("/call")
    async def create_call(request: Request) -> Response:
        body = await _body(request)
        return _json_response(engine.create_calls(body, _base_url(request)), 201)

    @app.get("/call")
    async def list_calls(request: Request) -> Response:
        return _json_response(engine.list_calls(dict(request.query_params)))

    @app.get("/call/{call_id}")
    async def get_call(call_id: str) -> Response:
        _check_uuid(call_id)
        return Response(content=engine.get_call(call_id), media_type=_JSON)

    @app.patch("/call/{call_id}")
    async def update_call(call_id: str, request: Request) -> Response:
        _check_uuid(call_id)
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request(["body must be an object"])
        return _json_response(engine.update_call(call_id, body))

    @app.delete("/call/{call_id}")
    async def delete_call(call_id: str, request: Request) -> Response:
        _check_uuid(call_id)
        body = await _body(request, required=False)
        errors = delete_call_errors(body) if isinstance(body, dict) else ["body must be an object"]
        if errors:
            raise bad_request(errors)
        return _json_response(engine.delete_call(call_id))

    @app.get("/assistant")
    async def list_assistants(request: Request) -> Response:
        limit = _limit(request)
        return _json_response(engine.list_assistants()[:limit])

    @app.post("/assistant")
    async def create_assistant(request: Request) -> Response:
        return _json_response(engine.create_assistant(await _body(request)), 201)

    @app.get("/assistant/{assistant_id}")
    async def get_assistant(assistant_id: str) -> Response:
        _check_uuid(assistant_id)
        return _json_response(engine.get_assistant(assistant_id))

    @app.get("/phone-number")
    async def list_phone_numbers(request: Request) -> Response:
        return _json_response(engine.list_phone_numbers()[: _limit(request)])

    @app.post("/control/{call_id}")
    async def control(call_id: str, request: Request) -> Response:
        body = await _body(request)
        kind = body.get("type") if isinstance(body, dict) else None
        if kind != "end-call":
            raise bad_request(f"Unsupported control message type {kind!r} (the emulator knows end-call).")
        engine.end_call(call_id)
        return Response(status_code=200)

    # -- admin API (not Vapi; never recorded) ---------------------------------------------------

    @app.get(f"{ADMIN_PREFIX}/health")
    async def health() -> Response:
        return _json_response(
            {
                "status": "ok",
                "assistantId": ASSISTANT_ID,
                "phoneNumberId": PHONE_NUMBER_ID,
                "customerId": CUSTOMER_ID,
                "calls": len(engine.calls),
            }
        )

    @app.get(f"{ADMIN_PREFIX}/requests")
    async def requests(method: str | None = None, path: str | None = None) -> Response:
        return _json_response(runtime.log.query(method, path))

    @app.delete(f"{ADMIN_PREFIX}/requests")
    async def clear_requests() -> Response:
        runtime.log.entries.clear()
        return _json_response({"cleared": True})

    @app.post(f"{ADMIN_PREFIX}/reset")
    async def reset() -> Response:
        runtime.reset()
        return _json_response({"reset": True})

    @app.get(f"{ADMIN_PREFIX}/faults")
    async def list_faults() -> Response:
        return _json_response(runtime.faults.rules())

    @app.post(f"{ADMIN_PREFIX}/faults")
    async def add_faults(request: Request) -> Response:
        body = await _body(request)
        specs = body.get("rules", [body]) if isinstance(body, dict) else body
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise bad_request("a fault is an object, or {rules: [objects]}")
        try:
            added = [runtime.faults.add(spec).to_dict() for spec in specs]
        except (ValueError, TypeError) as exc:
            raise bad_request(str(exc)) from None
        return _json_response(added, 201)

    @app.delete(f"{ADMIN_PREFIX}/faults")
    async def clear_faults() -> Response:
        runtime.faults.clear()
        return _json_response({"cleared": True})

    @app.get(f"{ADMIN_PREFIX}/config")
    async def get_config() -> Response:
        return _json_response(engine.config.to_wire())

    @app.patch(f"{ADMIN_PREFIX}/config")
    async def set_config(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("config changes are an object")
        try:
            engine.configure(body)
        except (ValueError, TypeError) as exc:
            raise bad_request(str(exc)) from None
        return _json_response(engine.config.to_wire())

    @app.get(f"{ADMIN_PREFIX}/calls")
    async def admin_calls() -> Response:
        return _json_response(b"[" + b",".join(engine.call_json(r) for r in engine.call_records()) + b"]")

    @app.get(f"{ADMIN_PREFIX}/calls/{{call_id}}")
    async def admin_call(call_id: str) -> Response:
        return Response(content=engine.get_call(call_id), media_type=_JSON)

    @app.post(f"{ADMIN_PREFIX}/calls/{{call_id}}/end")
    async def admin_end(call_id: str) -> Response:
        engine.end_call(call_id)
        return Response(content=engine.get_call(call_id), media_type=_JSON)

    return EmulatorMiddleware(app, runtime)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return 100
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(["limit must be a number conforming to the specified constraints"]) from None
    if value > 1000:
        raise bad_request(["limit must not be greater than 1000"])
    if value < 0:
        raise bad_request(["limit must not be less than 0"])
    return int(value)


__all__ = ["Runtime", "create_app"]
