"""Assistants, phone numbers and customers: the seeded and created objects calls refer to, their
``/assistant`` and ``/phone-number`` endpoints, and how a create-call body's references to them
resolve (including how assistant overrides merge)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .constants import ORG_ID
from .errors import bad_request, not_found
from .listing import ListQuery
from .seeds import seed_assistants, seed_customers, seed_phone_numbers
from .validation import create_assistant_errors

_ASSISTANT_SOURCES = ("assistantId", "assistant", "squadId", "squad", "workflowId", "workflow")
_ATOMIC = frozenset({"schema", "metadata"})


def deep_merge(
    base: dict[str, Any], override: dict[str, Any], atomic: frozenset[str] = _ATOMIC
) -> dict[str, Any]:
    """``override`` on top of ``base``, recursing into objects (how assistant overrides apply).

    A JSON schema (``structuredDataPlan.schema``) is one value: an override replaces it whole, as
    do the ``metadata`` of assistant overrides (``atomic``: the keys whose objects are not merged).
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in atomic:
            out[key] = deep_merge(out[key], value, atomic)
        else:
            out[key] = value
    return out


def new_assistant(body: Any, stamp: str) -> dict[str, Any]:
    """The assistant ``POST /assistant`` creates from ``body`` at ``stamp``; a 400 if it is invalid."""
    if not isinstance(body, dict):
        raise bad_request(["body must be an object"])
    errors = create_assistant_errors(body)
    if errors:
        raise bad_request(errors)
    assistant = {**copy.deepcopy(body), "id": str(uuid.uuid4()), "orgId": ORG_ID}
    assistant.update(createdAt=stamp, updatedAt=stamp)
    return assistant


class Directory:
    """The assistants, phone numbers and customers one emulator knows (the seeds to begin with).

    Not thread-safe by itself: the engine holds its lock around every use.
    """

    def __init__(self) -> None:
        self.assistants = seed_assistants()
        self.phone_numbers = seed_phone_numbers()
        self.customers = seed_customers()

    def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        """``GET /assistant/{id}``."""
        found = self.assistants.get(assistant_id)
        if found is None:
            raise not_found("Assistant")
        return found

    def list_assistants(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /assistant``: newest first, filtered by time, then ``limit``."""
        found = [a for a in self.assistants.values() if query.within_iso(a)]
        return sorted(found, key=lambda a: a["createdAt"], reverse=True)[: query.limit]

    def list_phone_numbers(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /phone-number``: filtered by time, then ``limit``."""
        return [p for p in self.phone_numbers.values() if query.within_iso(p)][: query.limit]

    # -- what a create-call body refers to ------------------------------------------------------

    def customers_for(self, body: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
        """Each customer to call, with the ``customerId`` it came from (if any); a 400 otherwise."""
        if "customers" in body and ("customer" in body or "customerId" in body):
            raise bad_request("Couldn't Get Customer. Need Either `customers` Or `customer`, Not Both.")
        if body.get("customers"):
            return [(dict(c), None) for c in body["customers"]]
        if body.get("customer") is not None:
            return [(dict(body["customer"]), None)]
        customer_id = body.get("customerId")
        if customer_id:
            stored = self.customers.get(customer_id)
            if stored is None:
                raise bad_request(f"Couldn't Get Customer. `customerId` {customer_id} Does Not Exist.")
            return [(copy.deepcopy(stored), customer_id)]
        raise bad_request("Couldn't Get Customer. Need Either `customerId` Or `customer`.")

    def assistant_for(self, body: dict[str, Any]) -> dict[str, Any]:
        """The assistant the calls run, overrides applied; a 400 when the body names none or many."""
        given = [key for key in _ASSISTANT_SOURCES if body.get(key) is not None]
        if len(given) > 1:
            raise bad_request(
                "Only One Of `assistantId`, `assistant`, `squadId`, `squad`, `workflowId`, `workflow` "
                f"Can Be Provided, Got {', '.join(f'`{g}`' for g in given)}."
            )
        if not given:
            raise bad_request(
                "Couldn't Get Assistant. Need Either `assistantId`, `assistant`, `squadId`, `squad`, "
                "`workflowId` Or `workflow`."
            )
        if body.get("assistantVersion") is not None and "assistantId" not in given:
            raise bad_request("`assistantVersion` Can Only Be Used With `assistantId`.")
        base: dict[str, Any] = {}
        if given[0] == "assistantId":
            stored = self.assistants.get(body["assistantId"])
            if stored is None:
                raise bad_request(
                    f"Couldn't Get Assistant. `assistantId` {body['assistantId']} Does Not Exist."
                )
            base = {k: v for k, v in stored.items() if k not in ("id", "orgId", "createdAt", "updatedAt")}
        elif given[0] == "assistant":
            base = body["assistant"]
        overrides = body.get("assistantOverrides") or body.get("squadOverrides") or {}
        return deep_merge(copy.deepcopy(base), overrides)

    def check_phone_number(self, body: dict[str, Any]) -> None:
        """A 400 unless the body names a known ``phoneNumberId`` or gives a ``phoneNumber``."""
        if body.get("phoneNumberId"):
            if body["phoneNumberId"] not in self.phone_numbers:
                raise bad_request(
                    f"Couldn't Get Phone Number. `phoneNumberId` {body['phoneNumberId']} Does Not Exist."
                )
        elif body.get("phoneNumber") is None:
            raise bad_request("Couldn't Get Phone Number. Need Either `phoneNumberId` Or `phoneNumber`.")
