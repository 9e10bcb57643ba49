"""Reading and parsing request bodies: every body the emulator cannot take is a 400 in Vapi's shape.

Vapi parses JSON before anything looks at it (Express ``body-parser``) and answers a body it cannot
parse with ``{"message": "Unexpected token ... in JSON at position N", "error": "Bad Request",
"statusCode": 400}``. The emulator does the same for every pathological body, before any route
(or the request log) touches it, so none can become a 500 or a plain-text answer:

* larger than :data:`MAX_BODY_BYTES` (read no further than that);
* not UTF-8, not JSON, or JSON with ``NaN``/``Infinity`` (JavaScript's ``JSON.parse`` refuses them)
  or numbers too large to be finite (``1e999``, 400 digits);
* a JSON value that is neither an object nor an array (``body-parser``'s strict mode);
* nested deeper than :data:`MAX_DEPTH` arrays/objects (however deep: parsing never recurses past it).

An array parses; each route that wants an object answers it with its own 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .asgi import Receive
from .errors import ApiError, bad_request

#: The largest request body accepted (a batch of 10,000 customers is about 1.5 MB).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: The deepest nesting of arrays and objects accepted (a JSON schema inside an assistant needs ~20).
MAX_DEPTH = 100

TOO_LARGE_MESSAGE = f"request entity too large (the limit is {MAX_BODY_BYTES} bytes)"
TOO_DEEP_MESSAGE = f"request body is nested too deeply (the limit is {MAX_DEPTH} levels)"


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> tuple[bytes, bool]:
    """The request body and whether it was over ``limit`` (then only its first ``limit`` bytes are
    kept; the rest is read and thrown away)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), size > limit


def _no_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name[0]} in JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: JavaScript's Infinity, which no JSON answer can carry
        raise ValueError(f"Unexpected number {text[:20]} in JSON (out of range)")
    return value


def _int(text: str) -> int | float:
    if len(text) > 300:  # JavaScript would read it as a float, and an infinite one past ~309 digits
        raise ValueError(f"Unexpected number {text[:20]}... in JSON (out of range)")
    return int(text)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit`` (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _nesting_exceeds(text: str, limit: int) -> bool:
    """A cheap upper bound before parsing: more opening brackets than ``limit`` *may* nest that
    deep (brackets inside strings count too, so only a True here is worth the exact check)."""
    return text.count("[") + text.count("{") > limit


def parse_body(raw: bytes) -> Any:
    """The JSON value of a body (``None`` when empty); an :class:`ApiError` 400 when it is not one."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"Unexpected token in JSON at position {exc.start} (invalid UTF-8)") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise bad_request(TOO_DEEP_MESSAGE) from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"Unexpected token in JSON at position {exc.pos}") from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if not isinstance(value, dict | list):
        # body-parser's ``strict`` mode: only objects and arrays are JSON bodies.
        start = len(text) - len(text.lstrip())
        raise bad_request(f"Unexpected token {text[start]} in JSON at position {start}")
    if _nesting_exceeds(text, MAX_DEPTH) and _depth_exceeds(value, MAX_DEPTH):
        raise bad_request(TOO_DEEP_MESSAGE)
    return value


def checked_body(raw: bytes, too_large: bool) -> tuple[Any, ApiError | None]:
    """``(value, None)`` for a body the routes can take, ``(None, error)`` for one they cannot."""
    if too_large:
        return None, bad_request(TOO_LARGE_MESSAGE)
    try:
        return parse_body(raw), None
    except ApiError as exc:
        return None, exc
