"""Auth and request validation, with Vapi's NestJS error shapes."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_vapi.emulator.errors import INVALID_KEY_MESSAGE
from airflow_provider_vapi.emulator.validation import E164_MESSAGE
from tests.emulator.conftest import create, error
from tests.shared_data import seed_payload

SOURCES = "`assistantId`, `assistant`, `squadId`, `squad`, `workflowId`"
NO_ASSISTANT = f"Couldn't Get Assistant. Need Either {SOURCES} Or `workflow`."
ONLY_ONE = f"Only One Of {SOURCES}, `workflow` Can Be Provided, "


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "vapi-emulator-key"}]
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/call"), ("POST", "/call"), ("GET", "/assistant"), ("GET", "/phone-number")]
)
def test_a_wrong_or_missing_key_is_401(emu, headers, method, path):
    answer = httpx.request(method, emu.url + path, headers=headers, json={} if method == "POST" else None)
    assert error(answer, 401) == INVALID_KEY_MESSAGE
    assert answer.json()["error"] == "Unauthorized"
    assert emu.calls() == []


def test_the_key_is_never_recorded(emu, http):
    http.get("/call")
    httpx.get(emu.url + "/call", headers={"Authorization": "Bearer wrong-key-123"})
    log = emu.request_log()
    assert [r["status"] for r in log["requests"]] == [200, 401] and log["refused"] == 1
    assert emu.api_key not in repr(log) and "wrong-key-123" not in repr(log)


def test_a_custom_key(vapi_emulator_factory):
    emu = vapi_emulator_factory(api_key="sk-custom")
    assert (
        httpx.get(emu.url + "/call", headers={"Authorization": "Bearer vapi-emulator-key"}).status_code == 401
    )
    assert httpx.get(emu.url + "/call", headers={"Authorization": "Bearer sk-custom"}).status_code == 200


def test_unknown_top_level_property(emu, http):
    body = emu.call_body(metadata={"k": "v"})
    assert error(http.post("/call", json=body)) == ["property metadata should not exist"]


def test_the_2024_seed_body_is_refused_at_every_stale_path(emu, http):
    """The seed page's example (POST /call/phone of 2024) against today's POST /call."""
    messages = error(http.post("/call", json=seed_payload()))
    assert isinstance(messages, list)
    expected = [
        "property metadata should not exist",
        "phoneNumber.property serverUrl should not exist",
        "phoneNumber.property serverUrlSecret should not exist",
        "assistant.property recordingEnabled should not exist",
        "assistant.property hipaaEnabled should not exist",
        "assistant.property serverUrl should not exist",
        "assistant.property serverUrlSecret should not exist",
        "assistant.property silenceTimeoutSeconds should not exist",
        "assistant.property responseDelaySeconds should not exist",
        "assistant.property llmRequestDelaySeconds should not exist",
        "assistant.property numWordsToInterruptAssistant should not exist",
        "assistant.property backchannelingEnabled should not exist",
        "assistant.voice.property inputPreprocessingEnabled should not exist",
        "assistant.voice.property inputMinCharacters should not exist",
        "assistant.voice.property fillerInjectionEnabled should not exist",
        "assistant.model.property semanticCachingEnabled should not exist",
        "assistant.analysisPlan.property structuredDataSchema should not exist",
        "assistant.analysisPlan.property summaryPrompt should not exist",
        "assistantOverrides.model.property semanticCachingEnabled should not exist",
    ]
    missing = [m for m in expected if m not in messages]
    assert not missing, (missing, messages)
    assert all("should not exist" in m or "must" in m for m in messages)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"assistant": {"recordingEnabled": True}}, "assistant.property recordingEnabled should not exist"),
        (
            {"assistantOverrides": {"analysisPlan": {"structuredDataSchema": {}}}},
            "assistantOverrides.analysisPlan.property structuredDataSchema should not exist",
        ),
        (
            {"assistantOverrides": {"analysisPlan": {"structuredDataPlan": {"prompt": "x"}}}},
            "assistantOverrides.analysisPlan.structuredDataPlan.property prompt should not exist",
        ),
        (
            {"assistantOverrides": {"artifactPlan": {"recordingEnabled": True, "x": 1}}},
            "assistantOverrides.artifactPlan.property x should not exist",
        ),
        ({"customer": {"number": "+15550001234", "phone": "1"}}, "customer.property phone should not exist"),
        (
            {"customer": {"number": "+15550001234", "name": "n" * 41}},
            "customer.name must be shorter than or equal to 40 characters",
        ),
        (
            {"customer": {"number": "+15550001234", "email": "e" * 41}},
            "customer.email must be shorter than or equal to 40 characters",
        ),
        (
            {"customer": {"number": "+15550001234", "externalId": "x" * 41}},
            "customer.externalId must be shorter than or equal to 40 characters",
        ),
        (
            {"customer": {"number": "+15550001234", "extension": "1" * 11}},
            "customer.extension must be shorter than or equal to 10 characters",
        ),
        ({"name": "n" * 41}, "name must be shorter than or equal to 40 characters"),
        ({"schedulePlan": {}}, "schedulePlan.earliestAt must be a valid ISO 8601 date string"),
        (
            {"schedulePlan": {"earliestAt": "tomorrow"}},
            "schedulePlan.earliestAt must be a valid ISO 8601 date string",
        ),
        (
            {"schedulePlan": {"earliestAt": "2030-01-01T00:00:00Z", "latestAt": "x"}},
            "schedulePlan.latestAt must be a valid ISO 8601 date string",
        ),
        (
            {"schedulePlan": {"earliestAt": "2030-01-01T00:00:00Z", "at": 1}},
            "schedulePlan.property at should not exist",
        ),
        (
            {"assistantOverrides": {"maxDurationSeconds": 5}},
            "assistantOverrides.maxDurationSeconds must not be less than 10",
        ),
    ],
)
def test_dto_violations(emu, http, patch, message):
    body = {**emu.call_body(), **patch}
    assert message in error(http.post("/call", json=body))
    assert emu.calls() == []


def test_customers_in_a_batch_are_prefixed_with_their_index(emu, http):
    body = emu.call_body(customers=[{"number": "+15550001234"}, {"number": "+15550001235", "nickname": "x"}])
    del body["customer"]
    assert error(http.post("/call", json=body)) == ["customers.1.property nickname should not exist"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"customer": None}, "Couldn't Get Customer. Need Either `customerId` Or `customer`."),
        (
            {"customer": None, "customerId": "c0570e70-0000-4000-8000-00000000dead"},
            "Couldn't Get Customer. `customerId` c0570e70-0000-4000-8000-00000000dead Does Not Exist.",
        ),
        ({"phoneNumberId": None}, "Couldn't Get Phone Number. Need Either `phoneNumberId` Or `phoneNumber`."),
        (
            {"phoneNumberId": "b0b0f0e0-0000-4000-8000-00000000dead"},
            "Couldn't Get Phone Number. `phoneNumberId` b0b0f0e0-0000-4000-8000-00000000dead Does Not Exist.",
        ),
        (
            {"assistantId": "a55157a0-0000-4000-8000-00000000dead"},
            "Couldn't Get Assistant. `assistantId` a55157a0-0000-4000-8000-00000000dead Does Not Exist.",
        ),
        (
            {"assistantId": None},
            NO_ASSISTANT,
        ),
        (
            {"assistant": {"name": "inline"}},
            ONLY_ONE + "Got `assistantId`, `assistant`.",
        ),
        (
            {"assistantId": None, "squadId": "s", "workflowId": "w"},
            ONLY_ONE + "Got `squadId`, `workflowId`.",
        ),
        (
            {"assistantId": None, "assistant": {}, "assistantVersion": "3"},
            "`assistantVersion` Can Only Be Used With `assistantId`.",
        ),
        ({"customer": {"number": "5550001234"}}, E164_MESSAGE),
        ({"customer": {"number": "+1 555 000 1234"}}, E164_MESSAGE),
        (
            {"customer": {"name": "no number"}},
            "Couldn't Get Customer. Need Either `customer.number` Or `customer.sipUri`.",
        ),
    ],
)
def test_service_errors(emu, http, change, message):
    body = emu.call_body()
    for key, value in change.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    assert error(http.post("/call", json=body)) == message
    assert emu.calls() == []


def test_e164_check_can_be_disabled(emu, http):
    body = emu.call_body()
    body["customer"] = {"number": "5550001234", "numberE164CheckEnabled": False}
    assert create(http, body)["customer"]["number"] == "5550001234"


def test_assistant_version_with_assistant_id_is_fine(emu, http):
    create(http, emu.call_body(assistantVersion="1"))


def test_malformed_bodies_and_ids(emu, http):
    assert "Unexpected token" in error(
        http.post("/call", content=b"{nope", headers={"Content-Type": "application/json"})
    )
    assert error(http.post("/call", json=[1])) == ["body must be an object"]
    assert error(http.get("/call/not-a-uuid")) == "Validation failed (uuid is expected)"
    assert error(http.get("/call/00000000-0000-4000-8000-000000000000"), 404) == "Call not found"
    assert error(http.get("/no-such-route"), 404) == "Cannot GET /no-such-route"
    assert error(http.post("/assistant", json={"name": "a", "hipaaEnabled": True})) == [
        "property hipaaEnabled should not exist"
    ]
    assert error(http.request("DELETE", "/call/00000000-0000-4000-8000-000000000000", json={"x": 1})) == [
        "property x should not exist"
    ]
