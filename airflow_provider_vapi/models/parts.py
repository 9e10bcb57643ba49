"""The objects inside a ``POST /call`` body: the schedule, the customer, a Twilio line, overrides.

Strict like :mod:`.requests` (``extra="forbid"``: Vapi answers 400 to unknown properties); each
rule's error says what is wrong and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from airflow_provider_vapi.wire.paging import iso

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_PUNCTUATION = re.compile(r"[\s\-().]")
_E164_EXAMPLE = "+14155550123"


class _RequestModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_nones(cls, data: Any) -> Any:
        """``None`` means "not given": it must not reach the wire as ``null`` (Vapi refuses it)."""
        if not isinstance(data, Mapping):
            return data
        declared = cls._wire_names()
        return {k: v for k, v in data.items() if v is not None or k not in declared}

    @classmethod
    def _wire_names(cls) -> dict[str, str]:
        """Every accepted key (attribute name and alias) -> wire name (computed once per class)."""
        cached: dict[str, str] | None = cls.__dict__.get("_wire_names_cache")
        if cached is None:
            cached = {}
            for name, info in cls.model_fields.items():
                alias = info.alias or name
                cached[name] = cached[alias] = alias
            type.__setattr__(cls, "_wire_names_cache", cached)
        return cached

    @classmethod
    def _normalise(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """Wire-name keys; nested models dumped to wire dicts (what the legacy upgrade reads)."""
        names = cls._wire_names()
        out: dict[str, Any] = {}
        for key, value in data.items():
            out[names.get(key, key)] = _to_wire_value(value)
        return out


def _to_wire_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_unset=True, mode="json")
    if isinstance(value, list):
        return [_to_wire_value(item) for item in value]
    return value


def _check_length(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise PydanticCustomError(
            "too_long", f"{what} is {len(value)} characters long; Vapi accepts at most {limit}: shorten it"
        )
    return value


def _check_e164(value: str, what: str) -> str:
    if _E164.fullmatch(value):
        return value
    compact = _PUNCTUATION.sub("", value)
    if compact != value and _E164.fullmatch(compact):
        fix = f"write it without spaces, dashes, dots or parentheses: {compact}"
    else:
        fix = f"write it as +<country code><number>, e.g. {_E164_EXAMPLE}"
    raise PydanticCustomError("e164", f"{what} {value!r} is not E.164: {fix}")


class SchedulePlan(_RequestModel):
    """When Vapi may start a call; the call is ``scheduled`` until then.

    Datetimes (or ISO strings) must carry a timezone: calling a person at the wrong hour because a
    naive time was taken for UTC is worse than refusing it.
    """

    earliest_at: datetime
    latest_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _require_earliest(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("earliestAt", data.get("earliest_at")) is None:
            raise PydanticCustomError(
                "missing_earliest_at",
                "schedule_plan.earliest_at is required: the earliest time Vapi may start the call "
                "(a timezone-aware datetime or an ISO 8601 string such as 2025-01-01T09:00:00Z)",
            )
        return data

    @field_validator("earliest_at", "latest_at", mode="before")
    @classmethod
    def _rendered(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and "{{" in value:
            raise PydanticCustomError(
                "unrendered_template",
                f"schedule_plan.{info.field_name} still holds a template after rendering ({value[:80]!r}): "
                "Airflow renders only expressions the DAG wrote that use its names (ds, macros, params, "
                "ti ...), never text that arrived as data (XCom, conf). Write the expression in the DAG, "
                "e.g. {{ macros.ds_add(ds, 1) }}T09:00:00Z, or pass a datetime",
            )
        return value

    @field_validator("earliest_at", "latest_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise PydanticCustomError(
                "naive_datetime",
                f"schedule_plan.{info.field_name} {value.isoformat()} has no timezone: give an aware "
                "datetime or an ISO string ending in Z or +hh:mm",
            )
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise PydanticCustomError(
                "datetime_range",
                f"schedule_plan.{info.field_name} {value.isoformat()} falls outside years 1-9999 in UTC: "
                "give a real date",
            ) from None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.latest_at is not None and self.latest_at <= self.earliest_at:
            raise PydanticCustomError(
                "schedule_order",
                f"schedule_plan.latest_at ({iso(self.latest_at)}) must be after earliest_at "
                f"({iso(self.earliest_at)})",
            )
        return self

    @field_serializer("earliest_at", "latest_at")
    def _serialise(self, value: datetime | None) -> str | None:
        return None if value is None else iso(value)


class AssistantOverrides(BaseModel):
    """``AssistantOverrides``: loosely typed, every assistant setting passes through (camelCase).

    ``variable_values`` fill the ``{{name}}`` placeholders of the prompts; ``metadata`` is echoed
    back on the ``Call`` (where the idempotency key travels).
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    variable_values: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class WorkflowOverrides(BaseModel):
    """``WorkflowOverrides``: only ``variableValues`` in the spec (no ``metadata``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    variable_values: dict[str, Any] | None = None


class Customer(_RequestModel):
    """``CreateCustomerDTO``: who is called."""

    number_e164_check_enabled: bool | None = None
    extension: str | None = None
    assistant_overrides: AssistantOverrides | None = None
    squad_overrides: AssistantOverrides | None = None
    number: str | None = Field(default=None, min_length=3, max_length=40)
    sip_uri: str | None = None
    name: str | None = None
    email: str | None = None
    external_id: str | None = None

    _LIMITS: ClassVar[dict[str, int]] = {"extension": 10, "name": 40, "email": 40, "external_id": 40}

    @field_validator("extension", "name", "email", "external_id")
    @classmethod
    def _length(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = info.field_name or ""
        return None if value is None else _check_length(value, cls._LIMITS[name], name)

    @field_validator("number")
    @classmethod
    def _e164(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or info.data.get("number_e164_check_enabled") is False:
            return value
        try:
            return _check_e164(value, "number")
        except PydanticCustomError as exc:
            raise PydanticCustomError(
                "e164", f"{exc.message()} (or set number_e164_check_enabled=False for a non-E.164 number)"
            ) from None

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if self.number is None and self.sip_uri is None:
            raise PydanticCustomError(
                "no_destination", "a customer needs a number (E.164, e.g. +14155550123) or a sip_uri"
            )
        return self


class TwilioPhoneNumber(_RequestModel):
    """``ImportTwilioPhoneNumberDTO``: a transient caller line on your own Twilio account."""

    # The line and how to reach it on Twilio: the number, and the token or an API key and secret.
    twilio_phone_number: str
    twilio_account_sid: str
    twilio_auth_token: SecretStr | None = None
    twilio_api_key: str | None = None
    twilio_api_secret: SecretStr | None = None
    # Everything else of ImportTwilioPhoneNumberDTO, passed through.
    fallback_destination: dict[str, Any] | None = None
    hooks: list[dict[str, Any]] | None = None
    sms_enabled: bool | None = None
    name: str | None = None
    assistant_id: str | None = None
    workflow_id: str | None = None
    squad_id: str | None = None
    server: dict[str, Any] | None = None

    @field_validator("twilio_phone_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        return _check_e164(value, "twilio_phone_number")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _check_length(value, 40, "name")

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.twilio_auth_token is None and not (self.twilio_api_key and self.twilio_api_secret):
            raise PydanticCustomError(
                "twilio_credentials",
                "phone_number needs twilio_auth_token (or twilio_api_key and twilio_api_secret)",
            )
        return self

    @field_serializer("twilio_auth_token", "twilio_api_secret")
    def _reveal(self, value: SecretStr | None) -> str | None:
        """The wire needs the real value; ``repr`` and logs only ever show ``**********``."""
        return None if value is None else value.get_secret_value()
