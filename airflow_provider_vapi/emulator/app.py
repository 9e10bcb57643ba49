"""The HTTP face of the emulator: Vapi's routes, a call's monitor URLs (control and listen) and the
``/_emulator`` admin API (the campaign routes are in :mod:`.campaign_routes`, the recording and
archive ones in :mod:`.archive_routes`).

Auth, fault injection and the request log live in one pure-ASGI middleware (:mod:`.middleware`);
the routes return pre-serialized JSON from the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .archive_routes import add_archive_admin_routes, add_recording_routes, add_storage_routes
from .asgi import JSON_MEDIA, ASGIApp, error_response, json_response
from .campaign_routes import add_campaign_admin_routes, add_campaign_routes
from .constants import ADMIN_PREFIX, ASSISTANT_ID, CUSTOMER_ID, PHONE_NUMBER_ID
from .engine import Engine
from .errors import DUPLICATE_AUTHORIZATION_MESSAGE, INVALID_KEY_MESSAGE, ApiError, bad_request
from .middleware import EmulatorMiddleware
from .monitor import LISTEN_PREFIX, bearer_matches
from .route_helpers import base_url, check_uuid, json_body, list_query, object_body
from .runtime import Runtime
from .validation import delete_call_errors


def create_app(runtime: Runtime) -> ASGIApp:
    """The ASGI application of one emulator."""
    app = FastAPI(title="Vapi emulator", openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return json_response(exc.body(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = (
            f"Cannot {request.method} {request.url.path}" if exc.status_code in (404, 405) else exc.detail
        )
        status = 404 if exc.status_code == 405 else exc.status_code
        return json_response(ApiError(status, str(message)).body(), status)

    _add_call_routes(app, runtime.engine)
    _add_listen_route(app, runtime.engine)
    _add_assistant_routes(app, runtime.engine)
    _add_structured_output_routes(app, runtime.engine)
    add_campaign_routes(app, runtime.engine)
    _add_admin_routes(app, runtime)
    _add_admin_settings_routes(app, runtime)
    add_recording_routes(app, runtime.engine)
    add_storage_routes(app, runtime.engine)
    add_archive_admin_routes(app, runtime.engine)
    add_campaign_admin_routes(app, runtime.engine)
    return EmulatorMiddleware(app, runtime)


def _add_call_routes(app: FastAPI, engine: Engine) -> None:
    """Vapi's ``/call`` routes and the control URL that ends a live call."""

    @app.post("/call")
    async def create_call(request: Request) -> Response:
        body = await json_body(request)
        return json_response(engine.create_calls(body, base_url(request)), 201)

    @app.get("/call")
    async def list_calls(request: Request) -> Response:
        return json_response(engine.list_calls(list_query("/call", request)))

    @app.get("/call/{call_id}")
    async def get_call(call_id: str) -> Response:
        check_uuid(call_id)
        return Response(content=engine.get_call(call_id), media_type=JSON_MEDIA)

    @app.patch("/call/{call_id}")
    async def update_call(call_id: str, request: Request) -> Response:
        check_uuid(call_id)
        body = await object_body(request, ["body must be an object"])
        return json_response(engine.update_call(call_id, body))

    @app.delete("/call/{call_id}")
    async def delete_call(call_id: str, request: Request) -> Response:
        check_uuid(call_id)
        body = await json_body(request, required=False)
        errors = delete_call_errors(body) if isinstance(body, dict) else ["body must be an object"]
        if errors:
            raise bad_request(errors)
        return json_response(engine.delete_call(call_id))

    @app.post("/control/{call_id}")
    async def control(call_id: str, request: Request) -> Response:
        body = await json_body(request)
        kind = body.get("type") if isinstance(body, dict) else None
        if kind != "end-call":
            raise bad_request(f"Unsupported control message type {kind!r} (the emulator knows end-call).")
        engine.end_call(call_id)
        return Response(status_code=200)


