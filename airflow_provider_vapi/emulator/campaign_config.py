"""What a ``POST /v2/campaign`` or ``PATCH /v2/campaign/{id}`` body asks for, checked the way
Vapi's campaign service does once the DTO checks of :mod:`.validation` have passed: who speaks,
from which line, to whom. The first failure is a 400 with a string ``message``.

A campaign's *settings* are its ``CreateCampaignDTO`` fields (customers included); it keeps them
as a ``config`` (the same without the customers) and an *audience*: one :data:`Member` per
customer, in upload order, with the line it is called from. Each contact's call is the body
:func:`call_body` builds, placed as ``POST /call`` would place it.
"""

from __future__ import annotations

import copy
from typing import Any

from .campaign_records import DEFAULT_MAX_CONCURRENCY, Contact
from .directory import deep_merge
from .errors import bad_request
from .validation import MAX_CAMPAIGN_CUSTOMERS, customer_error

#: Who speaks on a campaign's calls: exactly one of these.
SOURCES = ("assistantId", "workflowId", "squadId")
#: The fields that say whom a campaign calls, from which line.
AUDIENCE = ("phoneNumberId", "dialPlan", "customers")
#: A campaign's overrides and a contact's are merged key by key at every depth (``metadata``
#: too: the call carries both); a JSON schema stays one value.
_MERGE_ATOMIC = frozenset({"schema"})
_OVERRIDES = ("assistantOverrides", "squadOverrides")

#: One customer of an audience: ``(where, customer, phoneNumberId, dialPlan entry or None)``,
#: ``where`` being the customer's path in the body (``customers.3.``) for error messages.
Member = tuple[str, dict[str, Any], str, int | None]


def given(body: dict[str, Any]) -> dict[str, Any]:
    """The settings a body gives (``null`` is "not given", as for class-validator's ``IsOptional``)."""
    return {k: copy.deepcopy(v) for k, v in body.items() if v is not None and k != "duplicateFromCampaignId"}


def overlay(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` on top of the settings ``base`` (a campaign duplicated, or updated).

    Naming who speaks replaces all of :data:`SOURCES`; a ``dialPlan`` replaces the whole audience;
    ``customers`` replace the customers (and a ``dialPlan``: they are called from
    ``phoneNumberId``); a ``phoneNumberId`` alone keeps the customers (those of a ``dialPlan``
    become ``customers``, now all called from that line)."""
    out = {k: v for k, v in base.items() if k not in changes}
    if any(k in changes for k in SOURCES):
        for key in SOURCES:
            out.pop(key, None)
    if "dialPlan" in changes:
        for key in AUDIENCE:
            out.pop(key, None)
    elif "customers" in changes:
        out.pop("dialPlan", None)
    elif "phoneNumberId" in changes and "dialPlan" in out:
        out["customers"] = [c for entry in out.pop("dialPlan") for c in entry.get("customers") or []]
    return {**out, **changes}


def _one_of(settings: dict[str, Any], keys: tuple[str, ...], missing: str) -> None:
    present = [key for key in keys if settings.get(key) is not None]
    if len(present) > 1:
        names = ", ".join(f"`{k}`" for k in keys)
        raise bad_request(f"Only One Of {names} Can Be Provided, Got {', '.join(f'`{k}`' for k in present)}.")
    if not present:
        raise bad_request(missing)


def check_settings(settings: dict[str, Any]) -> list[Member]:
    """The audience of valid ``settings``; a 400 naming the first problem."""
    _one_of(
        settings, SOURCES, "Couldn't Get Assistant. Need Either `assistantId`, `workflowId` Or `squadId`."
    )
    _one_of(
        settings,
        ("phoneNumberId", "dialPlan"),
        "Couldn't Get Phone Number. Need Either `phoneNumberId` Or `dialPlan`.",
    )
    if settings.get("dialPlan") is not None and settings.get("customers") is not None:
        raise bad_request(
            "Only One Of `customers`, `dialPlan` Can Be Provided: the customers of a `dialPlan` "
            "are in its entries."
        )
    if settings.get("dialPlan") is None and settings.get("customers") is None:
        raise bad_request("Couldn't Get Customers. Need Either `customers` Or `dialPlan`.")
    members = audience(settings)
    if not members:
        raise bad_request("Couldn't Create Campaign. A Campaign Needs At Least 1 Customer.")
    if len(members) > MAX_CAMPAIGN_CUSTOMERS:
        raise bad_request(
            f"Couldn't Create Campaign. A Campaign Can Have At Most {MAX_CAMPAIGN_CUSTOMERS} Customers, "
            f"Got {len(members)}."
        )
    for where, customer, _, _ in members:
        problem = customer_problem(customer, where)
        if problem is not None:
            raise bad_request(problem)
    return members


def audience(settings: dict[str, Any]) -> list[Member]:
    """Every customer of ``settings``, in upload order, with its line."""
    plan = settings.get("dialPlan")
    if plan is not None:
        return [
            (f"dialPlan.{j}.customers.{i}.", customer, entry["phoneNumberId"], j)
            for j, entry in enumerate(plan)
            for i, customer in enumerate(entry.get("customers") or [])
        ]
    line = settings["phoneNumberId"]
    return [(f"customers.{i}.", customer, line, None) for i, customer in enumerate(settings["customers"])]


def customer_problem(customer: dict[str, Any], where: str) -> str | None:
    """Why a campaign cannot call ``customer`` (at ``where`` in the body), or None: checked as a
    call's customer is (:func:`.validation.customer_error`), and a campaign calls numbers (a
    ``CampaignContact`` has a ``number``)."""
    if customer.get("number") is None:
        return f"Couldn't Create Campaign. `{where}number` Is Required: A Campaign Calls Numbers."
    problem = customer_error(customer)
    return problem.replace("customer.", where) if problem is not None else None


def kept_config(settings: dict[str, Any]) -> dict[str, Any]:
    """What a campaign keeps of its settings: all but the customers (they live on its contacts),
    ``maxConcurrency`` filled in."""
    config = {k: v for k, v in settings.items() if k != "customers"}
    if "dialPlan" in config:
        config["dialPlan"] = [{k: v for k, v in e.items() if k != "customers"} for e in config["dialPlan"]]
    config.setdefault("maxConcurrency", DEFAULT_MAX_CONCURRENCY)
    return config


def lines(config: dict[str, Any], members: list[Member]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Per line of ``members``: a call body without its customer, and the customers called from it
    (what must resolve before the campaign is accepted: assistant, phone number, outputs)."""
    by_line: dict[str, list[dict[str, Any]]] = {}
    for _, customer, line, _ in members:
        by_line.setdefault(line, []).append(customer)
    head = {k: config[k] for k in (*SOURCES, *_OVERRIDES) if k in config}
    return [({**head, "phoneNumberId": line}, customers) for line, customers in by_line.items()]


def call_body(config: dict[str, Any], contact: Contact, campaign_id: str) -> dict[str, Any]:
    """The ``POST /call`` body of ``contact``'s call: the campaign's speaker and the contact's line,
    the campaign's overrides with the contact's own merged on top, and ``campaignId``."""
    body: dict[str, Any] = {k: config[k] for k in SOURCES if k in config}
    body["phoneNumberId"] = contact.line
    for key in _OVERRIDES:
        mine, theirs = config.get(key), contact.customer.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            body[key] = deep_merge(mine, theirs, _MERGE_ATOMIC)
        elif isinstance(mine, dict) or isinstance(theirs, dict):
            body[key] = mine if isinstance(mine, dict) else theirs
    body["customer"] = contact.customer
    body["campaignId"] = campaign_id
    return body
