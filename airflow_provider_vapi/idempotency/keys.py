"""The idempotency key: its forms, where it travels in a request, how it is read back from a
``Call``, and whether a call carrying it went to the person a request is for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_vapi.models import (
    Call,
    CreateCallRequest,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


#: Metadata key carrying the idempotency key on the wire.
IDEMPOTENCY_METADATA_KEY: Final = "airflowIdempotencyKey"


# -- the key ------------------------------------------------------------------------------------


def task_key(context: Context) -> str:
    """Stable across retries of one task instance, distinct across runs and map indexes."""
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"


def batch_key(key: str, index: int) -> str:
    """The key of the ``index``-th customer of a batch created with ``key``."""
    return f"{key}:{index}"


def redial_key(key: str, try_number: int) -> str:
    """The key of a deliberate redial (``redial_on_retry``) on try ``try_number``."""
    return f"{key}~{try_number}"


def carries_key(call_key: str | None, key: str) -> bool:
    """The call was created with ``key``: exactly, as a batch customer, or as a redial."""
    if not call_key or not call_key.startswith(key):
        return False
    return len(call_key) == len(key) or call_key[len(key)] in ":~"


# -- in the request, on the call ----------------------------------------------------------------


def _put(target: dict[str, Any], outer_name: str, inner_name: str, key: str) -> None:
    """Write the key at ``target[outer_name][inner_name]``, keeping what is there."""
    outer = target.get(outer_name)
    if not isinstance(outer, dict):
        outer = target[outer_name] = {}
    inner = outer.get(inner_name)
    if not isinstance(inner, dict):
        inner = outer[inner_name] = {}
    inner[IDEMPOTENCY_METADATA_KEY] = key


def keyed_body(request: CreateCallRequest, key: str) -> dict[str, Any]:
    """The body to send, carrying ``key`` in the metadata Vapi echoes back on the created call(s).

    Assistant calls: ``assistantOverrides.metadata``; squad calls: ``squadOverrides.metadata`` (an
    ``AssistantOverrides`` applied to every member). ``WorkflowOverrides`` has no metadata, so
    workflow calls carry it in ``workflowOverrides.variableValues`` (echoed, and harmless: a variable
    no prompt uses). Batches get one key per customer, :func:`batch_key`, in that customer's
    overrides; a workflow batch has no per-customer overrides and carries the plain key. The user's
    own metadata is kept.
    """
    wire = request.to_wire()
    overrides = "squadOverrides" if request.source == "squad" else "assistantOverrides"
    if request.source == "workflow":
        _put(wire, "workflowOverrides", "variableValues", key)
    elif wire.get("customers"):
        for index, customer in enumerate(wire["customers"]):
            _put(customer, overrides, "metadata", batch_key(key, index))
    else:
        _put(wire, overrides, "metadata", key)
    return wire


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def key_of(call: Call) -> str | None:
    """The key :func:`keyed_body` put in, wherever Vapi echoed it."""
    customer = _dict(call.customer)
    places = (
        _dict(call.assistant_overrides).get("metadata"),
        _dict(call.squad_overrides).get("metadata"),
        _dict(customer.get("assistantOverrides")).get("metadata"),
        _dict(customer.get("squadOverrides")).get("metadata"),
        _dict(call.workflow_overrides).get("variableValues"),
    )
    for place in places:
        value = _dict(place).get(IDEMPOTENCY_METADATA_KEY)
        if isinstance(value, str):
            return value
    return None


# -- whose call is it ------------------------------------------------------------------------------


def person_of(customer: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """What identifies the person a customer object reaches (number and extension, or SIP URI)."""
    if not customer:
        return None
    return (customer.get("number"), customer.get("extension"), customer.get("sipUri"))


def intended_customer(request: CreateCallRequest, call_key: str | None, key: str) -> dict[str, Any] | None:
    """The customer (wire form) that a call carrying ``call_key`` was meant for under ``request``."""
    wire = request.to_wire()
    customers = wire.get("customers")
    if customers is None:
        return dict(wire.get("customer") or {})
    suffix = (call_key or "")[len(key) :]
    if suffix.startswith(":") and suffix[1:].isdigit() and int(suffix[1:]) < len(customers):
        return dict(customers[int(suffix[1:])])
    return None  # a workflow batch carries the plain key: any customer of the batch may match


def same_person(call: Call, request: CreateCallRequest, key: str) -> bool:
    """The call went to the person this request is for (a retry's upstream data may have changed)."""
    if request.customer_id is not None:
        return call.customer_id == request.customer_id
    got = person_of(call.customer)
    wanted = intended_customer(request, key_of(call), key)
    if wanted is not None:
        return got is not None and got == person_of(wanted)
    return any(got == person_of(c) for c in request.to_wire().get("customers") or [])


def narrowing(request: CreateCallRequest) -> dict[str, Any]:
    """List filters every call of this request matches: fewer calls to page through."""
    return {"assistantId": request.assistant_id, "phoneNumberId": request.phone_number_id}
