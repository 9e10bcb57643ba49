"""A catalogue of bad inputs, top-level and nested: each is refused before any request, by a
``VapiInvalidRequestError`` that names the field and the fix and never quotes a secret.

Every case carries a bystander secret (an OpenAI key in ``assistantOverrides.credentials``) and
some carry their own in the broken spot; none may appear in the message. The same bodies sent
through ``VapiHook.create_call`` reach the emulator not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_vapi.exceptions import VapiInvalidRequestError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.operators import PlaceCallOperator

SECRET = "sk-live-CATALOGUE-9f8e7d"
TOKEN = "twilio-CATALOGUE-5a5a"
NUMBER = "+14155550123"
MODEL = {"provider": "openai", "model": "gpt-4o"}


def _cyclic() -> dict[str, Any]:
    assistant: dict[str, Any] = {"model": dict(MODEL)}
    assistant["model"]["again"] = assistant
    return assistant


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels):
        node = {"model": node}
    return node


def _twilio(**fields: Any) -> dict[str, Any]:
    return {"twilioPhoneNumber": "+14155550100", "twilioAccountSid": "AC1", "twilioAuthToken": TOKEN} | fields


#: (id, the operator's arguments over the base, what the message must name, a word of the fix)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # who is called
    ("number-without-plus", {"customer": "4155550123"}, "customer.number", "+<country code>"),
    ("number-punctuated", {"customer": "+1 (415) 555-0123"}, "customer.number", "without spaces"),
    ("customer-phone-key", {"customer": {"phone": NUMBER}}, "customer.phone", "did you mean 'number'"),
    ("customer-number-int", {"customer": {"number": 14155550123}}, "customer.number", "string"),
    ("customer-name-typo", {"customer": {"number": NUMBER, "nmae": "Ann"}}, "customer.nmae", "'name'"),
    ("customer-name-long", {"customer": {"number": NUMBER, "name": "A" * 41}}, "customer.name", "at most 40"),
    ("customer-no-number", {"customer": {"name": "Ann"}}, "customer", "needs a number"),
    ("customer-int", {"customer": 14155550123}, "parameter customer", "phone number string"),
    ("customers-empty", {"customer": None, "customers": []}, "customers", "at least one"),
    ("customers-bad-item", {"customer": None, "customers": [NUMBER, 42]}, "customers[1]", '{"number"'),
    ("customers-text", {"customer": None, "customers": "everyone"}, "parameter customers", "a list"),
    ("customer-and-customers", {"customers": [NUMBER]}, "customer / customers", "choose one"),
    ("customer-overrides-type",
     {"customer": {"number": NUMBER, "assistantOverrides": {"variableValues": 3}}},
     "customer.assistantOverrides.variableValues", "object"),
    # who speaks, on which line
    ("two-sources", {"assistant": {"model": MODEL}}, "assistant_id / assistant", "choose one"),
    ("no-source", {"assistant_id": None}, "set one of assistant_id", "say who speaks"),
    ("no-line", {"phone_number_id": None}, "phone_number_id, phone_number", "set one of"),
    ("version-without-id", {"assistant_id": None, "assistant": {"model": MODEL}, "assistant_version": "3"},
     "assistantVersion", "only works with assistant_id"),
    ("twilio-no-token", {"phone_number_id": None, "phone_number": _twilio(twilioAuthToken=None)},
     "phone_number", "twilio_auth_token"),
    ("twilio-bad-number", {"phone_number_id": None, "phone_number": _twilio(twilioPhoneNumber="555")},
     "phoneNumber.twilioPhoneNumber", "+<country code>"),
    ("twilio-token-typo",
     {"phone_number_id": None, "phone_number": _twilio(twilioAuthToken=None, twilioAuthTokn=TOKEN)},
     "twilioAuthTokn", "twilioAuthToken"),
    ("name-too-long", {"name": "N" * 41}, "name", "at most 40"),
    ("transport-text", {"transport": "sip"}, "parameter transport", "an object"),
    # when
    ("schedule-naive", {"schedule_plan": {"earliestAt": "2026-01-01T09:00:00"}}, "earliest_at", "timezone"),
    ("schedule-unrendered", {"schedule_plan": {"earliestAt": "{{ tomorrow }}"}}, "earliest_at",
     "still holds a template"),
    ("schedule-no-earliest", {"schedule_plan": {"latestAt": "2026-01-01T09:00:00Z"}}, "earliest_at",
     "is required"),
    ("schedule-backwards",
     {"schedule_plan": {"earliestAt": "2026-01-02T09:00:00Z", "latestAt": "2026-01-01T09:00:00Z"}},
     "latest_at", "must be after"),
    ("schedule-year-9999", {"schedule_plan": {"earliestAt": "9999-12-31T23:30:00-05:00"}}, "earliest_at",
     "outside years"),
    ("schedule-typo", {"schedule_plan": {"earliestAt": "2026-01-01T09:00:00Z", "latestat": "x"}},
     "latestat", "latestAt"),
    # the body as a whole
    ("payload-typo", {"payload": {"assistantID": "asst_2"}}, "assistantID", "did you mean 'assistantId'"),
    ("payload-not-json", {"payload": '{"name": "x",}'}, "parameter payload", "not valid JSON"),
    ("payload-list", {"payload": "[1, 2]"}, "parameter payload", "an object"),
    ("values-python-text", {"variable_values": "{'first': 'Ann'}"}, "parameter variable_values",
     "render_template_as_native_obj"),
    ("metadata-int", {"metadata": 5}, "parameter metadata", "an object"),
    # inline assistant, overrides, squad: nested
    ("assistant-typo", {"assistant_id": None, "assistant": {"model": MODEL, "recordingEnabld": True}},
     "recordingEnabld", "recordingEnabled"),
    ("assistant-first-message-int", {"assistant_id": None, "assistant": {"model": MODEL, "firstMessage": 5}},
     "assistant.firstMessage", "string"),
    ("model-provider-typo", {"assistant_id": None, "assistant": {"model": {"provider": "opneai", "model": "x"}}},
     "assistant.model.provider", "openai"),
    ("model-setting-typo",
     {"assistant_id": None, "assistant": {"model": {**MODEL, "temprature": 0.2}}},
     "assistant.model.temprature", "temperature"),
    ("voice-id-typo", {"assistant_id": None, "assistant": {"voice": {"provider": "11labs", "voiceID": "v"}}},
     "assistant.voice.voiceID", "voiceId"),
    ("artifact-type",
     {"assistant_id": None, "assistant": {"model": MODEL, "artifactPlan": {"recordingEnabled": "yes"}}},
     "assistant.artifactPlan.recordingEnabled", "true or false"),
    ("server-typo-beside-a-secret",
     {"assistant_id": None, "assistant": {"model": MODEL, "server": {
         "url": "https://hooks.example.com", "headers": {"Authorization": f"Bearer {SECRET}"},
         "timeoutSecond": 5}}},
     "assistant.server.timeoutSecond", "timeoutSeconds"),
    ("tool-type-typo", {"assistant_id": None, "assistant": {"model": {**MODEL, "tools": [{"type": "functon"}]}}},
     "assistant.model.tools[0].type", "function"),
    ("overrides-typo", {"assistant_overrides": {"variableValue": {"a": 1}}},
     "assistantOverrides.variableValue", "variableValues"),
    ("overrides-type", {"assistant_overrides": {"firstMessage": ["hi"]}},
     "assistantOverrides.firstMessage", "string"),
    ("squad-member-typo",
     {"assistant_id": None, "squad": {"members": [{"assistant": {"model": MODEL, "firstMesage": "hi"}}]}},
     "squad.members[0].assistant.firstMesage", "firstMessage"),
    # not JSON at all
    ("nan", {"variable_values": {"score": float("nan")}}, "variableValues.score", "finite number"),
    ("lone-surrogate", {"variable_values": {"name": "Ann \ud800"}}, "variableValues.name", "not valid Unicode"),
    ("int-key", {"metadata": {1: "a"}}, "metadata", "not a string"),
    ("bytes", {"metadata": {"raw": b"\x00"}}, "metadata.raw", "bytes"),
    ("too-deep", {"assistant_id": None, "assistant": _deep(100)}, "assistant.model", "deeper than"),
]  # fmt: skip

BASE: dict[str, Any] = {
    "assistant_id": "asst_1",
    "phone_number_id": "pn_1",
    "customer": NUMBER,
    "assistant_overrides": {"credentials": [{"provider": "openai", "apiKey": SECRET}]},
}


def _operator(case: dict[str, Any]) -> PlaceCallOperator:
    arguments = dict(BASE)
    for key, value in case.items():
        if key == "assistant_overrides":
            value = {**BASE["assistant_overrides"], **value}
        arguments[key] = value
    return PlaceCallOperator(task_id="catalogue", **arguments)


def test_the_catalogue_is_large_and_its_base_is_valid() -> None:
    assert len(CASES) >= 40
    assert len({case_id for case_id, *_ in CASES}) == len(CASES)
    request = _operator({}).build_request()
    assert SECRET in request.secret_values()


@pytest.mark.parametrize(("case", "field", "fix"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_before_sending_naming_the_field_and_the_fix(case: dict[str, Any], field: str, fix: str) -> None:
    with pytest.raises(VapiInvalidRequestError) as caught:
        _operator(case).build_request()
    message = str(caught.value)
    assert "nothing was sent" in message
    assert field in message, f"the message does not name {field!r}:\n{message}"
    assert fix in message, f"the message does not say {fix!r}:\n{message}"
    for secret in (SECRET, TOKEN):
        assert secret not in message, "a secret is quoted in the error"
    assert "input_value" not in message, "pydantic's echo of the input is not for users"


BODY_LEVEL: list[Callable[[], dict[str, Any]]] = [
    lambda: _operator({"customer": {"phone": NUMBER}}).build_body(),
    # A cycle cannot reach the operator (Airflow's constructor walks its arguments first).
    lambda: {"assistant": _cyclic(), "phoneNumberId": "pn_1", "customer": {"number": NUMBER}},
    lambda: _operator({"variable_values": {"name": "Ann \ud800"}}).build_body(),
    lambda: _operator({"schedule_plan": {"earliestAt": "9999-12-31T23:30:00-05:00"}}).build_body(),
]


@pytest.mark.parametrize("make_body", BODY_LEVEL)
def test_the_hook_sends_nothing_for_them(
    vapi_conn: str, vapi_emulator: Any, make_body: Callable[[], dict[str, Any]]
) -> None:
    with pytest.raises(VapiInvalidRequestError, match="nothing was sent"):
        VapiHook(vapi_conn).create_call(make_body())
    assert vapi_emulator.requests("POST", "/call") == []
