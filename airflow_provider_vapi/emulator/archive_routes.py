"""The routes of exporting calls and archiving their recordings: Vapi's
``GET /call/{id}/<artifact>`` redirects, the presigned storage route they lead to (not Vapi's API:
no API key, a capability URL as on S3) and the admin routes that make calls without
``POST /call`` (inbound calls, bulk seeding). See :mod:`.recordings` and :mod:`.seeding`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .asgi import JSON_MEDIA, json_response
from .bodies import parse_body
from .constants import ADMIN_PREFIX
from .engine import Engine
from .errors import ApiError, bad_request
from .recordings import (
    ARTIFACT_NOT_FOUND,
    KINDS,
    MISSING_ARTIFACTS,
    RECORDINGS_PATH,
    ROUTE_KINDS,
    audio_response,
    storage_error,
    wav,
)
from .route_helpers import base_url
from .validation import UUID_MESSAGE, UUID_RE

Handler = Callable[[str, Request], Awaitable[Response]]


def _redirect(location: str) -> Response:
    """A 302 as Express's ``res.redirect`` answers it (a short text body, then the client follows)."""
    return Response(
        content=f"Found. Redirecting to {location}".encode(),
        status_code=302,
        headers={"Location": location},
        media_type="text/plain; charset=utf-8",
    )


def _artifact_handler(engine: Engine, route: str) -> Handler:
    """The handler of ``GET /call/{id}/<route>``."""

    async def download(call_id: str, request: Request) -> Response:
        if not UUID_RE.match(call_id):
            raise bad_request(UUID_MESSAGE)
        kind = ROUTE_KINDS.get(route)
        if kind is None:  # video, pcap, call logs: no phone call of the emulator has them
            raise ApiError(404, ARTIFACT_NOT_FOUND)
        return _redirect(engine.recording_location(call_id, kind, base_url(request)))

    download.__name__ = f"download_{route.replace('-', '_')}"
    return download


def add_recording_routes(app: FastAPI, engine: Engine) -> None:
    """``GET /call/{id}/mono-recording`` (stereo, customer, assistant): 302 to a fresh presigned
    URL, or 404 ``Artifact not found.``; ``/video-recording``, ``/pcap``, ``/call-logs``: 404."""
    for route in (*ROUTE_KINDS, *MISSING_ARTIFACTS):
        app.get(f"/call/{{call_id}}/{route}")(_artifact_handler(engine, route))


def add_storage_routes(app: FastAPI, engine: Engine) -> None:
    """``GET /_storage/recordings/{call_id}/{kind}.wav?expires=&nonce=&signature=``: the WAV
    (``Range`` honoured), or S3's XML errors: 403 unsigned, forged or expired; 404 gone."""

    @app.get(f"{RECORDINGS_PATH}/{{call_id}}/{{filename}}")
    async def recording_object(call_id: str, filename: str, request: Request) -> Response:
        kind = filename[: -len(".wav")] if filename.endswith(".wav") else ""
        problem = engine.check_presigned(call_id, kind, dict(request.query_params))
        if problem is not None:
            return storage_error(403, *problem)
        if kind not in KINDS or not engine.has_recording(call_id):
            return storage_error(404)
        return audio_response(wav(call_id, kind), request.headers.get("range"))


def add_archive_admin_routes(app: FastAPI, engine: Engine) -> None:
    """``POST /_emulator/calls/inbound`` (one inbound call) and ``POST /_emulator/calls/seed``
    (many ended calls at once)."""

    @app.post(f"{ADMIN_PREFIX}/calls/inbound")
    async def inbound(request: Request) -> Response:
        body = parse_body(await request.body())
        data = engine.inject_inbound(body, base_url(request))
        return Response(content=data, status_code=201, media_type=JSON_MEDIA)

    @app.post(f"{ADMIN_PREFIX}/calls/seed")
    async def seed(request: Request) -> Response:
        body = parse_body(await request.body())
        # seconds of work for 100,000 calls: in a worker thread (the engine's lock orders it)
        answer = await asyncio.to_thread(engine.seed_calls, body, base_url(request))
        return json_response(answer, 201)
