"""A call's monitor URLs and who may use them.

Vapi gives each call a ``monitor.controlUrl`` (``POST {"type": "end-call"}`` ends it) and a
``monitor.listenUrl`` (a WebSocket of the call's audio). Both are open by default; an assistant
locks them with ``monitorPlan.controlAuthenticationEnabled`` / ``listenAuthenticationEnabled``,
and the URL then wants ``Authorization: Bearer <public key>`` (the account's *public* key: the
private API key is refused, as on Vapi). The call keeps the effective assistant it was placed with
(inline or saved, with ``assistantOverrides`` and per-customer overrides applied), so that is the
one asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

CONTROL_PREFIX: Final = "/control/"
LISTEN_PREFIX: Final = "/listen/"
#: Which monitor URL: ``control`` (``monitor.controlUrl``) or ``listen`` (``monitor.listenUrl``).
MonitorUrl = Literal["control", "listen"]


def authentication_enabled(assistant: Mapping[str, Any], url: MonitorUrl) -> bool:
    """Whether the assistant's ``monitorPlan`` locks its calls' ``url`` (``@default false``)."""
    plan = assistant.get("monitorPlan")
    return isinstance(plan, Mapping) and plan.get(f"{url}AuthenticationEnabled") is True


def bearer_matches(given: Iterable[bytes], key: str) -> bool:
    """Whether the ``Authorization`` header values ``given`` are exactly one ``Bearer <key>``
    (the scheme in any case, as HTTP says)."""
    values = list(given)
    if len(values) != 1 or not key:
        return False
    value = values[0]
    return value[:7].lower() == b"bearer " and value[7:] == key.encode()
