"""Ending a live call through its ``monitor.controlUrl``, open or locked.

Vapi gives each live call a control URL on a host of its own; ``POST {"type": "end-call"}`` there
ends the call. By default that URL is open: it is a capability URL, and whoever holds it can end
the call or speak into it. An assistant can lock it (``monitorPlan.controlAuthenticationEnabled:
true``): the URL then wants ``Authorization: Bearer <public API key>`` (Vapi's OpenAPI spec,
``MonitorPlan``). So the control step carries the connection's *public* API key (extra
``public_api_key``) when one is set, and never the private API key, which is for Vapi's API alone.
A 401/403 from the control URL says which key to set, not "fix your private key".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from airflow_provider_vapi.exceptions import VapiAuthError, VapiError
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.wire.connection import PUBLIC_KEY_EXTRA, ConnectionSettings
from airflow_provider_vapi.wire.transport import (
    Op,
    Send,
)

__all__ = ["END_CALL", "control_step", "end_live_op"]

#: The control message that ends a call.
END_CALL: Final = {"type": "end-call"}


def control_step(control_url: str, settings: ConnectionSettings) -> Send:
    """The ``end-call`` request to ``control_url``: without the API key, with the public key if any.

    :raises VapiError: the public key field holds the private key (it would be sent to the URL).
    """
    if settings.public_key is not None and settings.public_key == settings.api_key:
        raise VapiError(
            f"Airflow connection {settings.conn_id!r} holds its private API key in the public API key "
            f"field (extra {PUBLIC_KEY_EXTRA!r}) too. That field is sent to call control URLs, so it "
            "must be your Vapi *public* key (Dashboard -> Organization -> API Keys), or empty."
        )
    return Send("POST", control_url, json=dict(END_CALL), authenticated=False, bearer=settings.public_key)


def locked_error(exc: VapiAuthError, settings: ConnectionSettings, call_id: str) -> VapiAuthError:
    """The control URL refused (401/403): what to set, rather than the API's "fix your private key"."""
    said = "; ".join(exc.vapi_messages).rstrip(".") or "refused"
    head = f"Vapi refused to end call {call_id} through its monitor.controlUrl ({exc.status_code}: {said})."
    if settings.public_key is None:
        fix = (
            " Its assistant locks the control URL (monitorPlan.controlAuthenticationEnabled), which then "
            "wants your Vapi *public* API key, and connection "
            f"{settings.conn_id!r} has none: set its 'Public API key' field (extra {PUBLIC_KEY_EXTRA!r}; "
            "Dashboard -> Organization -> API Keys, the public key)."
        )
    else:
        fix = (
            f" The public API key of connection {settings.conn_id!r} (extra {PUBLIC_KEY_EXTRA!r}) was "
            "sent and refused: it must be the public key of the organisation whose private key the "
            "connection holds."
        )
    return VapiAuthError(
        head + fix + " The call is still live.",
        status_code=exc.status_code,
        vapi_messages=exc.vapi_messages,
        method=exc.method,
        path=exc.path,
        call_id=call_id,
    )


def end_live_op(call: Call, settings: ConnectionSettings, request_op: Callable[..., Op[Any]]) -> Op[None]:
    """``POST {"type": "end-call"}`` to the live ``call``'s control URL (retried like any safe
    request: ending an ended call changes nothing).

    :raises VapiError: the call has no control URL.
    :raises VapiAuthError: the control URL is locked and the connection's public key is missing or
        wrong (the message says which).
    """
    control_url = call.control_url
    if not control_url:
        raise VapiError(
            f"Call {call.id} is {call.status} and has no monitor.controlUrl, so it cannot be ended "
            "from here.",
            call_id=call.id,
        )
    try:
        yield from request_op(control_step(control_url, settings), call_id=call.id)
    except VapiAuthError as exc:
        raise locked_error(exc, settings, call.id) from None
