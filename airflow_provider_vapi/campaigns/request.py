"""The ``POST /v2/campaign`` body: built from the operator's parameters and checked before it is sent.

Every rule Vapi would answer 400 to, and the ones it would not but a DAG author wants caught (the
same person twice in the list), is checked here, all at once: each problem names the field (as
``customers[7].number``) and the fix, and quotes no value (a customer row may hold a token in its
overrides). Customers may come as E.164 strings or dicts, from upstream tasks or from a file
(:func:`read_customers`); fields named in ``customer_variables`` move into that customer's
``variableValues``, so a database row like ``{number, name, appointment}`` becomes a contact whose
assistant can say ``{{appointment}}``.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Final

from pydantic import ValidationError

from airflow_provider_vapi.exceptions import VapiInvalidRequestError, _where
from airflow_provider_vapi.landing.files import NOTHING, shown_path
from airflow_provider_vapi.models import Customer
from airflow_provider_vapi.models.nested import nested_problems
from airflow_provider_vapi.wire.paging import parse_ts_or_none

#: Vapi's limit of customers per campaign.
MAX_CUSTOMERS: Final = 10_000
#: ``CreateCampaignDTO``'s properties (tests/test_campaigns_request.py checks them against the spec).
CREATE_FIELDS: Final = frozenset(
    {
        "name", "assistantId", "workflowId", "squadId", "phoneNumberId", "dialPlan", "schedulePlan",
        "customers", "maxConcurrency", "assistantOverrides", "squadOverrides", "server",
        "serverMessages", "predialPlan", "duplicateFromCampaignId",
    }
)  # fmt: skip
_SOURCES: Final = ("assistantId", "squadId", "workflowId")
Problem = tuple[tuple[str | int, ...], str]
CUSTOMER_SUFFIXES: Final = (".csv", ".jsonl", ".json")
_FILE_FIX: Final = (
    "give a .csv file with a header row (number, name, ...), a .jsonl file or a .json array, "
    "local or on object storage (s3://... with storage_conn_id); nothing was sent to Vapi"
)


def chunks(customers: Sequence[Any], size: int = MAX_CUSTOMERS) -> list[list[Any]]:
    """``customers`` cut into lists of at most ``size`` (Vapi's 10,000 by default), for
    ``RunCampaignOperator.partial(...).expand(customers=chunks(rows))``: one campaign per chunk."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [list(customers[i : i + size]) for i in range(0, len(customers), size)]


def _not_json(where: str, line: int, exc: json.JSONDecodeError) -> VapiInvalidRequestError:
    """Never the line itself in the message: a customer row may hold a token."""
    return VapiInvalidRequestError(
        f"customers_path: {where}, line {line}: not JSON ({exc.msg} at column {exc.colno}): {_FILE_FIX}."
    )


def read_customers(text: str, suffix: str, where: str = "the file") -> list[dict[str, Any]]:
    """Rows of a ``.csv`` (header row; empty cells left out), ``.jsonl`` or ``.json`` (an array)
    file; ``where`` names the file in errors (which name its line, never its content)."""
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        try:
            return [{k: v for k, v in row.items() if k and v not in (None, "")} for row in reader]
        except csv.Error as exc:
            raise VapiInvalidRequestError(
                f"customers_path: {where}, line {reader.line_num}: not CSV ({exc}): {_FILE_FIX}."
            ) from None
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                rows += [json.loads(line)] if line.strip() else []
            except json.JSONDecodeError as exc:
                raise _not_json(where, number, exc) from None
        return rows
    if suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _not_json(where, exc.lineno, exc) from None
        if isinstance(rows, list):
            return rows
        raise VapiInvalidRequestError(
            f"customers_path: {where} holds a JSON {type(rows).__name__}, not an array of customers: "
            f"{_FILE_FIX}."
        )
    raise VapiInvalidRequestError(
        f"customers_path: a {suffix or 'suffix-less'} file cannot be read as customers; use a .csv "
        "file with a header row (number, name, ...), a .jsonl file or a .json array."
    )


def check_customers_path(value: Any) -> str:
    """``customers_path`` as rendered, trimmed, before storage is touched: not empty (a template
    that rendered to nothing), of a kind :func:`read_customers` reads; a clear error otherwise."""
    text = value.strip() if isinstance(value, str) else ""
    if text.lower() in NOTHING:
        raise VapiInvalidRequestError(
            f"customers_path={value!r} is empty (a template that rendered to nothing?): {_FILE_FIX}."
        )
    if PurePosixPath(text).suffix.lower() not in CUSTOMER_SUFFIXES:
        read_customers("", PurePosixPath(text).suffix.lower())  # the error naming the kinds it reads
    return text


def customers_text(file: Any, where: str) -> str:
    """The text of ``file`` (an ObjectStoragePath; ``where`` names it), UTF-8 with or without the
    BOM Excel writes; no such file, a folder or other bytes are a clear error, before anything is
    sent."""
    where = shown_path(where)
    if not file.exists():
        raise VapiInvalidRequestError(f"customers_path: {where} does not exist: {_FILE_FIX}.")
    if file.is_dir():
        raise VapiInvalidRequestError(f"customers_path: {where} is a folder, not a file: {_FILE_FIX}.")
    try:
        text: str = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VapiInvalidRequestError(
            f"customers_path: {where} is not UTF-8 text (byte {exc.start}): save it as UTF-8 (Excel: "
            "'CSV UTF-8'); nothing was sent to Vapi."
        ) from None
    return text


def _customer(item: Any, variables: Sequence[str], overrides_key: str) -> Any:
    """One customer in wire form: a number string becomes ``{"number": ...}``; the named fields
    move into its overrides' ``variableValues``."""
    if isinstance(item, str):
        return {"number": item.strip()}
    if not isinstance(item, Mapping):
        return item  # reported by the checks
    customer = dict(item)
    moved = {name: customer.pop(name) for name in variables if name in customer}
    if moved:
        overrides = dict(customer.get(overrides_key) or {})
        overrides["variableValues"] = {**dict(overrides.get("variableValues") or {}), **moved}
        customer[overrides_key] = overrides
    return customer


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def build_campaign_body(params: Mapping[str, Any], customer_variables: Sequence[str] = ()) -> dict[str, Any]:
    """The camelCase body from snake_case parameters (``None``: not sent); ``payload`` merges last."""
    overrides_key = "squadOverrides" if params.get("squad_id") else "assistantOverrides"
    body: dict[str, Any] = {
        "name": params.get("name"),
        "assistantId": params.get("assistant_id"),
        "squadId": params.get("squad_id"),
        "workflowId": params.get("workflow_id"),
        "phoneNumberId": params.get("phone_number_id"),
        "schedulePlan": _schedule_plan(params.get("schedule_plan")),
        "maxConcurrency": params.get("max_concurrency"),
        overrides_key: copy.deepcopy(params.get("assistant_overrides")),
    }
    if params.get("variable_values"):
        overrides = body[overrides_key] = dict(body[overrides_key] or {})
        overrides["variableValues"] = {
            **dict(overrides.get("variableValues") or {}),
            **params["variable_values"],
        }
    customers = params.get("customers")
    if customers is not None:
        items = customers if isinstance(customers, list | tuple) else [customers]
        body["customers"] = [_customer(c, customer_variables, overrides_key) for c in items]
    body = {k: v for k, v in body.items() if v is not None}
    payload = params.get("payload")
    return deep_merge(body, payload) if isinstance(payload, Mapping) else body


def _schedule_plan(plan: Any) -> Any:
    """Datetimes become ISO 8601 text; ``earliest_at``/``latest_at`` are accepted too."""
    if not isinstance(plan, Mapping):
        return plan
    names = {"earliest_at": "earliestAt", "latest_at": "latestAt"}
    out = {names.get(k, k): v for k, v in plan.items()}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in out.items()}


