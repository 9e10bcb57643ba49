"""Vapi ids, checked before they go into a URL path: data is never code.

Every id the hook puts into a path (``/call/{id}``, ``/call/{id}/<kind>-recording``,
``/v2/campaign/{id}`` and its ``/contacts``, ``/assistant/{id}``, ``/structured-output/{id}``) is
first read by :func:`checked_id`. Vapi's OpenAPI spec gives each of these path parameters
``format: uuid``, and Vapi refuses anything else (``400 Validation failed (uuid is expected)``), so
nothing that is not a UUID can be a real id. Checking here means that ``"../structured-output/<id>"``
cannot reach another resource (httpx folds the dot segments of a path before sending it),
``"x?limit=1"`` cannot add a query, and a template that rendered to ``None`` or to the wrong XCom
fails at once with :class:`~.exceptions.VapiInvalidRequestError` (final, never retried), before
anything is sent. :func:`path_segment` percent-escapes the checked id as well (a no-op for a UUID):
defence in depth, should the check ever be loosened.

Accepted: the 8-4-4-4-12 hexadecimal form, in either case, with whitespace around it (a rendered
template often ends in a newline). It is returned trimmed and lower-cased: the form Vapi writes its
ids in, so the id compares equal to ``Call.id`` and the like. Nothing else (``{...}``, ``urn:uuid:``,
32 bare digits) is: Vapi's route refuses those forms too.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from airflow_provider_vapi.exceptions import VapiInvalidRequestError

__all__ = ["EXAMPLE_ID", "ID_PARAMS", "checked_id", "is_vapi_id", "path_segment"]

_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: What an id looks like, for messages.
EXAMPLE_ID: Final = "3f2a9c1e-8b7d-4c2a-9f1e-2b3c4d5e6f70"
#: The parameters that carry an id into a path, and what each is the id of.
ID_PARAMS: Final[dict[str, str]] = {
    "call_id": "call",
    "campaign_id": "campaign",
    "assistant_id": "assistant",
    "structured_output_id": "structured output",
}
#: How much of a wrong value a message shows (it is not a secret, but may be a whole payload).
SHOWN_CHARS: Final = 40


def shown(value: object) -> str:
    """``value`` for a message: its ``repr`` (control characters escaped), cut to a few dozen
    characters; a string says how long it was when cut."""
    if isinstance(value, str):
        head = repr(str(value[:SHOWN_CHARS]))
        return head if len(value) <= SHOWN_CHARS else f"{head}... ({len(value)} characters)"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = "<unprintable>"
    cut = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."
    return f"{cut} (a {type(value).__name__})"


def _invalid(value: object, param: str, kind: str) -> VapiInvalidRequestError:
    why = ""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        why = " (a template or XCom that rendered to nothing?)"
    elif isinstance(getattr(value, "id", None), str):
        why = f" (pass its .id, not the whole {type(value).__name__})"
    return VapiInvalidRequestError(
        f"{param}={shown(value)} is not a Vapi {kind} id{why}; nothing was sent to Vapi. A Vapi "
        f"{kind} id is a UUID such as {EXAMPLE_ID}: did you pass the XCom of the wrong task?"
    )


def is_vapi_id(value: object) -> bool:
    """Whether ``value`` is exactly a Vapi id as Vapi writes one (a UUID string, nothing around it):
    for ids that arrive from Vapi and become part of a file name (recordings)."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def checked_id(value: object, param: str) -> str:
    """``value`` as a Vapi id (trimmed, lower-case), for the parameter ``param`` (a key of
    :data:`ID_PARAMS`: ``call_id``, ``campaign_id`` ...).

    :raises VapiInvalidRequestError: ``value`` is not a string holding a UUID; it names ``param``,
        shows the value (cut short) and says what an id looks like.
    """
    kind = ID_PARAMS[param]
    if isinstance(value, str):
        text = value.strip()
        if _UUID.fullmatch(text):
            return text.lower()
    raise _invalid(value, param, kind)


def path_segment(value: object, param: str) -> str:
    """:func:`checked_id`, percent-escaped as one path segment (``/`` included)."""
    return quote(checked_id(value, param), safe="")
