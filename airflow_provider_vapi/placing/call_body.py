"""From ``PlaceCallOperator``'s rendered parameters to a ``POST /call`` body, with errors that
name the parameter.

Rendering is text unless the DAG sets ``render_template_as_native_obj``: ``variable_values=
"{{ ti.xcom_pull('rows') }}"`` arrives as ``"{'a': 1}"``. A parameter that must be an object or a
list is therefore read from JSON text (a ``.json`` template file renders to exactly that) and
otherwise refused here, before anything is sent, with the fix in the message (and without quoting
the value: it may hold a token).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from airflow_provider_vapi.exceptions import VapiInvalidRequestError

#: The request parameters, one row each: (parameter, the ``POST /call`` key it is copied to as it
#: is, or ``None`` when :func:`build_call_body` shapes it, how the Rendered tab shows it). This
#: table makes the operator's ``template_fields``, renderers and attributes, and the body; the
#: operator's signature lists the same names because Airflow (``expand``, ``partial``) reads them.
REQUEST_FIELDS: Final[tuple[tuple[str, str | None, str | None], ...]] = (
    ("assistant_id", "assistantId", None),
    ("assistant", "assistant", "json"),
    ("assistant_overrides", None, "json"),
    ("assistant_version", "assistantVersion", None),
    ("squad_id", "squadId", None),
    ("squad", "squad", "json"),
    ("squad_overrides", "squadOverrides", "json"),
    ("workflow_id", "workflowId", None),
    ("workflow", "workflow", "json"),
    ("workflow_overrides", "workflowOverrides", "json"),
    ("phone_number_id", "phoneNumberId", None),
    ("phone_number", "phoneNumber", "json"),
    ("customer", None, "json"),
    ("customer_id", "customerId", None),
    ("customers", None, "json"),
    ("variable_values", None, "json"),
    ("metadata", None, "json"),
    ("schedule_plan", "schedulePlan", "json"),
    ("name", "name", None),
    ("transport", "transport", "json"),
    ("payload", None, "json"),
)
#: Parameters that take a list; every other "json" row takes an object.
_LISTS: Final = frozenset({"customers"})
#: Parameters that take a phone number string or an object.
_NUMBER_OR_OBJECT: Final = frozenset({"customer"})


def _refuse(name: str, problem: str, fix: str) -> VapiInvalidRequestError:
    return VapiInvalidRequestError(
        f"The call request is invalid; nothing was sent to Vapi: parameter {name} {problem}. {fix}"
    )


def _from_text(name: str, text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        return None
    if stripped[0] not in "[{":
        return text
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise _refuse(
            name,
            f"is text that is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            "A template such as {{ ti.xcom_pull(...) }} renders to Python's text form, not JSON: set "
            "render_template_as_native_obj=True on the DAG, pass the upstream's .output (an XComArg) "
            "instead, or use {{ ... | tojson }}.",
        ) from None


def coerce(name: str, value: Any) -> Any:
    """A parameter as the type it must have (an object, a list, a number string), or an error."""
    if isinstance(value, str):
        value = _from_text(name, value)
    if value is None or value == "":
        return None
    if name in _LISTS:
        wanted, ok = "a list", isinstance(value, list | tuple)
    elif name in _NUMBER_OR_OBJECT:
        wanted, ok = "a phone number string or an object", isinstance(value, str | Mapping)
    else:
        wanted, ok = "an object (a dict)", isinstance(value, Mapping)
    if not ok:
        raise _refuse(
            name,
            f"is {type(value).__name__}, not {wanted}",
            f"Give {wanted}, as Vapi's camelCase JSON.",
        )
    return list(value) if name in _LISTS else value


def _customer(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"number": value.strip()}
    if isinstance(value, Mapping):
        return dict(value)
    raise _refuse(
        name, f"holds a {type(value).__name__}", 'Give each customer as "+14155550123" or {"number": ...}.'
    )


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def build_call_body(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``POST /call`` body from the rendered parameters (``REQUEST_FIELDS`` names), before
    validation: what ``CreateCallRequest`` checks next."""
    given = {name: params.get(name) for name, _, _ in REQUEST_FIELDS}
    for name, _, shown in REQUEST_FIELDS:
        if shown == "json":
            given[name] = coerce(name, given[name])
    body: dict[str, Any] = {}
    for name, wire, _ in REQUEST_FIELDS:
        if wire is not None and given[name] not in (None, "", {}):
            body[wire] = given[name]
    if given["customer"] is not None:
        body["customer"] = _customer("customer", given["customer"])
    if given["customers"] is not None:
        body["customers"] = [_customer(f"customers[{i}]", c) for i, c in enumerate(given["customers"])]
    overrides = dict(given["assistant_overrides"] or {})
    for name, key in (("variable_values", "variableValues"), ("metadata", "metadata")):
        extra = given[name]
        if extra:
            earlier = overrides.get(key)
            overrides[key] = {**(earlier if isinstance(earlier, Mapping) else {}), **extra}
    if overrides:
        body["assistantOverrides"] = overrides
    return merge(body, given["payload"] or {})