def _add_listen_route(app: FastAPI, engine: Engine) -> None:
    """A call's ``monitor.listenUrl``: a WebSocket that, once its key is checked, is accepted and
    closed at once (``1000``: the emulator has no audio to stream). Locked by the assistant's
    ``monitorPlan.listenAuthenticationEnabled``, it wants ``Authorization: Bearer <public key>``:
    the handshake is otherwise refused (401 in Vapi's shape where the server can answer a refused
    handshake with a body; else a plain 403). Never recorded in the request log."""

    @app.websocket(LISTEN_PREFIX + "{call_id}")
    async def listen(websocket: WebSocket, call_id: str) -> None:
        given = [value.encode("latin-1") for value in websocket.headers.getlist("authorization")]
        if len(given) > 1:
            await _refuse_handshake(websocket, 400, DUPLICATE_AUTHORIZATION_MESSAGE)
        elif call_id not in engine.calls:
            await _refuse_handshake(websocket, 404, "Call not found")
        elif engine.monitor_locked(call_id, "listen") and not bearer_matches(given, engine.config.public_key):
            await _refuse_handshake(websocket, 401, INVALID_KEY_MESSAGE)
        else:
            await websocket.accept()
            await websocket.close(code=1000, reason="The Vapi emulator streams no audio.")


async def _refuse_handshake(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket handshake with ``status`` and Vapi's error body, where the server lets
    the app answer one (the ``websocket.http.response`` extension); else with a 403."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}) and hasattr(
        websocket, "send_denial_response"
    ):
        await websocket.send_denial_response(error_response(status, message))
    else:
        await websocket.close(code=1008)


def _add_assistant_routes(app: FastAPI, engine: Engine) -> None:
    """Vapi's ``/assistant`` and ``/phone-number`` routes."""

    @app.get("/assistant")
    async def list_assistants(request: Request) -> Response:
        return json_response(engine.list_assistants(list_query("/assistant", request)))

    @app.post("/assistant")
    async def create_assistant(request: Request) -> Response:
        return json_response(engine.create_assistant(await json_body(request)), 201)

    @app.get("/assistant/{assistant_id}")
    async def get_assistant(assistant_id: str) -> Response:
        check_uuid(assistant_id)
        return json_response(engine.get_assistant(assistant_id))

    @app.get("/phone-number")
    async def list_phone_numbers(request: Request) -> Response:
        return json_response(engine.list_phone_numbers(list_query("/phone-number", request)))


def _add_structured_output_routes(app: FastAPI, engine: Engine) -> None:
    """Vapi's ``/structured-output`` routes (CRUD and ``run``)."""

    @app.post("/structured-output/run")
    async def run_structured_output(request: Request) -> Response:
        body = await object_body(request, ["body must be an object"])
        # The spec documents 200 (the preview / rerun schemas) and 201 (a plain object): 200 is
        # answered, so the body is the one the documented schemas describe.
        return json_response(engine.run_structured_output(body))

    @app.get("/structured-output")
    async def list_structured_outputs(request: Request) -> Response:
        query = list_query("/structured-output", request)
        return json_response(engine.list_structured_outputs(query))

    @app.post("/structured-output")
    async def create_structured_output(request: Request) -> Response:
        return json_response(engine.create_structured_output(await json_body(request)), 201)

    @app.get("/structured-output/{output_id}")
    async def get_structured_output(output_id: str) -> Response:
        check_uuid(output_id)
        return json_response(engine.get_structured_output(output_id))

    @app.patch("/structured-output/{output_id}")
    async def update_structured_output(output_id: str, request: Request) -> Response:
        # The spec marks a ``schemaOverride`` query parameter required here, without saying what
        # it does: it is accepted (and ignored), never required, as no client would send it.
        check_uuid(output_id)
        body = await object_body(request, ["body must be an object"])
        return json_response(engine.update_structured_output(output_id, body))

    @app.delete("/structured-output/{output_id}")
    async def delete_structured_output(output_id: str) -> Response:
        check_uuid(output_id)
        return json_response(engine.delete_structured_output(output_id))


