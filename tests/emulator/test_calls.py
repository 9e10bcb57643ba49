"""Call lifecycle, scripted outcomes, analysis lag, structured data and echo, over real HTTP."""

from __future__ import annotations

from datetime import datetime

import pytest

from airflow_provider_vapi.emulator.outcomes import OUTCOMES, outcome_for
from airflow_provider_vapi.emulator.seeds import APPOINTMENT_SCHEMA
from tests.emulator.conftest import create, get_call, validate

ORDER = ["scheduled", "queued", "ringing", "in-progress", "ended"]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_the_spec_validator_rejects_invented_keys():
    """The strict validation used everywhere below can fail (an invented key is caught)."""
    call = {
        "id": "x",
        "orgId": "o",
        "createdAt": "2025-01-01T00:00:00.000Z",
        "updatedAt": "2025-01-01T00:00:00.000Z",
    }
    validate(call, "Call")
    with pytest.raises(AssertionError, match="inventedField"):
        validate({**call, "inventedField": 1}, "Call")
    with pytest.raises(AssertionError):
        validate({**call, "monitor": {"controlUrl": "u", "extra": 1}}, "Call")


def test_a_conversation_goes_through_every_status_with_true_timestamps(emu, http):
    call = create(http, emu.call_body("+15550001234"))
    assert call["status"] == "queued"
    assert call["createdAt"] == call["updatedAt"]
    seen = [call["status"]]
    updates = {call["status"]: call["updatedAt"]}
    ended: dict = {}
    while seen[-1] != "ended":
        current = get_call(http, call["id"])
        if current["status"] != seen[-1]:
            seen.append(current["status"])
            updates[current["status"]] = current["updatedAt"]
        ended = current  # the first read that saw it ended (a later one may hold the analysis)
    # polling every few ms sees each phase; a stalled machine may skip one, never reorder them
    assert [s for s in ORDER if s in seen] == seen and seen[0] == "queued"
    assert ts(ended["createdAt"]) < ts(ended["startedAt"]) < ts(ended["endedAt"])
    if "ringing" in updates:
        assert ended["startedAt"] == updates["ringing"]
    assert ended["endedAt"] == ended["updatedAt"] == updates["ended"]
    assert ended["endedReason"] in ("customer-ended-call", "assistant-ended-call")
    assert "analysis" not in ended  # analysis lags ended
    assert len(ended["messages"]) == 6 and ended["artifact"]["messages"] == ended["messages"]
    assert ended["artifact"]["transcript"].startswith("AI: Hello")
    assert ended["cost"] == ended["costBreakdown"]["total"] > 0
    assert {c["type"] for c in ended["costs"]} == {"transport", "transcriber", "model", "voice", "vapi"}


def test_analysis_arrives_after_ended_and_moves_updated_at(emu, http):
    call = create(http, emu.call_body("+15550004321"))
    ended = emu.wait_for(call["id"], status="ended")
    assert "analysis" not in ended
    analysed = emu.wait_for(call["id"], analysis=True)
    get_call(http, call["id"])
    assert ts(analysed["updatedAt"]) > ts(analysed["endedAt"])
    assert analysed["endedAt"] == ended["endedAt"]
    assert set(analysed["analysis"]) == {"summary", "structuredData", "successEvaluation"}
    assert analysed["analysis"]["successEvaluation"] in ("true", "false")  # PassFail rubric
    assert analysed["cost"] > ended["cost"]
    assert {c["analysisType"] for c in analysed["costs"] if c["type"] == "analysis"} == {
        "summary",
        "structuredData",
        "successEvaluation",
    }
    # nothing changes afterwards: updatedAt stays put
    assert emu.call(call["id"])["updatedAt"] == analysed["updatedAt"]


def test_seeded_structured_data_follows_the_schema_deterministically(emu, http):
    first = create(http, emu.call_body("+15550002468"))
    second = create(http, emu.call_body("+15550002468"))
    other = create(http, emu.call_body("+15550002469"))
    data = [
        emu.wait_for(c["id"], analysis=True)["analysis"]["structuredData"] for c in (first, second, other)
    ]
    assert data[0] == data[1]
    for item in data:
        assert set(item) == set(APPOINTMENT_SCHEMA["required"])
        assert isinstance(item["confirmed"], bool)
        assert item["outcome"] in APPOINTMENT_SCHEMA["properties"]["outcome"]["enum"]
        datetime.strptime(item["appointmentDate"], "%Y-%m-%d")
        assert isinstance(item["partySize"], int) and not isinstance(item["partySize"], bool)


