"""Request validation the way Vapi's NestJS API does it (class-validator, then service checks).

Two phases, as on the real server:

* DTO validation (:func:`dto_errors`): every violation is collected into one 400 whose ``message``
  is a list. Unknown properties are ``property X should not exist``; nested objects prefix their
  path (``assistant.property recordingEnabled should not exist``, ``customers.0.name must be ...``),
  which is how NestJS's ``ValidationPipe`` flattens nested class-validator errors.
* Service checks (in :mod:`.engine`): the first failure is a 400 with a string ``message``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from . import spec_names as names

#: E.164: ``+`` then 7 to 15 digits, the first not 0.
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
E164_MESSAGE = (
    "customer.number must be a valid phone number in the E.164 format. "
    "Hot tip, you may be missing the country code (Eg. US: +1)."
)

#: Provider-polymorphic objects (20 voice, 17 model, 14 transcriber schemas in the spec) are not
#: whitelisted; instead the 2024 names that no provider schema has any more are refused.
LEGACY_VOICE_KEYS = frozenset(
    {
        "inputPreprocessingEnabled",
        "inputMinCharacters",
        "inputPunctuationBoundaries",
        "fillerInjectionEnabled",
    }
)
LEGACY_MODEL_KEYS = frozenset({"semanticCachingEnabled", "functions"})
LEGACY_TRANSCRIBER_KEYS: frozenset[str] = frozenset()

_ID_FIELDS = ("assistantId", "squadId", "workflowId", "phoneNumberId", "customerId")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_iso(value: Any) -> datetime | None:
    """An ISO 8601 string as an aware datetime (naive means UTC), or None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Collector:
    """Accumulates class-validator style messages."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def unknown(self, obj: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
        for key in obj:
            if key not in allowed:
                self.errors.append(f"{prefix}property {key} should not exist")

    def denied(self, obj: dict[str, Any], denied: frozenset[str], prefix: str) -> None:
        for key in obj:
            if key in denied:
                self.errors.append(f"{prefix}property {key} should not exist")

    def string(self, obj: dict[str, Any], key: str, prefix: str, max_len: int | None = None) -> None:
        if key not in obj or obj[key] is None:
            return
        value = obj[key]
        if not isinstance(value, str):
            self.errors.append(f"{prefix}{key} must be a string")
        elif max_len is not None and len(value) > max_len:
            self.errors.append(f"{prefix}{key} must be shorter than or equal to {max_len} characters")

    def nested(self, obj: dict[str, Any], key: str, prefix: str) -> dict[str, Any] | None:
        """The nested object at ``key`` if it is one; records an error when it is not."""
        if key not in obj or obj[key] is None:
            return None
        value = obj[key]
        if not isinstance(value, dict):
            self.errors.append(f"{prefix}nested property {key} must be either object or array")
            return None
        return value

    def whitelisted(
        self, obj: dict[str, Any], key: str, prefix: str, allowed: frozenset[str]
    ) -> dict[str, Any] | None:
        """:meth:`nested`, whose own properties are then checked against ``allowed``."""
        sub = self.nested(obj, key, prefix)
        if sub is not None:
            self.unknown(sub, allowed, f"{prefix}{key}.")
        return sub

    def number(self, obj: dict[str, Any], key: str, prefix: str, low: float, high: float) -> None:
        if key not in obj:
            return
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.errors.append(f"{prefix}{key} must be a number conforming to the specified constraints")
        elif value < low:
            self.errors.append(f"{prefix}{key} must not be less than {low:g}")
        elif value > high:
            self.errors.append(f"{prefix}{key} must not be greater than {high:g}")

    def plain_object(self, obj: dict[str, Any], key: str, prefix: str) -> None:
        if key in obj and obj[key] is not None and not isinstance(obj[key], dict):
            self.errors.append(f"{prefix}{key} must be an object")


def _analysis_plan(c: _Collector, plan: dict[str, Any], prefix: str) -> None:
    c.unknown(plan, names.ANALYSIS_PLAN_KEYS, prefix)
    c.number(plan, "minMessagesThreshold", prefix, 0, float("inf"))
    for key, allowed in (
        ("summaryPlan", names.SUMMARY_PLAN_KEYS),
        ("structuredDataPlan", names.STRUCTURED_DATA_PLAN_KEYS),
        ("successEvaluationPlan", names.SUCCESS_EVALUATION_PLAN_KEYS),
    ):
        sub = c.whitelisted(plan, key, prefix, allowed)
        if sub is not None:
            c.plain_object(sub, "schema", f"{prefix}{key}.")


def _assistant(c: _Collector, obj: dict[str, Any], prefix: str, allowed: frozenset[str]) -> None:
    """An inline assistant (``CreateAssistantDTO``) or overrides (``AssistantOverrides``)."""
    c.unknown(obj, allowed, prefix)
    c.string(obj, "name", prefix, 40)
    c.string(obj, "firstMessage", prefix)
    c.number(obj, "maxDurationSeconds", prefix, 10, 43200)
    c.plain_object(obj, "metadata", prefix)
    c.plain_object(obj, "variableValues", prefix)
    for key, denied in (
        ("voice", LEGACY_VOICE_KEYS),
        ("model", LEGACY_MODEL_KEYS),
        ("transcriber", LEGACY_TRANSCRIBER_KEYS),
    ):
        sub = c.nested(obj, key, prefix)
        if sub is not None:
            c.denied(sub, denied, f"{prefix}{key}.")
    plan = c.nested(obj, "analysisPlan", prefix)
    if plan is not None:
        _analysis_plan(c, plan, f"{prefix}analysisPlan.")
    for key, sub_allowed in (
        ("artifactPlan", names.ARTIFACT_PLAN_KEYS),
        ("compliancePlan", names.COMPLIANCE_PLAN_KEYS),
        ("server", names.SERVER_KEYS),
    ):
        c.whitelisted(obj, key, prefix, sub_allowed)


def _customer(c: _Collector, obj: dict[str, Any], prefix: str) -> None:
    c.unknown(obj, names.CUSTOMER_KEYS, prefix)
    for key, max_len in (
        ("name", 40),
        ("email", 40),
        ("externalId", 40),
        ("extension", 10),
        ("sipUri", None),
    ):
        c.string(obj, key, prefix, max_len)
    if "number" in obj and obj["number"] is not None:
        number = obj["number"]
        if not isinstance(number, str):
            c.errors.append(f"{prefix}number must be a string")
        elif len(number) < 3:
            c.errors.append(f"{prefix}number must be longer than or equal to 3 characters")
        elif len(number) > 40:
            c.errors.append(f"{prefix}number must be shorter than or equal to 40 characters")
    if "numberE164CheckEnabled" in obj and not isinstance(obj["numberE164CheckEnabled"], bool):
        c.errors.append(f"{prefix}numberE164CheckEnabled must be a boolean value")
    for key in ("assistantOverrides", "squadOverrides"):
        sub = c.nested(obj, key, prefix)
        if sub is not None:
            _assistant(c, sub, f"{prefix}{key}.", names.ASSISTANT_OVERRIDES_KEYS)


def _schedule_plan(c: _Collector, plan: dict[str, Any], prefix: str) -> None:
    c.unknown(plan, names.SCHEDULE_PLAN_KEYS, prefix)
    if parse_iso(plan.get("earliestAt")) is None:
        c.errors.append(f"{prefix}earliestAt must be a valid ISO 8601 date string")
    if "latestAt" in plan and parse_iso(plan["latestAt"]) is None:
        c.errors.append(f"{prefix}latestAt must be a valid ISO 8601 date string")


def create_call_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``POST /call`` body (``CreateCallDTO``); empty when valid."""
    c = _Collector()
    c.unknown(body, names.CREATE_CALL_KEYS, "")
    c.string(body, "name", "", 40)
    for key in _ID_FIELDS:
        c.string(body, key, "")
    c.string(body, "assistantVersion", "")
    customer = c.nested(body, "customer", "")
    if customer is not None:
        _customer(c, customer, "customer.")
    if "customers" in body:
        customers = body["customers"]
        if not isinstance(customers, list):
            c.errors.append("customers must be an array")
        else:
            for i, item in enumerate(customers):
                if isinstance(item, dict):
                    _customer(c, item, f"customers.{i}.")
                else:
                    c.errors.append(f"customers.{i}.nested property customers must be either object or array")
    plan = c.nested(body, "schedulePlan", "")
    if plan is not None:
        _schedule_plan(c, plan, "schedulePlan.")
    phone = c.nested(body, "phoneNumber", "")
    if phone is not None:
        c.unknown(phone, names.TWILIO_PHONE_NUMBER_KEYS, "phoneNumber.")
        for key in ("twilioPhoneNumber", "twilioAccountSid"):
            if not isinstance(phone.get(key), str):
                c.errors.append(f"phoneNumber.{key} must be a string")
        c.string(phone, "name", "phoneNumber.", 40)
        c.whitelisted(phone, "server", "phoneNumber.", names.SERVER_KEYS)
    assistant = c.nested(body, "assistant", "")
    if assistant is not None:
        _assistant(c, assistant, "assistant.", names.ASSISTANT_KEYS)
    for key in ("assistantOverrides", "squadOverrides"):
        sub = c.nested(body, key, "")
        if sub is not None:
            _assistant(c, sub, f"{key}.", names.ASSISTANT_OVERRIDES_KEYS)
    for key in ("squad", "workflow", "workflowOverrides", "transport"):
        c.nested(body, key, "")
    return c.errors


def create_assistant_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``POST /assistant`` body (``CreateAssistantDTO``)."""
    c = _Collector()
    _assistant(c, body, "", names.ASSISTANT_KEYS)
    return c.errors


def update_call_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``PATCH /call/{id}`` body (``UpdateCallDTO``: only ``name``)."""
    c = _Collector()
    c.unknown(body, names.UPDATE_CALL_KEYS, "")
    c.string(body, "name", "", 40)
    return c.errors


def delete_call_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``DELETE /call/{id}`` body (``DeleteCallDTO``)."""
    c = _Collector()
    c.unknown(body, names.DELETE_CALL_KEYS, "")
    if "ids" in body and not (isinstance(body["ids"], list) and all(isinstance(i, str) for i in body["ids"])):
        c.errors.append("each value in ids must be a string")
    return c.errors


def customer_error(customer: dict[str, Any]) -> str | None:
    """The service-level error of one customer (checked per customer, so a batch can half-fail)."""
    number = customer.get("number")
    if number is None and not customer.get("sipUri"):
        return "Couldn't Get Customer. Need Either `customer.number` Or `customer.sipUri`."
    if number is not None and customer.get("numberE164CheckEnabled", True) and not E164.match(number):
        return E164_MESSAGE
    return None
