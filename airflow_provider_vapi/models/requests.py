"""Request models: the body of ``POST /call`` (``CreateCallDTO``) and the objects inside it.

Strict on purpose: Vapi answers 400 to unknown properties, so they are refused here first, with a
message that says how to fix the body, and every problem is reported at once. Bodies written for
the 2024 API (``POST /call/phone``) are upgraded by :mod:`airflow_provider_vapi.legacy` on the way
in. Python code uses snake_case attributes; the wire uses camelCase (aliases, ``populate_by_name``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from airflow_provider_vapi.legacy import upgrade_call_body
from airflow_provider_vapi.paging import iso
from airflow_provider_vapi.secrets import find_secret_values

# Named after the package: users filter "airflow_provider_vapi.models" for the upgrade warnings.
logger = logging.getLogger(__package__)

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_PUNCTUATION = re.compile(r"[\s\-().]")
_E164_EXAMPLE = "+14155550123"


def _error(kind: str, loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


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

    @field_validator("earliest_at", "latest_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise PydanticCustomError(
                "naive_datetime",
                f"schedule_plan.{info.field_name} {value.isoformat()} has no timezone: give an aware "
                "datetime or an ISO string ending in Z or +hh:mm",
            )
        return value

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


_SOURCES: Final = ("assistant_id", "assistant", "squad_id", "squad", "workflow_id", "workflow")
_CALLERS: Final = ("phone_number_id", "phone_number")
_CALLEES: Final = ("customer_id", "customer", "customers")


class CreateCallRequest(_RequestModel):
    """The body of ``POST /call`` (``CreateCallDTO``), every field of the spec.

    Build it with :meth:`from_payload` (or ``model_validate``) from Vapi's camelCase body, or with
    snake_case keyword arguments; send :meth:`to_wire`. Validation reports every problem at once.
    ``model_validate(body, context={"strict_legacy": True})`` refuses legacy fields that would
    otherwise be dropped with a warning.
    """

    assistant_version: str | None = None
    transport: dict[str, Any] | None = None
    customers: list[Customer] | None = None
    name: str | None = None
    schedule_plan: SchedulePlan | None = None
    assistant_id: str | None = None
    assistant: dict[str, Any] | None = None
    assistant_overrides: AssistantOverrides | None = None
    squad_id: str | None = None
    squad: dict[str, Any] | None = None
    squad_overrides: AssistantOverrides | None = None
    workflow_id: str | None = None
    workflow: dict[str, Any] | None = None
    workflow_overrides: WorkflowOverrides | None = None
    phone_number_id: str | None = None
    phone_number: TwilioPhoneNumber | None = None
    customer_id: str | None = None
    customer: Customer | None = None

    #: Secrets seen in the body as given (incl. legacy fields dropped before sending).
    _input_secrets: list[str] = PrivateAttr(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _check_length(value, 40, "name")

    @model_validator(mode="wrap")
    @classmethod
    def _prepare(cls, data: Any, handler: Any, info: ValidationInfo) -> Self:
        """Upgrade legacy fields, then validate, and report every problem in one error."""
        if not isinstance(data, Mapping):
            result: Self = handler(data)
            return result
        strict = bool((info.context or {}).get("strict_legacy"))
        body = cls._normalise_nested(cls._normalise(data))
        secrets = find_secret_values(body)
        upgraded = upgrade_call_body(body, strict=strict)
        body = upgraded.body
        errors = [_error("legacy_field", (path,), message, None) for path, message in upgraded.problems]
        errors += cls._unknown_properties(body)
        errors += cls._cross_field_errors(body)
        try:
            model = handler(body)
        except ValidationError as exc:
            errors += [
                _error(str(e["type"]), tuple(e["loc"]), str(e["msg"]), e.get("input")) for e in exc.errors()
            ]
            raise ValidationError.from_exception_data(cls.__name__, errors) from None
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        for warning in upgraded.warnings:
            logger.warning(warning)
        model._input_secrets = secrets
        return model  # type: ignore[no-any-return]

    @classmethod
    def _normalise_nested(cls, body: dict[str, Any]) -> dict[str, Any]:
        """Snake_case keys of customers and the phone number become wire names too."""
        if isinstance(body.get("customer"), Mapping):
            body["customer"] = Customer._normalise(body["customer"])
        if isinstance(body.get("customers"), list):
            body["customers"] = [
                Customer._normalise(c) if isinstance(c, Mapping) else c for c in body["customers"]
            ]
        if isinstance(body.get("phoneNumber"), Mapping):
            body["phoneNumber"] = TwilioPhoneNumber._normalise(body["phoneNumber"])
        return body

    @classmethod
    def _unknown_properties(cls, body: dict[str, Any]) -> list[InitErrorDetails]:
        known = set(cls._wire_names())
        errors = []
        for key in [k for k in body if k not in known]:
            errors.append(
                _error(
                    "unknown_property",
                    (key,),
                    f"property {key!r} does not exist on POST /call (Vapi answers 400 "
                    f"'property {key} should not exist'): remove it",
                    body.pop(key),
                )
            )
        return errors

    @classmethod
    def _cross_field_errors(cls, body: dict[str, Any]) -> list[InitErrorDetails]:
        """The rules Vapi enforces in code rather than in the schema."""
        names = cls._wire_names()

        def given(*fields: str) -> list[str]:
            return [f for f in fields if body.get(names[f]) is not None]

        collisions, errors = [], []
        for group, purpose in (
            (_SOURCES, "say who speaks"),
            (_CALLERS, "the caller line"),
            (_CALLEES, "who is called"),
        ):
            present = given(*group)
            websocket = body.get("transport") is not None and group != _SOURCES
            if len(present) > 1:
                collisions.append(f"one of {' / '.join(group)} ({purpose}; got {', '.join(present)})")
            elif not present and not websocket:
                errors.append(
                    _error(
                        "missing_alternative", ("body",), f"{purpose}: set one of {', '.join(group)}", None
                    )
                )
        if collisions:
            message = "choose " + "; ".join(collisions)
            given_all = [f for group in (_SOURCES, _CALLERS, _CALLEES) for f in given(*group)]
            errors.insert(0, _error("alternatives", ("body",), message, given_all))
        if body.get("assistantVersion") is not None and body.get("assistantId") is None:
            errors.append(
                _error(
                    "assistant_version",
                    ("assistantVersion",),
                    "assistant_version only works with assistant_id: remove it or call a saved assistant",
                    body["assistantVersion"],
                )
            )
        if body.get("customers") == []:
            errors.append(
                _error("empty_batch", ("customers",), "customers is empty: give at least one customer", [])
            )
        return errors

    # -- public helpers --------------------------------------------------------------------
    @classmethod
    def from_payload(cls, body: Mapping[str, Any], *, strict: bool = False) -> Self:
        """Parse a camelCase body; ``strict`` refuses legacy fields that have no current home."""
        return cls.model_validate(body, context={"strict_legacy": strict})

    def to_wire(self) -> dict[str, Any]:
        """The JSON body to send: camelCase, only what was given."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")

    @property
    def source(self) -> str:
        """``assistant``, ``squad`` or ``workflow``: what speaks on this call."""
        if self.squad_id is not None or self.squad is not None:
            return "squad"
        if self.workflow_id is not None or self.workflow is not None:
            return "workflow"
        return "assistant"

    def secret_values(self) -> list[str]:
        """Every secret in the body (for Airflow's secret masker), found by key name."""
        found = find_secret_values(self.to_wire())
        return list(dict.fromkeys([*found, *self._input_secrets]))
