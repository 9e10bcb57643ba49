"""Request validation the way Vapi's NestJS API does it (class-validator, then service checks).

Two phases, as on the real server:

* DTO validation (``*_errors``): every violation is collected into one 400 whose ``message``
  is a list. Unknown properties and wrong JSON types, at any depth, come from the spec's schemas
  (:mod:`.schema_check`); nested objects prefix their path (``assistant.property recordingEnabled
  should not exist``, ``customers.0.name must be ...``), which is how NestJS's ``ValidationPipe``
  flattens nested class-validator errors. The few lengths, ranges and dates are checked here.
* Service checks (in :mod:`.directory` and :mod:`.creation`): the first failure is a 400 with a string ``message``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .schema_check import BODIES, object_errors

#: E.164: ``+`` then 7 to 15 digits, the first not 0.
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
E164_MESSAGE = (
    "customer.number must be a valid phone number in the E.164 format. "
    "Hot tip, you may be missing the country code (Eg. US: +1)."
)

_ID_FIELDS = ("assistantId", "squadId", "workflowId", "phoneNumberId", "customerId")
#: ``CreateStructuredOutputDTO.type``, ``JsonSchema.type`` and what each condition type requires.
OUTPUT_TYPES = ("ai", "regex")
SCHEMA_TYPES = ("string", "number", "integer", "boolean", "array", "object")
#: What a nested JSON Schema may say instead of ``type``.
_COMPOSITION = ("anyOf", "oneOf", "allOf", "$ref")
_CONDITION_FIELDS = {
    "minMessages": (("count", "number"),),
    "minCallDuration": (("seconds", "number"),),
    "endedReason": (("operator", "string"), ("values", "array")),
}
#: ``StructuredOutputRunDTO.callIds``: how many calls one run may name.
MAX_RUN_CALLS = 100
#: ``CreateCampaignDTO.customers``: how many customers one campaign may have.
MAX_CAMPAIGN_CUSTOMERS = 10_000
#: ``CreateCampaignDTO.serverMessages`` and ``UpdateCampaignDTO.status`` values.
CAMPAIGN_SERVER_MESSAGES = (
    "campaign.started",
    "campaign.cancelled",
    "campaign.ended",
    "campaign.archived",
    "campaign.unarchived",
    "contact.dispatched",
    "contact.completed",
    "contact.failed",
    "contact.skipped",
    "contact.predial-failed",
    "campaign.job.continued",
)
CAMPAIGN_UPDATE_STATUSES = ("ended", "cancelled")
#: The 400 of a route whose ``{id}`` is not a uuid (NestJS ``ParseUUIDPipe``).
UUID_MESSAGE = "Validation failed (uuid is expected)"
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


class _Constraints:
    """Lengths, ranges and dates class-validator checks beyond the types (:mod:`.schema_check`
    has already reported a wrong type, so each check here looks only at values of the right type)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors

    def max_len(self, obj: dict[str, Any], key: str, prefix: str, max_len: int) -> None:
        value = obj.get(key)
        if isinstance(value, str) and len(value) > max_len:
            self.errors.append(f"{prefix}{key} must be shorter than or equal to {max_len} characters")

    def number(self, obj: dict[str, Any], key: str, prefix: str, low: float, high: float) -> None:
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        if value < low:
            self.errors.append(f"{prefix}{key} must not be less than {low:g}")
        elif value > high:
            self.errors.append(f"{prefix}{key} must not be greater than {high:g}")

    def date(self, obj: dict[str, Any], key: str, prefix: str, required: bool) -> None:
        value = obj.get(key)
        if (value is None and required) or (isinstance(value, str) and parse_iso(value) is None):
            self.errors.append(f"{prefix}{key} must be a valid ISO 8601 date string")

    def required_string(self, obj: dict[str, Any], key: str, prefix: str) -> None:
        if obj.get(key) is None:
            self.errors.append(f"{prefix}{key} must be a string")

    def length(self, obj: dict[str, Any], key: str, prefix: str, low: int, high: int) -> None:
        value = obj.get(key)
        if isinstance(value, str) and len(value) < low:
            self.errors.append(f"{prefix}{key} must be longer than or equal to {low} characters")
        self.max_len(obj, key, prefix, high)

    def one_of(self, obj: dict[str, Any], key: str, prefix: str, values: tuple[str, ...]) -> None:
        """``IsEnum``: a string outside ``values`` (a missing one is checked by the caller)."""
        value = obj.get(key)
        if isinstance(value, str) and value not in values:
            self.errors.append(f"{prefix}{key} must be one of the following values: {', '.join(values)}")

    def each_one_of(self, obj: dict[str, Any], key: str, values: tuple[str, ...]) -> None:
        """``IsEnum`` with ``each``: every string of the array ``key`` is one of ``values``."""
        items = obj.get(key)
        if isinstance(items, list) and any(isinstance(v, str) and v not in values for v in items):
            self.errors.append(
                f"each value in {key} must be one of the following values: {', '.join(values)}"
            )

    def schedule_plan(self, body: dict[str, Any]) -> None:
        """A ``SchedulePlan``: ``earliestAt`` required, both ISO 8601 date-times."""
        plan = body.get("schedulePlan")
        if isinstance(plan, dict):
            self.date(plan, "earliestAt", "schedulePlan.", True)
            self.date(plan, "latestAt", "schedulePlan.", False)

    def customers(self, obj: dict[str, Any], prefix: str) -> None:
        """The ``customers`` array of a campaign body or of one of its ``dialPlan`` entries."""
        items = obj.get("customers")
        if isinstance(items, list) and len(items) > MAX_CAMPAIGN_CUSTOMERS:
            self.errors.append(
                f"{prefix}customers must contain no more than {MAX_CAMPAIGN_CUSTOMERS} elements"
            )
        for i, item in enumerate(items if isinstance(items, list) else []):
            self.customer(item, f"{prefix}customers.{i}.")

    def structured_output(self, obj: Any, prefix: str, create: bool) -> None:
        """A ``CreateStructuredOutputDTO`` (``create``: ``name`` and ``schema`` required) or an
        ``UpdateStructuredOutputDTO``."""
        if not isinstance(obj, dict):
            return
        if create:
            self.required_string(obj, "name", prefix)
            if obj.get("schema") is None:
                self.errors.append(f"{prefix}schema must be an object")
        self.length(obj, "name", prefix, 1, 40)
        self.length(obj, "regex", prefix, 1, 1000)
        self.one_of(obj, "type", prefix, OUTPUT_TYPES)
        if isinstance(obj.get("schema"), dict):
            self.json_schema(obj["schema"], f"{prefix}schema.")
        conditions = obj.get("conditions")
        for i, condition in enumerate(conditions if isinstance(conditions, list) else []):
            if isinstance(condition, dict):
                self.condition(condition, f"{prefix}conditions.{i}.")

    def json_schema(self, schema: dict[str, Any], prefix: str, top: bool = True) -> None:
        """``JsonSchema``: ``type`` known, and required at the top (the spec's ``required``); below,
        in ``items``/``properties``, a schema may compose instead (``anyOf``, ``oneOf``, ``allOf``,
        ``$ref``: the spec says composition is supported). Other keywords are the user's: the spec
        table types a JSON Schema as a free-form object, so ``additionalProperties`` passes."""
        kind = schema.get("type")
        composed = not top and any(key in schema for key in _COMPOSITION)
        if (kind is None and not composed) or (isinstance(kind, str) and kind not in SCHEMA_TYPES):
            self.errors.append(f"{prefix}type must be one of the following values: {', '.join(SCHEMA_TYPES)}")
        if isinstance(schema.get("items"), dict):
            self.json_schema(schema["items"], f"{prefix}items.", top=False)
        props = schema.get("properties")
        for key, sub in (props if isinstance(props, dict) else {}).items():
            if isinstance(sub, dict):
                self.json_schema(sub, f"{prefix}properties.{key}.", top=False)
            else:
                self.errors.append(f"{prefix}properties.{key} must be an object")

    def condition(self, condition: dict[str, Any], prefix: str) -> None:
        """A ``MinMessagesCondition``, ``MinCallDurationCondition`` or ``EndedReasonCondition``
        (:mod:`.schema_check` has refused an unknown ``type``)."""
        for key, kind in _CONDITION_FIELDS.get(condition.get("type") or "", ()):
            if condition.get(key) is None:
                self.errors.append(f"{prefix}{key} must be {'an array' if kind == 'array' else 'a ' + kind}")
            elif kind == "number":
                self.number(condition, key, prefix, 0, float("inf"))
        self.one_of(condition, "operator", prefix, ("oneOf", "notOneOf"))

    def assistant(self, obj: Any, prefix: str) -> None:
        """An inline assistant (``CreateAssistantDTO``) or overrides (``AssistantOverrides``)."""
        if not isinstance(obj, dict):
            return
        self.max_len(obj, "name", prefix, 40)
        self.number(obj, "maxDurationSeconds", prefix, 10, 43200)
        plan = obj.get("analysisPlan")
        if isinstance(plan, dict):
            self.number(plan, "minMessagesThreshold", f"{prefix}analysisPlan.", 0, float("inf"))
        artifact = obj.get("artifactPlan")
        outputs = artifact.get("structuredOutputs") if isinstance(artifact, dict) else None
        for i, output in enumerate(outputs if isinstance(outputs, list) else []):
            self.structured_output(output, f"{prefix}artifactPlan.structuredOutputs.{i}.", True)

    def customer(self, obj: Any, prefix: str) -> None:
        if not isinstance(obj, dict):
            return
        for key, max_len in (("name", 40), ("email", 40), ("externalId", 40), ("extension", 10)):
            self.max_len(obj, key, prefix, max_len)
        number = obj.get("number")
        if isinstance(number, str) and len(number) < 3:
            self.errors.append(f"{prefix}number must be longer than or equal to 3 characters")
        self.max_len(obj, "number", prefix, 40)
        for key in ("assistantOverrides", "squadOverrides"):
            self.assistant(obj.get(key), f"{prefix}{key}.")


