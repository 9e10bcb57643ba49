"""ASGI plumbing of the emulator: the types, JSON and error answers, and the ``send`` wrappers
through which fault actions break an answer (``drop``, ``stall:S``, ``garbage:KIND``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import Response

from .errors import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_MEDIA = "application/json; charset=utf-8"
HTML_MEDIA = "text/html; charset=utf-8"
_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>\n"
    b"<body><h1>Just a moment...</h1><p>Checking your connection (a garbage answer of the Vapi "
    b"emulator).</p></body></html>\n"
)
_REPLACED_HEADERS = (b"content-length", b"content-type")


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` (or bytes already serialized) as a JSON answer."""
    body = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return Response(content=body, status_code=status, media_type=JSON_MEDIA)


def error_response(status: int, message: str | list[str], headers: dict[str, str] | None = None) -> Response:
    """Vapi's (NestJS) error body with ``status``."""
    body = json.dumps(ApiError(status, message).body(), separators=(",", ":")).encode()
    return Response(content=body, status_code=status, media_type=JSON_MEDIA, headers=headers)


def replaying(raw: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the already-read request body ``raw`` once, then defers to ``receive``."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


def recording(entry: dict[str, Any], send: Send) -> Send:
    """A ``send`` that notes the answer's status in the request-log ``entry``."""

    async def record(message: Message) -> None:
        if message["type"] == "http.response.start":
            entry["status"] = message["status"]
        await send(message)

    return record


def dropping(send: Send) -> Send:
    """A ``send`` that passes the headers and half the first body chunk, then nothing more: the
    answer never completes and the server closes the connection (``drop``)."""
    cut = False

    async def drop(message: Message) -> None:
        nonlocal cut
        if message["type"] != "http.response.body":
            await send(message)
        elif not cut:
            cut = True
            body = message.get("body", b"")
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})

    return drop


def garbage_body(kind: str, body: bytes) -> tuple[bytes, str]:
    """The broken body ``garbage:KIND`` answers instead of ``body``, and its media type."""
    if kind == "html":
        return _HTML_PAGE, HTML_MEDIA
    if kind == "null":
        return b"null", JSON_MEDIA
    return body[: len(body) // 2], JSON_MEDIA


def garbling(kind: str, send: Send) -> Send:
    """A ``send`` that keeps the route's status and headers but answers a broken body
    (``garbage:KIND``), with a content type and length to match."""
    start: Message = {}
    chunks: list[bytes] = []

    async def garble(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body, media = garbage_body(kind, b"".join(chunks))
        original = start.get("headers", [])
        if kind == "truncated":  # the route's own body cut short keeps its type (JSON, a WAV...)
            media = next((v.decode("latin-1") for k, v in original if k.lower() == b"content-type"), media)
        headers = [(k, v) for k, v in original if k.lower() not in _REPLACED_HEADERS]
        headers += [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return garble


def stalling(seconds: float, send: Send) -> Send:
    """A ``send`` that holds the answer back ``seconds`` before its first message (``stall:S``):
    the route has done its work by then, so the answer tells of the moment the request came."""
    held = True

    async def stall(message: Message) -> None:
        nonlocal held
        if held:
            held = False
            await asyncio.sleep(seconds)
        await send(message)

    return stall


def breaking(action: str, send: Send) -> Send:
    """The ``send`` that carries out a fault ``action`` on the answer (unchanged for the others)."""
    if action == "drop":
        return dropping(send)
    if action.startswith("stall:"):
        return stalling(float(action.split(":", 1)[1]), send)
    if action.startswith("garbage:"):
        return garbling(action.split(":", 1)[1], send)
    return send
