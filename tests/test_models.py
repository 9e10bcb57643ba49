"""The wire models: request validation, the Call (idempotency keys, outcomes and secrets: own files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from airflow_provider_vapi import models, secrets
from airflow_provider_vapi.idempotency import IDEMPOTENCY_METADATA_KEY, key_of
from airflow_provider_vapi.models import (
    Call,
    CallBatchError,
    CallBatchResponse,
    CallOutcome,
    CallStatus,
    CreateCallRequest,
    Customer,
    SchedulePlan,
    SubscriptionLimits,
    TwilioPhoneNumber,
    classify_ended_reason,
    find_secret_values,
    outcomes,
    redact_secrets,
)
from tests.shared_data import openapi_spec, seed_payload

NUMBER = "+14155550123"


def minimal(**extra: Any) -> dict[str, Any]:
    return {"assistantId": "asst_1", "phoneNumberId": "pn_1", "customer": {"number": NUMBER}, **extra}


def errors_of(body: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        CreateCallRequest.from_payload(body, **kwargs)
    return [dict(e) for e in caught.value.errors()]


def messages(body: dict[str, Any]) -> str:
    return "\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors_of(body))


# -- the models follow the spec ------------------------------------------------------------------
def wire_names(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


@pytest.mark.parametrize(
    ("model", "schema"),
    [
        (CreateCallRequest, "CreateCallDTO"),
        (Customer, "CreateCustomerDTO"),
        (TwilioPhoneNumber, "ImportTwilioPhoneNumberDTO"),
        (SchedulePlan, "SchedulePlan"),
        (CallBatchResponse, "CallBatchResponse"),
        (CallBatchError, "CallBatchError"),
        (SubscriptionLimits, "SubscriptionLimits"),
    ],
)
def test_request_and_batch_models_have_exactly_the_spec_fields(model: type[BaseModel], schema: str) -> None:
    spec_fields = set(openapi_spec()["components"]["schemas"][schema]["properties"])
    assert wire_names(model) == spec_fields


def test_call_knows_every_spec_field_and_status() -> None:
    call = openapi_spec()["components"]["schemas"]["Call"]["properties"]
    assert set(call) <= wire_names(Call)
    assert {s.value for s in CallStatus} == set(call["status"]["enum"])


def test_python_names_are_snake_case_and_the_wire_is_camel_case() -> None:
    by_name = CreateCallRequest(
        assistant_id="a",
        phone_number_id="p",
        customer=Customer(number=NUMBER, external_id="crm-1", number_e164_check_enabled=True),
        assistant_overrides={"variable_values": {"first": "Ada"}},
    )
    by_alias = CreateCallRequest.model_validate(
        {
            "assistantId": "a",
            "phoneNumberId": "p",
            "customer": {"number": NUMBER, "externalId": "crm-1", "numberE164CheckEnabled": True},
            "assistantOverrides": {"variableValues": {"first": "Ada"}},
        }
    )
    assert by_name == by_alias
    dumped = by_name.model_dump(by_alias=True, exclude_unset=True)
    assert dumped == by_name.to_wire()
    assert set(dumped) == {"assistantId", "phoneNumberId", "customer", "assistantOverrides"}
    assert set(dumped["customer"]) == {"number", "externalId", "numberE164CheckEnabled"}
    assert dumped["assistantOverrides"] == {"variableValues": {"first": "Ada"}}


def test_none_is_not_sent_and_inline_objects_pass_through() -> None:
    assistant = {"model": {"provider": "openai", "model": "gpt-4o"}, "firstMessage": "Hi {{name}}"}
    body = {"assistant": assistant, "assistantId": None, "phoneNumberId": "p", "customer": {"number": NUMBER}}
    request = CreateCallRequest.from_payload(body)
    assert request.to_wire() == {"assistant": assistant, "phoneNumberId": "p", "customer": {"number": NUMBER}}


def test_a_setting_newer_than_the_spec_is_refused_unless_the_nested_check_is_off() -> None:
    assistant = {"model": {"provider": "openai", "model": "gpt-4o"}, "futureSetting": {"x": [1, None]}}
    body = {"assistant": assistant, "phoneNumberId": "p", "customer": {"number": NUMBER}}
    with pytest.raises(ValidationError, match="futureSetting"):
        CreateCallRequest.from_payload(body)
    request = CreateCallRequest.from_payload(body, check_nested=False)
    assert request.to_wire()["assistant"] == assistant


# -- validation ----------------------------------------------------------------------------------
def test_seed_as_is_is_refused_naming_every_collision() -> None:
    errors = [e for e in errors_of(seed_payload()) if e["type"] == "alternatives"]
    assert len(errors) == 1
    text = errors[0]["msg"]
    assert "got assistant_id, assistant, squad_id, squad)" in text
    assert "got phone_number_id, phone_number)" in text
    assert "got customer_id, customer)" in text
    assert "choose one of assistant_id / assistant / squad_id / squad / workflow_id / workflow" in text


def test_every_problem_is_reported_at_once() -> None:
    body = {
        "phoneNumberId": "p",
        "customer": {"number": "5551234", "name": "n" * 41},
        "assistantVersion": "v3",
        "name": "x" * 41,
        "foo": 1,
    }
    text = messages(body)
    assert (
        "say who speaks: set one of assistant_id, assistant, squad_id, squad, workflow_id, workflow" in text
    )
    assert "customer.number: number '5551234' is not E.164: write it as +<country code><number>" in text
    assert "customer.name: name is 41 characters long; Vapi accepts at most 40" in text
    assert "\nname: name is 41 characters long" in text
    assert "assistant_version only works with assistant_id" in text
    assert "property 'foo' does not exist on POST /call" in text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"assistantId": "a", "customerId": "c"},
            "the caller line: set one of phone_number_id, phone_number",
        ),
        (
            {"assistantId": "a", "phoneNumberId": "p"},
            "who is called: set one of customer_id, customer, customers",
        ),
        (minimal(customers=[]), "customers is empty"),
        (minimal(customers=[{"number": NUMBER}]), "one of customer_id / customer / customers"),
        (
            minimal(workflowId="w"),
            "one of assistant_id / assistant / squad_id / squad / workflow_id / workflow",
        ),
        (minimal(metadata=5), None),  # top-level metadata that is not an object is dropped, not sent
        (
            minimal(customer={"number": "+1 415-555-0123"}),
            "write it without spaces, dashes, dots or parentheses: +14155550123",
        ),
        (minimal(customer={"number": "+04155550123"}), "is not E.164"),
        (minimal(customer={"number": "+1415"}), "is not E.164"),
        (minimal(customer={"name": "x"}), "a customer needs a number"),
        (minimal(customer={"number": NUMBER, "extension": "12345678901"}), "extension is 11 characters long"),
        (minimal(customer={"number": NUMBER, "email": "e" * 41}), "email is 41 characters long"),
        (minimal(customer={"number": NUMBER, "externalId": "e" * 41}), "external_id is 41 characters long"),
        (minimal(assistantVersion="v2", assistantId=None, assistant={}), "assistant_version only works"),
        (minimal(schedulePlan={"latestAt": "2030-01-01T00:00:00Z"}), "schedule_plan.earliest_at is required"),
        (
            minimal(schedulePlan={"earliestAt": "2030-01-02T00:00:00Z", "latestAt": "2030-01-01T00:00:00Z"}),
            "schedule_plan.latest_at (2030-01-01T00:00:00.000Z) must be after earliest_at",
        ),
        (minimal(schedulePlan={"earliestAt": "2030-01-02T00:00:00"}), "has no timezone"),
        (
            minimal(phoneNumberId=None, phoneNumber={"twilioPhoneNumber": NUMBER, "twilioAccountSid": "AC1"}),
            "phone_number needs twilio_auth_token",
        ),
        (
            minimal(
                phoneNumberId=None,
                phoneNumber={
                    "twilioPhoneNumber": "415 555",
                    "twilioAccountSid": "AC1",
                    "twilioAuthToken": "t",
                },
            ),
            "twilio_phone_number '415 555' is not E.164",
        ),
    ],
)
def test_validation_rules(body: dict[str, Any], expected: str | None) -> None:
    if expected is None:
        assert "metadata" not in CreateCallRequest.from_payload(body).to_wire()
    else:
        assert expected in messages(body)


def test_valid_variants_pass() -> None:
    CreateCallRequest.from_payload(minimal(customer={"number": "5551234", "numberE164CheckEnabled": False}))
    CreateCallRequest.from_payload(minimal(customer={"sipUri": "sip:ada@example.com"}))
    CreateCallRequest.from_payload(minimal(assistantVersion="v3"))
    CreateCallRequest.from_payload({"assistantId": "a", "transport": {"provider": "vapi.websocket"}})
    batch = {
        "squadId": "s",
        "phoneNumberId": "p",
        "customers": [{"number": NUMBER}, {"number": "+442071838750"}],
    }
    assert len(CreateCallRequest.from_payload(batch).customers or []) == 2


def test_schedule_plan_accepts_aware_datetimes_and_strings_and_writes_utc() -> None:
    paris = timezone(timedelta(hours=2))
    plan = SchedulePlan(
        earliest_at=datetime(2030, 5, 1, 11, 0, tzinfo=paris), latest_at="2030-05-01T12:30:00+02:00"
    )
    assert plan.model_dump(by_alias=True, mode="json") == {
        "earliestAt": "2030-05-01T09:00:00.000Z",
        "latestAt": "2030-05-01T10:30:00.000Z",
    }
    request = CreateCallRequest(assistant_id="a", phone_number_id="p", customer_id="c", schedule_plan=plan)
    assert request.to_wire()["schedulePlan"]["earliestAt"] == "2030-05-01T09:00:00.000Z"
    with pytest.raises(ValidationError, match="has no timezone"):
        SchedulePlan(earliest_at=datetime(2030, 5, 1))


def test_create_customer_dto_has_per_customer_overrides_in_the_spec() -> None:
    props = openapi_spec()["components"]["schemas"]["CreateCustomerDTO"]["properties"]
    assert {"assistantOverrides", "squadOverrides"} <= set(props)
    overrides = openapi_spec()["components"]["schemas"]["AssistantOverrides"]["properties"]
    assert "metadata" in overrides
    assert "metadata" not in openapi_spec()["components"]["schemas"]["WorkflowOverrides"]["properties"]


def test_split_out_names_are_still_importable_from_models() -> None:
    assert (CallOutcome, classify_ended_reason) == (outcomes.CallOutcome, outcomes.classify_ended_reason)
    assert (find_secret_values, redact_secrets) == (secrets.find_secret_values, secrets.redact_secrets)
    assert all(hasattr(models, name) for name in models.__all__)


# -- the Call ------------------------------------------------------------------------------------
def a_call(**extra: Any) -> dict[str, Any]:
    return {
        "id": "call_1",
        "orgId": "org_1",
        "type": "outboundPhoneCall",
        "status": "ended",
        "endedReason": "customer-ended-call",
        "createdAt": "2025-01-01T10:00:00.000Z",
        "updatedAt": "2025-01-01T10:02:00.000Z",
        "startedAt": "2025-01-01T10:00:05.000Z",
        "endedAt": "2025-01-01T10:01:35.500Z",
        "cost": 0.12,
        "costs": [{"type": "vapi", "cost": 0.05}],
        "costBreakdown": {"total": 0.12},
        "assistantId": "asst_1",
        "assistantOverrides": {"metadata": {IDEMPOTENCY_METADATA_KEY: "k", "order": 7}},
        "customer": {"number": NUMBER},
        "phoneNumberId": "pn_1",
        "monitor": {"listenUrl": "wss://l", "controlUrl": "https://c/control"},
        "analysis": {"summary": "Booked.", "structuredData": {"booked": True}, "successEvaluation": "true"},
        "artifact": {"transcript": "AI: hi\nUser: bye", "structuredOutputs": {"o1": {"result": 3}}},
        **extra,
    }


def test_call_accessors() -> None:
    call = Call.model_validate(a_call())
    assert call.status is CallStatus.ENDED and call.is_ended
    assert call.outcome is CallOutcome.COMPLETED
    assert call.created_at == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert call.duration_seconds == 90.5
    assert call.control_url == "https://c/control"
    assert (call.summary, call.structured_data, call.success_evaluation) == (
        "Booked.",
        {"booked": True},
        "true",
    )
    assert call.structured_outputs == {"o1": {"result": 3}}
    assert call.transcript == "AI: hi\nUser: bye"
    assert call.has_analysis and call.cost == 0.12
    assert call.metadata == {IDEMPOTENCY_METADATA_KEY: "k", "order": 7}
    assert key_of(call) == "k"


def test_call_before_it_ends() -> None:
    call = Call.model_validate({"id": "c", "status": "queued", "createdAt": "2025-01-01T10:00:00Z"})
    assert not call.is_ended and call.outcome is CallOutcome.UNKNOWN
    assert call.duration_seconds is None and call.control_url is None and not call.has_analysis
    assert (call.summary, call.transcript, call.structured_outputs, key_of(call)) == (None,) * 4
    assert call.metadata == {}
    assert not Call.model_validate(
        {"id": "c", "analysis": {"summary": "", "structuredData": {}}}
    ).has_analysis


def test_call_never_breaks_on_what_vapi_adds_and_xcom_keeps_it() -> None:
    raw = a_call(status="on-hold", endedReason="brand-new-reason", futureField={"nested": [1, 2]})
    call = Call.model_validate(raw)
    assert call.status == "on-hold" and not isinstance(call.status, CallStatus)
    assert call.outcome is CallOutcome.UNKNOWN
    xcom = call.to_xcom()
    json.dumps(xcom)
    assert set(xcom) == set(raw) | {"outcome"}
    assert xcom["futureField"] == {"nested": [1, 2]}
    assert xcom["status"] == "on-hold" and xcom["endedReason"] == "brand-new-reason"
    assert xcom["outcome"] == "unknown"
    assert xcom["endedAt"] == raw["endedAt"]
    assert {k: v for k, v in xcom.items() if k != "outcome"} == raw


def test_legacy_top_level_transcript_and_summary_are_read() -> None:
    call = Call.model_validate({"id": "c", "transcript": "old transcript", "summary": "old summary"})
    assert (call.transcript, call.summary) == ("old transcript", "old summary")


def test_batch_response_keeps_failed_customers_as_sent() -> None:
    body = {
        "results": [a_call()],
        "errors": [{"customer": {"number": "555"}, "error": "customer.number must be a valid phone number"}],
        "subscriptionLimits": {
            "concurrencyBlocked": False,
            "concurrencyLimit": 10,
            "remainingConcurrentCalls": 9,
        },
    }
    batch = CallBatchResponse.model_validate(body)
    assert batch.results[0].id == "call_1"
    assert batch.errors[0].customer == {"number": "555"}
    assert batch.subscription_limits is not None and batch.subscription_limits.remaining_concurrent_calls == 9
    assert batch.model_dump(by_alias=True, exclude_unset=True, mode="json")["errors"] == body["errors"]