CUSTOM_SCHEMA = {
    "type": "object",
    "properties": {
        "interested": {"type": "boolean"},
        "plan": {"type": "string", "enum": ["basic", "pro", "enterprise"]},
        "seats": {"type": "integer"},
        "budget": {"type": "number"},
        "contact": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "callbackAt": {"type": "string", "format": "date-time"},
            },
            "required": ["email"],
        },
        "topics": {"type": "array", "items": {"type": "string", "enum": ["price", "support", "security"]}},
        "company": {"type": "string"},
    },
    "required": ["interested", "plan", "seats"],
}


@pytest.mark.parametrize("where", ["created assistant", "inline assistant", "assistantOverrides"])
def test_structured_data_follows_a_custom_schema(emu, http, where):
    import jsonschema

    plan = {
        "structuredDataPlan": {"enabled": True, "schema": CUSTOM_SCHEMA},
        "successEvaluationPlan": {"rubric": "NumericScale"},
    }
    variables = {"company": "Acme Ltd", "seats": 12, "plan": "not-an-enum-value"}
    body = emu.call_body("+15550007777")
    body["assistantOverrides"] = {"variableValues": variables}
    if where == "created assistant":
        created = http.post("/assistant", json={"name": "Sales", "analysisPlan": plan})
        assert created.status_code == 201, created.text
        validate(created.json(), "Assistant")
        body["assistantId"] = created.json()["id"]
        assert http.get(f"/assistant/{created.json()['id']}").json() == created.json()
    elif where == "inline assistant":
        del body["assistantId"]
        body["assistant"] = {"firstMessage": "Hi {{company}}!", "analysisPlan": plan}
    else:
        body["assistantOverrides"]["analysisPlan"] = plan
    calls = [create(http, body) for _ in range(2)]
    results = [emu.wait_for(c["id"], analysis=True) for c in calls]
    data = results[0]["analysis"]["structuredData"]
    assert data == results[1]["analysis"]["structuredData"]
    jsonschema.validate(data, CUSTOM_SCHEMA)
    assert set(data) == set(CUSTOM_SCHEMA["properties"])
    assert data["company"] == "Acme Ltd" and data["seats"] == 12  # matching variableValues win
    assert data["plan"] in ("basic", "pro", "enterprise")  # ... unless they break the schema
    assert results[0]["analysis"]["successEvaluation"] in [str(i) for i in range(1, 11)]
    if where == "inline assistant":
        assert results[0]["messages"][0]["message"] == "Hi Acme Ltd!"


def test_analysis_plan_switches_are_honoured(emu, http):
    body = emu.call_body("+15550003333")
    body["assistantOverrides"] = {
        "analysisPlan": {"summaryPlan": {"enabled": False}, "structuredDataPlan": {"enabled": False}}
    }
    call = emu.wait_for(create(http, body)["id"], analysis=True)
    assert set(call["analysis"]) == {"successEvaluation"}


@pytest.mark.parametrize("suffix", sorted(OUTCOMES))
def test_each_scripted_outcome(emu, http, suffix):
    outcome = OUTCOMES[suffix]
    number = f"+1555010{suffix}"
    assert outcome_for(number) is outcome
    call = create(http, emu.call_body(number))
    seen = {call["status"]}
    if outcome.holds:
        emu.wait_for(call["id"], status="in-progress")
        seen.add("in-progress")
        emu.end_call(call["id"])
        expected_reason = "manually-canceled"
    else:
        expected_reason = outcome.ended_reason
    while "ended" not in seen:
        seen.add(get_call(http, call["id"])["status"])
    ended = get_call(http, call["id"])
    assert ended["endedReason"] == expected_reason
    if outcome.ended_message:
        assert ended["endedMessage"] == outcome.ended_message
    else:
        assert "endedMessage" not in ended
    if not outcome.dials:
        assert call["status"] == "ended" and "startedAt" not in ended  # never rings
        assert ended["endedAt"] == ended["createdAt"]
    else:
        assert "startedAt" in ended and ts(ended["startedAt"]) < ts(ended["endedAt"])
    assert len(ended["messages"]) == outcome.messages
    if outcome.messages >= 2:
        assert "analysis" in emu.wait_for(call["id"], analysis=True)
    else:
        # well past the analysis delay: still none (fewer than 2 messages)
        import time

        time.sleep(0.3)
        assert "analysis" not in get_call(http, call["id"])