# -- the checks ----------------------------------------------------------------------------------


def check_campaign_body(body: Mapping[str, Any], what: str = "The campaign request") -> None:
    """Raise :class:`VapiInvalidRequestError` listing every problem of ``body``; nothing is sent."""
    problems = [*_top_level(body), *_schedule(body.get("schedulePlan")), *_customers(body)]
    problems += [(loc, message) for loc, message in nested_problems(_nested_part(body))]
    if problems:
        lines = [f"  - {_where(loc)}: {message}" for loc, message in problems]
        count = f"{len(lines)} problem{'s' if len(lines) != 1 else ''}"
        raise VapiInvalidRequestError(
            f"{what} is invalid; nothing was sent to Vapi ({count}):\n" + "\n".join(lines)
        )


def _top_level(body: Mapping[str, Any]) -> Iterator[Problem]:
    for key in sorted(set(body) - CREATE_FIELDS):
        yield (key,), "is not a field of a campaign (CreateCampaignDTO); remove it or fix its name"
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        yield ("name",), "is required: the campaign's name, shown in Vapi's dashboard"
    sources = [s for s in _SOURCES if body.get(s)]
    if len(sources) != 1:
        given = ", ".join(sources) or "none"
        yield ("assistantId",), f"give exactly one of assistant_id, squad_id, workflow_id (given: {given})"
    if bool(body.get("phoneNumberId")) == bool(body.get("dialPlan")):
        yield (
            ("phoneNumberId",),
            "give exactly one of phone_number_id (the caller line) or a dialPlan in payload",
        )
    concurrency = body.get("maxConcurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        yield ("maxConcurrency",), "must be a whole number of at least 1 (Vapi's default is 10)"


def _schedule(plan: Any) -> Iterator[Problem]:
    if plan is None:
        return
    if not isinstance(plan, Mapping):
        yield ("schedulePlan",), 'must be an object: {"earliestAt": <ISO 8601>, "latestAt": <ISO 8601>}'
        return
    earliest = parse_ts_or_none(plan.get("earliestAt"))
    latest = parse_ts_or_none(plan.get("latestAt"))
    if earliest is None:
        yield ("schedulePlan", "earliestAt"), "is required: an ISO 8601 date-time with a timezone"
    if plan.get("latestAt") is not None and latest is None:
        yield ("schedulePlan", "latestAt"), "must be an ISO 8601 date-time with a timezone"
    if earliest and latest and latest <= earliest:
        yield ("schedulePlan", "latestAt"), "must be after earliestAt: no call could be placed"


def _customers(body: Mapping[str, Any]) -> Iterator[Problem]:
    customers = body.get("customers")
    if customers is None:
        if not body.get("dialPlan"):
            yield ("customers",), "is required: the people to call (E.164 numbers or customer objects)"
        return
    if not isinstance(customers, list) or not customers:
        yield ("customers",), "must be a non-empty list of customers"
        return
    if len(customers) > MAX_CUSTOMERS:
        yield (
            ("customers",),
            (
                f"{len(customers):,} customers; Vapi takes at most {MAX_CUSTOMERS:,} per campaign. Split "
                "the list and map the task: RunCampaignOperator.partial(...).expand(customers="
                "airflow_provider_vapi.campaigns.chunks(rows)), one campaign per 10,000"
            ),
        )
    yield from _each_customer(customers)


def _each_customer(customers: Iterable[Any]) -> Iterator[Problem]:
    first_at: dict[tuple[Any, ...], int] = {}
    for index, customer in enumerate(customers):
        if not isinstance(customer, Mapping):
            yield ("customers", index), "must be an E.164 number string or a customer object"
            continue
        try:
            Customer.model_validate(_snake(customer))
        except ValidationError as exc:
            for error in exc.errors(include_input=False):
                yield ("customers", index, *error["loc"]), error["msg"]
            continue
        person = (customer.get("number"), customer.get("extension"), customer.get("sipUri"))
        if person in first_at:
            yield (
                ("customers", index),
                (
                    f"is the same person as customers[{first_at[person]}] (number, extension and SIP URI): "
                    "they would be called twice; remove duplicates upstream (SELECT DISTINCT)"
                ),
            )
        else:
            first_at[person] = index


def _snake(customer: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``Customer`` checks, by its snake_case names; the rest is ``nested_problems``'."""
    names = {
        "numberE164CheckEnabled": "number_e164_check_enabled",
        "sipUri": "sip_uri",
        "externalId": "external_id",
    }
    wanted = ("number", "extension", "name", "email", *names)
    return {names.get(k, k): v for k, v in customer.items() if k in wanted}


def _nested_part(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the call-body checker knows how to walk (the same schemas as in ``POST /call``)."""
    keys = ("customers", "assistantOverrides", "squadOverrides", "schedulePlan")
    return {k: body[k] for k in keys if isinstance(body.get(k), list | dict)}
