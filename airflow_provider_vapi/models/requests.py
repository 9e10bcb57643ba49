"""The request model: the body of ``POST /call`` (``CreateCallDTO``); the objects inside it are
:mod:`.parts`'s. Checked in order: is it JSON at all (:mod:`.shape`), legacy upgrades, unknown
keys, the rules Vapi keeps in code, then the fields.

Strict on purpose: Vapi answers 400 to unknown properties, so they are refused here first, with a
message that says how to fix the body, and every problem is reported at once. Bodies written for
the 2024 API (``POST /call/phone``) are upgraded by :mod:`airflow_provider_vapi.models.legacy` on the way
in. Python code uses snake_case attributes; the wire uses camelCase (aliases, ``populate_by_name``).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any, Final, Self

from pydantic import (
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from airflow_provider_vapi.models.legacy import upgrade_call_body
from airflow_provider_vapi.models.nested import nested_problems
from airflow_provider_vapi.models.parts import (
    AssistantOverrides,
    Customer,
    SchedulePlan,
    TwilioPhoneNumber,
    WorkflowOverrides,
    _check_length,
    _RequestModel,
)
from airflow_provider_vapi.models.shape import shape_problems
from airflow_provider_vapi.secrets import REDACTED, find_secret_values, redact_secrets

# Named after the package: users filter "airflow_provider_vapi.models" for the upgrade warnings.
logger = logging.getLogger(__package__)


def _error(kind: str, loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


def _invalid(title: str, errors: list[InitErrorDetails]) -> ValidationError:
    """One error for every problem; its text never quotes an input (it may be a secret)."""
    return ValidationError.from_exception_data(title, errors, hide_input=True)


def _field_error(error: ErrorDetails, secrets: list[str]) -> InitErrorDetails:
    """A pydantic error of a field, its input redacted (unknown nested keys are :mod:`.nested`'s)."""
    loc = tuple(error["loc"])
    return _error(str(error["type"]), loc, str(error["msg"]), _redact(error.get("input"), secrets))


def _redact(value: Any, secrets: list[str]) -> Any:
    """``value`` for ``errors()``: secrets found by key name, or known from the body, as ``***``."""
    if isinstance(value, str):
        return REDACTED if value in secrets else value
    return redact_secrets(value)


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
        """Check it is JSON, upgrade legacy fields, validate, and report every problem at once.

        Errors never show a value (``hide_input``), and the values ``errors()`` carries have their
        secrets replaced by ``***``: a typo beside a Twilio token must not print the token.
        """
        if not isinstance(data, Mapping):
            result: Self = handler(data)
            return result
        shape = shape_problems(data)
        if shape:
            raise _invalid(cls.__name__, [_error("not_json", loc, message, None) for loc, message in shape])
        strict = bool((info.context or {}).get("strict_legacy"))
        body = cls._normalise_nested(cls._normalise(data))
        secrets = find_secret_values(body)
        upgraded = upgrade_call_body(body, strict=strict)
        body = upgraded.body
        errors = [_error("legacy_field", (path,), message, None) for path, message in upgraded.problems]
        errors += cls._unknown_properties(body)
        nested = nested_problems(body) if (info.context or {}).get("check_nested", True) else []
        errors += [_error("nested_property", loc, message, None) for loc, message in nested]
        errors += cls._cross_field_errors(body)
        try:
            model = handler(body)
        except ValidationError as exc:
            reported = {loc for loc, _ in nested}
            errors += [_field_error(e, secrets) for e in exc.errors() if tuple(e["loc"]) not in reported]
        if errors:
            raise _invalid(cls.__name__, errors)
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
        """Keys ``POST /call`` does not have, taken out of ``body`` (their values are not quoted)."""
        wire = sorted(set(cls._wire_names().values()))
        errors = []
        for key in [k for k in body if k not in cls._wire_names()]:
            del body[key]
            close = difflib.get_close_matches(key, wire, n=1, cutoff=0.7)
            fix = f"did you mean {close[0]!r}?" if close else "remove it"
            errors.append(
                _error(
                    "unknown_property",
                    (key,),
                    f"property {key!r} does not exist on POST /call (Vapi answers 400 "
                    f"'property {key} should not exist'): {fix}",
                    None,
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
    def from_payload(
        cls, body: Mapping[str, Any], *, strict: bool = False, check_nested: bool = True
    ) -> Self:
        """Parse a camelCase body; ``strict`` refuses legacy fields that have no current home.

        ``check_nested`` checks inline assistants, overrides and customers against Vapi's schemas
        (:mod:`.nested`); turn it off only to send a setting Vapi added after this release.
        """
        return cls.model_validate(body, context={"strict_legacy": strict, "check_nested": check_nested})

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