def test_other_numbers_complete_a_conversation(emu, http):
    reasons = set()
    for number in ("+15550001230", "+15550001231"):
        call = emu.wait_for(create(http, emu.call_body(number))["id"])
        reasons.add(call["endedReason"])
        assert len(call["messages"]) == 6
    assert reasons == {"customer-ended-call", "assistant-ended-call"}


def test_max_duration_ends_a_holding_call(emu, http):
    body = emu.call_body("+15550100006", assistantOverrides={"maxDurationSeconds": 10})  # 0.5 s at 20x
    call = emu.wait_for(create(http, body)["id"], timeout=5)
    assert call["endedReason"] == "exceeded-max-duration"
    assert len(call["messages"]) == 4


def test_end_call_through_the_control_url_needs_no_key(emu, http):
    import httpx

    call = create(http, emu.call_body("+15550100006"))
    control = call["monitor"]["controlUrl"]
    assert call["monitor"]["listenUrl"].startswith("ws://")
    emu.wait_for(call["id"], status="in-progress")
    answer = httpx.post(control, json={"type": "end-call"})  # no Authorization header
    assert answer.status_code == 200
    ended = get_call(http, call["id"])
    assert ended["status"] == "ended" and ended["endedReason"] == "manually-canceled"
    assert httpx.post(control, json={"type": "say", "content": "hi"}).status_code == 400
    unknown = control.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    assert httpx.post(unknown, json={"type": "end-call"}).status_code == 404


def test_the_call_echoes_the_request(emu, http):
    body = emu.call_body(
        "+15550001234",
        name="renewal-42",
        assistantOverrides={"metadata": {"idempotencyKey": "k-1"}, "variableValues": {"name": "Ann"}},
    )
    body["customer"].update(name="Ann", externalId="crm-1", extension="12")
    call = create(http, body)
    for key in ("assistantId", "phoneNumberId", "name", "assistantOverrides", "customer"):
        assert call[key] == body[key]
    listed = http.get("/call").json()
    assert listed[0]["assistantOverrides"]["metadata"] == {"idempotencyKey": "k-1"}
    by_customer_id = create(
        http,
        {
            "assistantId": emu.assistant_id,
            "phoneNumberId": emu.phone_number_id,
            "customerId": emu.customer_id,
        },
    )
    assert by_customer_id["customerId"] == emu.customer_id and by_customer_id["customer"]["number"]


def test_transient_phone_number_and_squad(emu, http):
    body = {
        "squadId": "d7c5a0f0-0000-4000-8000-000000000009",
        "phoneNumber": {
            "twilioPhoneNumber": "+15550100200",
            "twilioAccountSid": "AC1",
            "twilioAuthToken": "secret",
        },
        "customer": {"number": "+15550001234"},
    }
    call = create(http, body)
    assert call["squadId"] == body["squadId"] and call["phoneNumber"]["twilioPhoneNumber"] == "+15550100200"
    emu.wait_for(call["id"], analysis=True)


def test_patch_changes_only_the_name_and_moves_updated_at(emu, http):
    call = emu.wait_for(create(http, emu.call_body("+15550100001"))["id"])
    answer = http.patch(f"/call/{call['id']}", json={"name": "renamed"})
    assert answer.status_code == 200, answer.text
    validate(answer.json(), "Call")
    assert answer.json()["name"] == "renamed"
    assert ts(answer.json()["updatedAt"]) > ts(call["updatedAt"])
    assert http.patch(f"/call/{call['id']}", json={"status": "ended"}).json()["message"] == [
        "property status should not exist"
    ]


def test_delete_removes_a_call(emu, http):
    call = emu.wait_for(create(http, emu.call_body("+15550100001"))["id"])
    answer = http.delete(f"/call/{call['id']}")
    assert answer.status_code == 200
    validate(answer.json(), "Call")
    assert answer.json()["id"] == call["id"]
    assert http.get(f"/call/{call['id']}").status_code == 404
    assert http.delete(f"/call/{call['id']}").status_code == 404


def test_seeded_lists(emu, http):
    assistants = http.get("/assistant").json()
    validate(assistants, "Assistant", array=True)
    assert [a["id"] for a in assistants] == [emu.assistant_id]
    assert assistants[0]["analysisPlan"]["structuredDataPlan"]["schema"] == APPOINTMENT_SCHEMA
    numbers = http.get("/phone-number").json()
    validate(numbers, "TwilioPhoneNumber", array=True)
    assert [n["id"] for n in numbers] == [emu.phone_number_id]
    assert http.get(f"/assistant/{emu.assistant_id}").json()["id"] == emu.assistant_id
    assert http.get("/assistant/00000000-0000-4000-8000-000000000000").status_code == 404
