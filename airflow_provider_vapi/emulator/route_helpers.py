"""What every route of the emulator does with a request: read its JSON body, check a path id,
know the URL the client reached, parse a list query. Shared by :mod:`.app` and the route modules
beside it."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from .bodies import parse_body
from .errors import bad_request
from .listing import ListQuery, parse_list_query
from .validation import UUID_MESSAGE, UUID_RE


async def json_body(request: Request, required: bool = True) -> Any:
    """The JSON value of the body (the middleware has refused every body :mod:`.bodies` cannot
    parse); an empty body (or ``null``) is ``{}`` unless ``required``."""
    body = parse_body(await request.body())
    if body is None:
        if required:
            raise bad_request(["body must be an object"])
        return {}
    return body


async def object_body(request: Request, message: str | list[str]) -> dict[str, Any]:
    """The JSON object a request carries; a 400 with ``message`` when its JSON is another value."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_request(message)
    return body


def check_uuid(value: str) -> None:
    """A 400 as NestJS's ``ParseUUIDPipe`` answers it unless ``value`` is a uuid."""
    if not UUID_RE.match(value):
        raise bad_request(UUID_MESSAGE)


def base_url(request: Request) -> str:
    """The emulator's URL as the client reached it (no trailing slash)."""
    return str(request.base_url).rstrip("/")


def list_query(route: str, request: Request) -> ListQuery:
    """The validated query of the list route ``route``."""
    return parse_list_query(route, dict(request.query_params))
