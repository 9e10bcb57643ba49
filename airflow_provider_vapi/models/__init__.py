"""Pydantic v2 models of Vapi's wire format: the one place that knows it.

* :mod:`.requests`: what we send (``CreateCallRequest``; the objects inside it in :mod:`.parts`,
  the JSON check first in :mod:`.shape`); strict.
* :mod:`.calls`: what Vapi answers (``Call``, ``CallBatchResponse``); lenient.

Python code uses snake_case attributes; the wire uses camelCase. Ended reasons are classified by
:mod:`airflow_provider_vapi.models.outcomes` and secrets found by :mod:`airflow_provider_vapi.secrets`;
those names are re-exported here, where callers have always imported them from. Where the
idempotency key travels in a request and on a call is :mod:`airflow_provider_vapi.idempotency`'s
business, not the models'.
"""

from __future__ import annotations

from airflow_provider_vapi.models.calls import (
    Call,
    CallBatchError,
    CallBatchResponse,
    CallStatus,
    SubscriptionLimits,
)
from airflow_provider_vapi.models.outcomes import CallOutcome, classify_ended_reason
from airflow_provider_vapi.models.parts import (
    AssistantOverrides,
    Customer,
    SchedulePlan,
    TwilioPhoneNumber,
    WorkflowOverrides,
)
from airflow_provider_vapi.models.requests import CreateCallRequest
from airflow_provider_vapi.secrets import find_secret_values, redact_secrets

__all__ = [
    "AssistantOverrides",
    "Call",
    "CallBatchError",
    "CallBatchResponse",
    "CallOutcome",
    "CallStatus",
    "CreateCallRequest",
    "Customer",
    "SchedulePlan",
    "SubscriptionLimits",
    "TwilioPhoneNumber",
    "WorkflowOverrides",
    "classify_ended_reason",
    "find_secret_values",
    "redact_secrets",
]