def _add_admin_routes(app: FastAPI, runtime: Runtime) -> None:
    """The ``/_emulator`` admin API (not Vapi; never recorded; the API key as on Vapi's routes but
    for ``health``): health, request log, reset, calls."""
    engine = runtime.engine

    @app.get(f"{ADMIN_PREFIX}/health")
    async def health() -> Response:
        return json_response(
            {
                "status": "ok",
                "assistantId": ASSISTANT_ID,
                "phoneNumberId": PHONE_NUMBER_ID,
                "customerId": CUSTOMER_ID,
                "calls": len(engine.calls),
                "clockOffsetSeconds": engine.config.clock_offset_s,
            }
        )

    @app.get(f"{ADMIN_PREFIX}/requests")
    async def requests(method: str | None = None, path: str | None = None) -> Response:
        return json_response(runtime.log.answer(method, path))

    @app.delete(f"{ADMIN_PREFIX}/requests")
    async def clear_requests() -> Response:
        runtime.log.clear()
        return json_response({"cleared": True})

    @app.post(f"{ADMIN_PREFIX}/reset")
    async def reset() -> Response:
        runtime.reset()
        return json_response({"reset": True})

    @app.get(f"{ADMIN_PREFIX}/calls")
    async def admin_calls() -> Response:
        return json_response(b"[" + b",".join(engine.call_json(r) for r in engine.call_records()) + b"]")

    @app.get(f"{ADMIN_PREFIX}/calls/{{call_id}}")
    async def admin_call(call_id: str) -> Response:
        return Response(content=engine.get_call(call_id), media_type=JSON_MEDIA)

    @app.post(f"{ADMIN_PREFIX}/calls/{{call_id}}/end")
    async def admin_end(call_id: str) -> Response:
        engine.end_call(call_id)
        return Response(content=engine.get_call(call_id), media_type=JSON_MEDIA)


def _add_admin_settings_routes(app: FastAPI, runtime: Runtime) -> None:
    """The admin API's fault rules, run-time settings, and moving a call back in time."""
    engine = runtime.engine

    @app.post(f"{ADMIN_PREFIX}/calls/{{call_id}}/backdate")
    async def admin_backdate(call_id: str, request: Request) -> Response:
        body = await json_body(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise bad_request("backdate takes {seconds: <number >= 0>}")
        engine.backdate_call(call_id, float(seconds))
        return Response(content=engine.get_call(call_id), media_type=JSON_MEDIA)

    @app.get(f"{ADMIN_PREFIX}/faults")
    async def list_faults() -> Response:
        return json_response(runtime.faults.rules())

    @app.post(f"{ADMIN_PREFIX}/faults")
    async def add_faults(request: Request) -> Response:
        body = await json_body(request)
        specs = body.get("rules", [body]) if isinstance(body, dict) else body
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise bad_request("a fault is an object, or {rules: [objects]}")
        with _as_bad_request():
            added = [runtime.faults.add(spec).to_dict() for spec in specs]
        return json_response(added, 201)

    @app.delete(f"{ADMIN_PREFIX}/faults")
    async def clear_faults() -> Response:
        runtime.faults.clear()
        return json_response({"cleared": True})

    @app.get(f"{ADMIN_PREFIX}/config")
    async def get_config() -> Response:
        return json_response(engine.config.to_wire())

    @app.patch(f"{ADMIN_PREFIX}/config")
    async def set_config(request: Request) -> Response:
        changes = await object_body(request, "config changes are an object")
        with _as_bad_request():
            engine.configure(changes)
        return json_response(engine.config.to_wire())


@contextmanager
def _as_bad_request() -> Iterator[None]:
    """A ``ValueError`` or ``TypeError`` raised inside becomes a 400 carrying its message."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise bad_request(str(exc)) from None


__all__ = ["Runtime", "create_app"]