def _call_constraints(c: _Constraints, body: dict[str, Any]) -> None:
    c.max_len(body, "name", "", 40)
    c.customer(body.get("customer"), "customer.")
    customers = body.get("customers")
    for i, item in enumerate(customers if isinstance(customers, list) else []):
        c.customer(item, f"customers.{i}.")
    c.schedule_plan(body)
    phone = body.get("phoneNumber")
    if isinstance(phone, dict):
        for key in ("twilioPhoneNumber", "twilioAccountSid"):
            c.required_string(phone, key, "phoneNumber.")
        c.max_len(phone, "name", "phoneNumber.", 40)
    c.assistant(body.get("assistant"), "assistant.")
    for key in ("assistantOverrides", "squadOverrides"):
        c.assistant(body.get(key), f"{key}.")
    squad = body.get("squad")
    members = squad.get("members") if isinstance(squad, dict) else None
    for i, member in enumerate(members if isinstance(members, list) else []):
        if isinstance(member, dict):
            c.assistant(member.get("assistant"), f"squad.members.{i}.assistant.")
            c.assistant(member.get("assistantOverrides"), f"squad.members.{i}.assistantOverrides.")


def _campaign_constraints(c: _Constraints, body: dict[str, Any]) -> None:
    """What a ``CreateCampaignDTO`` or an ``UpdateCampaignDTO`` checks beyond names and types."""
    c.customers(body, "")
    plan = body.get("dialPlan")
    for j, entry in enumerate(plan if isinstance(plan, list) else []):
        if isinstance(entry, dict):
            c.required_string(entry, "phoneNumberId", f"dialPlan.{j}.")
            if entry.get("customers") is None:
                c.errors.append(f"dialPlan.{j}.customers must be an array")
            c.customers(entry, f"dialPlan.{j}.")
    c.schedule_plan(body)
    c.number(body, "maxConcurrency", "", 1, float("inf"))
    for key in ("assistantOverrides", "squadOverrides"):
        c.assistant(body.get(key), f"{key}.")
    c.each_one_of(body, "serverMessages", CAMPAIGN_SERVER_MESSAGES)


