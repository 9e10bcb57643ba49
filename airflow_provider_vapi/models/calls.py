"""Response models: a ``Call`` as Vapi returns it, and the answer to a batch create.

Lenient on purpose: Vapi adds fields, statuses and ended reasons often, and a DAG must not break
the day it does, so unknown fields are kept and nested objects stay dicts. Ended reasons are
classified by :mod:`airflow_provider_vapi.models.outcomes`; secrets Vapi echoes back are redacted from XCom
by :mod:`airflow_provider_vapi.secrets`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from pydantic.alias_generators import to_camel

from airflow_provider_vapi.models.outcomes import CallOutcome, classify_ended_reason
from airflow_provider_vapi.secrets import stored_call
from airflow_provider_vapi.wire.paging import iso


class CallStatus(StrEnum):
    """``Call.status``. ``not-found`` and ``deletion-failed`` are undocumented but seen in the spec."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    FORWARDING = "forwarding"
    ENDED = "ended"
    NOT_FOUND = "not-found"
    DELETION_FAILED = "deletion-failed"


class _ResponseModel(BaseModel):
    """Lenient: keeps every field Vapi sends, including the ones it adds after this release."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class Call(_ResponseModel):
    """A ``Call`` as Vapi returns it. Nested objects stay dicts: they change too often to pin."""

    id: str
    org_id: str | None = None
    type: str | None = None
    status: CallStatus | str | None = None
    ended_reason: str | None = None
    ended_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cost: float | None = None
    costs: list[dict[str, Any]] | None = None
    cost_breakdown: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    phone_call_provider: str | None = None
    phone_call_provider_id: str | None = None
    phone_call_transport: str | None = None
    destination: dict[str, Any] | None = None
    transport: dict[str, Any] | None = None
    artifact_plan: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None
    compliance: dict[str, Any] | None = None
    campaign_id: str | None = None
    assistant_id: str | None = None
    assistant_version: str | None = None
    assistant: dict[str, Any] | None = None
    assistant_overrides: dict[str, Any] | None = None
    squad_id: str | None = None
    squad: dict[str, Any] | None = None
    squad_overrides: dict[str, Any] | None = None
    workflow_id: str | None = None
    workflow: dict[str, Any] | None = None
    workflow_overrides: dict[str, Any] | None = None
    phone_number_id: str | None = None
    phone_number: dict[str, Any] | None = None
    customer_id: str | None = None
    customer: dict[str, Any] | None = None
    name: str | None = None
    schedule_plan: dict[str, Any] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _known_status(cls, value: Any) -> Any:
        """A known status becomes a :class:`CallStatus`; a new one stays a plain string."""
        try:
            return CallStatus(value)
        except ValueError:
            return value

    @field_serializer("created_at", "updated_at", "started_at", "ended_at")
    def _serialise_time(self, value: datetime | None) -> str | None:
        return None if value is None else iso(value)

    @property
    def is_ended(self) -> bool:
        return self.status == CallStatus.ENDED

    @property
    def outcome(self) -> CallOutcome:
        """What happened, from ``endedReason`` (``unknown`` while the call has not ended)."""
        return classify_ended_reason(self.ended_reason)

    @property
    def structured_data(self) -> Any:
        return _dict(self.analysis).get("structuredData")

    def _text(self, container: dict[str, Any] | None, key: str) -> str | None:
        """``container[key]`` (or a top-level ``key``, where older answers put it) when it is text."""
        extra = self.__pydantic_extra__ or {}
        value = _dict(container).get(key, extra.get(key))
        return value if isinstance(value, str) else None

    @property
    def summary(self) -> str | None:
        return self._text(self.analysis, "summary")

    @property
    def success_evaluation(self) -> Any:
        """Whatever the rubric produced (a string per the spec; booleans and numbers are seen)."""
        return _dict(self.analysis).get("successEvaluation")

    @property
    def structured_outputs(self) -> dict[str, Any] | None:
        value = _dict(self.artifact).get("structuredOutputs")
        return value if isinstance(value, dict) else None

    @property
    def transcript(self) -> str | None:
        return self._text(self.artifact, "transcript")

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def control_url(self) -> str | None:
        value = _dict(self.monitor).get("controlUrl")
        return value if isinstance(value, str) else None

    @property
    def has_analysis(self) -> bool:
        """True once Vapi has written any analysis (it lags ``ended`` by a few seconds)."""
        analysis = _dict(self.analysis)
        return any(
            analysis.get(k) not in (None, "", {}) for k in ("summary", "structuredData", "successEvaluation")
        )

    @property
    def metadata(self) -> dict[str, Any]:
        """``assistantOverrides.metadata`` (or ``squadOverrides.metadata``), else ``{}``."""
        for overrides in (self.assistant_overrides, self.squad_overrides):
            value = _dict(overrides).get("metadata")
            if isinstance(value, dict):
                return value
        return {}

    def to_xcom(self) -> dict[str, Any]:
        """The call as Vapi sent it (camelCase, received keys only, unknown ones kept) + ``outcome``.

        Secrets Vapi echoes back are replaced by ``***`` (:func:`.secrets.redact_secrets`): the Call
        repeats the request, so a transient ``phoneNumber.twilioAuthToken``, an inline assistant's
        ``server.headers.X-Vapi-Secret`` or ``credentials[].apiKey`` would otherwise land in the
        metadata database, readable by anyone who can see the task's XCom. The presigned recording
        links are left out for the same reason (:func:`.secrets.stored_call`).
        """
        data = stored_call(self.model_dump(by_alias=True, exclude_unset=True, mode="json"))
        data["outcome"] = self.outcome.value
        return data


class SubscriptionLimits(_ResponseModel):
    concurrency_blocked: bool | None = None
    concurrency_limit: float | None = None
    remaining_concurrent_calls: float | None = None


class CallBatchError(_ResponseModel):
    """A customer of a batch that Vapi did not call (kept as sent: it may be what was invalid)."""

    customer: dict[str, Any] = Field(default_factory=dict)
    error: str = ""


class CallBatchResponse(_ResponseModel):
    """``POST /call`` with ``customers``: 201 even when some (or all) customers failed."""

    results: list[Call] = Field(default_factory=list)
    errors: list[CallBatchError] = Field(default_factory=list)
    subscription_limits: SubscriptionLimits | None = None
