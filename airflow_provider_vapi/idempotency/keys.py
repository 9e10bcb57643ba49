"""The idempotency key: its forms, where it travels in a request, how it is read back from a
``Call``, and whether a call carrying it went to the person a request is for. Who a person is, and
why the key names the person rather than the position: :mod:`.persons`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_vapi.idempotency.persons import PERSON_SEP, REDIAL_SEP, identity, person_key, tokens
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
    """The scope of the person rule: one dag run and task, every map index and try together.

    Not the map index: a row that moves to another index after a clear is the same person, and
    finds its call (:mod:`.persons`)."""
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}"


def call_key(scope: str, request: CreateCallRequest, dedupe_key: Any = None) -> str:
    """The key a task's single call is created with: the scope and the person it calls."""
    return person_key(scope, tokens(request, dedupe_key)[0])


def batch_key(key: str, person_token: str) -> str:
    """The key of one person of a batch created with ``key``."""
    return person_key(key, person_token)


def redial_key(key: str, try_number: int) -> str:
    """The key of a deliberate redial (``redial_on_retry``) on try ``try_number``."""
    return f"{key}{REDIAL_SEP}{try_number}"


def carries_key(call_key: str | None, key: str) -> bool:
    """The call was created with ``key``: exactly, as a batch's person, or as a redial."""
    if not call_key or not call_key.startswith(key):
        return False
    # "/" and ":": the map index and batch position of keys before the person rule (:mod:`.persons`).
    return len(call_key) == len(key) or call_key[len(key)] in PERSON_SEP + REDIAL_SEP + "/:"


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


def keyed_body(
    request: CreateCallRequest, key: str, person_tokens: Sequence[str] | None = None
) -> dict[str, Any]:
    """The body to send, carrying ``key`` in the metadata Vapi echoes back on the created call(s).

    Assistant calls: ``assistantOverrides.metadata``; squad calls: ``squadOverrides.metadata`` (an
    ``AssistantOverrides`` applied to every member). ``WorkflowOverrides`` has no metadata, so
    workflow calls carry it in ``workflowOverrides.variableValues`` (echoed, and harmless: a variable
    no prompt uses). Batches get one key per person, :func:`batch_key` with ``person_tokens`` (by
    default :func:`.persons.tokens` of this request), in that customer's overrides; a workflow
    batch has no per-customer overrides and carries the plain key. The user's own metadata is kept.
    """
    wire = request.to_wire()
    overrides = "squadOverrides" if request.source == "squad" else "assistantOverrides"
    if request.source == "workflow":
        _put(wire, "workflowOverrides", "variableValues", key)
    elif wire.get("customers"):
        people = tokens(request) if person_tokens is None else person_tokens
        for customer, person_token in zip(wire["customers"], people, strict=True):
            _put(customer, overrides, "metadata", batch_key(key, person_token))
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
    """What identifies the person a customer object reaches (:func:`.persons.identity`)."""
    return identity(customer) if customer else None


def same_person(call: Call, request: CreateCallRequest) -> bool:
    """The call went to the person a single call's request is for (a retry's upstream data may have
    changed, and a hook user may give two people one key). A batch's calls carry each person's key
    (:mod:`.persons`), so for a batch this checks only that the call went to one of its customers."""
    if request.customer_id is not None:
        return call.customer_id == request.customer_id
    got = person_of(call.customer)
    wire = request.to_wire()
    if wire.get("customers") is None:
        return got is not None and got == person_of(wire.get("customer"))
    return any(got == person_of(c) for c in wire["customers"])


def narrowing(request: CreateCallRequest) -> dict[str, Any]:
    """List filters every call of this request matches: fewer calls to page through."""
    return {"assistantId": request.assistant_id, "phoneNumberId": request.phone_number_id}