def create_campaign_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``POST /v2/campaign`` body (``CreateCampaignDTO``)."""
    errors = object_errors(body, BODIES["POST /v2/campaign"])
    c = _Constraints(errors)
    c.required_string(body, "name", "")
    _campaign_constraints(c, body)
    return errors


def update_campaign_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``PATCH /v2/campaign/{id}`` body (``UpdateCampaignDTO``)."""
    errors = object_errors(body, BODIES["PATCH /v2/campaign/{id}"])
    c = _Constraints(errors)
    c.one_of(body, "status", "", CAMPAIGN_UPDATE_STATUSES)
    _campaign_constraints(c, body)
    return errors


def create_call_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``POST /call`` body (``CreateCallDTO``); empty when valid."""
    errors = object_errors(body, BODIES["POST /call"])
    _call_constraints(_Constraints(errors), body)
    return errors


def create_assistant_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``POST /assistant`` body (``CreateAssistantDTO``)."""
    errors = object_errors(body, BODIES["POST /assistant"])
    _Constraints(errors).assistant(body, "")
    return errors


def update_call_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``PATCH /call/{id}`` body (``UpdateCallDTO``: only ``name``)."""
    errors = object_errors(body, BODIES["PATCH /call/{id}"])
    _Constraints(errors).max_len(body, "name", "", 40)
    return errors


def delete_call_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``DELETE /call/{id}`` body (``DeleteCallDTO``)."""
    return object_errors(body, BODIES["DELETE /call/{id}"])


