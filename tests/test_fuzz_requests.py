"""Property-based: whatever a body holds, validation ends in the documented errors, never a raw one.

``CreateCallRequest.from_payload`` may raise only pydantic's ``ValidationError`` (the model API);
``VapiHook.create_call`` only :class:`VapiError` subclasses (``VapiInvalidRequestError`` before
sending, ``VapiAPIError`` for what Vapi refuses). The holes this closed, each also pinned by an
example below: a list where a legacy field expects a string (``TypeError: unhashable``), dates at
year 1 or 9999 with an offset (``OverflowError``), nesting 600 deep or a cycle (``RecursionError``),
a lone surrogate (``UnicodeEncodeError`` inside httpx), NaN (not JSON).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_vapi.exceptions import VapiError, VapiInvalidRequestError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import CreateCallRequest

NUMBER = "+14155550123"
#: Keys worth generating: CreateCallDTO's, 2024-era ones the legacy upgrade reads, nested ones.
KEYS = (  # noqa: SIM905
    "assistant assistantId assistantOverrides assistantVersion customer customerId customers name "
    "phoneNumber phoneNumberId schedulePlan squad squadId squadOverrides transport workflow workflowId "
    "workflowOverrides earliestAt latestAt number extension email externalId numberE164CheckEnabled "
    "sipUri variableValues metadata model voice transcriber firstMessage recordingEnabled serverUrl "
    "serverUrlSecret analysisPlan structuredDataSchema summaryPrompt knowledgeBase provider tools type "
    "server url headers secret credentials apiKey twilioPhoneNumber twilioAccountSid twilioAuthToken "
    "members assistantDestinations messages content role endCallFunctionEnabled voicemailDetection"
).split()

_DATES = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59), timezones=st.just(UTC)
) | st.builds(
    lambda d, h: d.replace(tzinfo=timezone(timedelta(hours=h))),
    st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 30), datetime(2026, 5, 1, 9)]),
    st.integers(-14, 14),
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from([NUMBER, "asst_1", "{{ ds }}", "{{name}}", "\ud800", "2026-01-01T09:00:00Z"])
    | _DATES
    | _DATES.map(lambda d: d.isoformat())
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)
_BODIES = st.fixed_dictionaries(
    {},
    optional={
        key: _JSON
        for key in (
            *("assistant", "assistantId", "customer", "customers", "phoneNumber", "phoneNumberId"),
            *("schedulePlan", "assistantOverrides", "name", "squad", "transport", "workflow"),
        )
    },
) | st.dictionaries(st.sampled_from(KEYS), _JSON, max_size=6)


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"end": True}
    for _ in range(depth):
        node = {"model": node}
    return node


def _cyclic() -> dict[str, Any]:
    assistant: dict[str, Any] = {"firstMessage": "hi"}
    assistant["model"] = {"provider": "openai", "model": "gpt-4o", "loop": assistant}
    return {"assistant": assistant, "phoneNumberId": "pn_1", "customer": {"number": NUMBER}}


EXAMPLES = (
    {"assistant": {"recordingEnabled": ["yes"]}, "phoneNumberId": "pn", "customer": {"number": NUMBER}},
    {"assistant": {"knowledgeBase": {"provider": ["x"]}}, "phoneNumberId": "pn", "customer": {"number": NUMBER}},
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER},
     "schedulePlan": {"earliestAt": "0001-01-01T00:00:00+05:00"}},
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER},
     "schedulePlan": {"earliestAt": "9999-12-31T23:30:00-05:00"}},
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER},
     "schedulePlan": {"earliestAt": datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))}},
    {"assistant": _nested(600), "phoneNumberId": "p", "customer": {"number": NUMBER}},
    _cyclic(),
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER, "name": "Ann \ud800"}},
    {"serverUrlSecret": "\ud800"},  # found by hypothesis: Airflow 2.11's re2 masker raised on it
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER},
     "assistant": {"server": {"url": "https://h", "headers": {"Authorization": "Bearer tok\udc00en-part"}}}},
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER},
     "assistantOverrides": {"variableValues": {"x": float("nan")}}},
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER},
     "assistantOverrides": {"metadata": {1: "non-str key"}}},
    {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": NUMBER},
     "assistantOverrides": {"metadata": {"raw": b"bytes"}}},
)  # fmt: skip


@pytest.mark.parametrize("body", EXAMPLES, ids=lambda b: repr(b)[:60])
def test_pathological_bodies_end_in_a_validation_error(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateCallRequest.from_payload(body)
    assert caught.value.errors(), "the error says where"


@pytest.mark.parametrize("body", EXAMPLES, ids=lambda b: repr(b)[:60])
def test_create_call_refuses_them_before_sending(vapi_conn: str, vapi_emulator: Any, body: dict[str, Any]) -> None:
    with pytest.raises(VapiInvalidRequestError, match="nothing was sent") as caught:
        VapiHook(vapi_conn).create_call(body)
    assert "input_value" not in str(caught.value)
    assert vapi_emulator.requests("POST", "/call") == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_BODIES)
def test_from_payload_raises_only_validation_errors(body: dict[str, Any]) -> None:
    try:
        request = CreateCallRequest.from_payload(body)
    except ValidationError:
        return
    request.to_wire()  # what passed validation serialises
    request.secret_values()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_BODIES)
def test_create_call_raises_only_documented_errors(vapi_conn: str, body: dict[str, Any]) -> None:
    try:
        VapiHook(vapi_conn).create_call(body)
    except VapiInvalidRequestError as exc:
        assert "nothing was sent" in str(exc)
    except VapiError:
        pass