def create_structured_output_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``POST /structured-output`` body (``CreateStructuredOutputDTO``)."""
    errors = object_errors(body, BODIES["POST /structured-output"])
    _Constraints(errors).structured_output(body, "", True)
    return errors


def update_structured_output_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``PATCH /structured-output/{id}`` body (``UpdateStructuredOutputDTO``)."""
    errors = object_errors(body, BODIES["PATCH /structured-output/{id}"])
    _Constraints(errors).structured_output(body, "", False)
    return errors


def run_structured_output_errors(body: dict[str, Any]) -> list[str]:
    """Every DTO violation of a ``POST /structured-output/run`` body (``StructuredOutputRunDTO``)."""
    errors = object_errors(body, BODIES["POST /structured-output/run"])
    call_ids = body.get("callIds")
    if call_ids is None:
        errors.append("callIds must be an array")
    elif isinstance(call_ids, list) and not call_ids:
        errors.append("callIds must contain at least 1 elements")
    elif isinstance(call_ids, list) and len(call_ids) > MAX_RUN_CALLS:
        errors.append(f"callIds must contain no more than {MAX_RUN_CALLS} elements")
    _Constraints(errors).structured_output(body.get("structuredOutput"), "structuredOutput.", True)
    return errors


def customer_error(customer: dict[str, Any]) -> str | None:
    """The service-level error of one customer (checked per customer, so a batch can half-fail)."""
    number = customer.get("number")
    if number is None and not customer.get("sipUri"):
        return "Couldn't Get Customer. Need Either `customer.number` Or `customer.sipUri`."
    if number is not None and customer.get("numberE164CheckEnabled", True) and not E164.match(number):
        return E164_MESSAGE
    return None
