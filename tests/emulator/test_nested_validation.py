"""Nested objects of a ``POST /call`` body are validated like Vapi does (whitelist and JSON types
from the spec's schemas, at any depth), so a 201 always leaves a call that is a valid ``Call``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.conftest import create, error, get_call

MODEL = {"provider": "openai", "model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."}]}


def inline(emu: Any, **assistant: Any) -> dict[str, Any]:
    """A call body with an inline assistant instead of the seeded one."""
    body = emu.call_body(assistant={"model": dict(MODEL), **assistant})
    del body["assistantId"]
    return body


@pytest.mark.parametrize(
    ("assistant", "message"),
    [
        ({"model": {**MODEL, "foo": 1}}, "assistant.model.property foo should not exist"),
        ({"firstMessage": 5}, "assistant.firstMessage must be a string"),
        (
            {"model": {**MODEL, "temperature": "hot"}},
            "assistant.model.temperature must be a number conforming to the specified constraints",
        ),
        (
            {"model": {**MODEL, "messages": [{"role": "system", "content": "x", "name": "n"}]}},
            "assistant.model.messages.0.property name should not exist",
        ),
        (
            {"model": {**MODEL, "messages": ["hi"]}},
            "assistant.model.messages.0.nested property messages must be either object or array",
        ),
        ({"endCallPhrases": ["bye", 7]}, "assistant.each value in endCallPhrases must be a string"),
        ({"endCallPhrases": "bye"}, "assistant.endCallPhrases must be an array"),
        (
            {"artifactPlan": {"recordingEnabled": "yes"}},
            "assistant.artifactPlan.recordingEnabled must be a boolean value",
        ),
        (
            {"voice": {"provider": "azure", "voiceId": "andrew", "pitch": 2}},
            "assistant.voice.property pitch should not exist",
        ),
        (
            {"compliancePlan": {"recordingConsentPlan": {"type": "verbal", "bogus": True}}},
            "assistant.compliancePlan.recordingConsentPlan.property bogus should not exist",
        ),
        ({"metadata": "m"}, "assistant.metadata must be an object"),
        ({"model": "gpt-4o"}, "assistant.nested property model must be either object or array"),
    ],
)
def test_an_inline_assistant_with_invalid_nested_config_is_400(emu, http, assistant, message):
    messages = error(http.post("/call", json=inline(emu, **assistant)))
    assert messages == [message]
    assert emu.calls() == []


def test_an_unknown_discriminator_value_lists_the_known_ones(emu, http):
    (message,) = error(http.post("/call", json=inline(emu, model={"provider": "nope", "model": "m"})))
    assert message.startswith("assistant.model.provider must be one of the following values: ")
    assert {"openai", "anthropic", "google"} <= set(message.split(": ", 1)[1].split(", "))
    (message,) = error(http.post("/call", json=inline(emu, credentials=[{"provider": "x", "apiKey": "k"}])))
    assert message.startswith("assistant.credentials.0.provider must be one of the following values: 11labs")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            {"assistantOverrides": {"model": {**MODEL, "foo": 1}}},
            "assistantOverrides.model.property foo should not exist",
        ),
        (
            {"assistantOverrides": {"variableValues": []}},
            "assistantOverrides.variableValues must be an object",
        ),
        (
            {"customer": {"number": "+15550001234", "numberE164CheckEnabled": "no"}},
            "customer.numberE164CheckEnabled must be a boolean value",
        ),
        (
            {"customer": {"number": "+15550001234", "assistantOverrides": {"firstMessage": False}}},
            "customer.assistantOverrides.firstMessage must be a string",
        ),
        ({"name": 12}, "name must be a string"),
    ],
)
def test_overrides_and_customers_are_validated_at_their_path(emu, http, where, message):
    assert error(http.post("/call", json={**emu.call_body(), **where})) == [message]


def test_batch_customers_and_squad_members_are_validated(emu, http):
    body = emu.call_body(customers=[{"number": "+15550001234", "assistantOverrides": {"voice": {"x": 1}}}])
    del body["customer"]
    (message,) = error(http.post("/call", json=body))
    assert message.startswith(
        "customers.0.assistantOverrides.voice.provider must be one of the following values"
    )

    squad = {"members": [{"assistant": {"model": {**MODEL, "foo": 1}, "firstMessage": 3}}]}
    body = emu.call_body(squad=squad)
    del body["assistantId"]
    assert sorted(error(http.post("/call", json=body))) == [
        "squad.members.0.assistant.firstMessage must be a string",
        "squad.members.0.assistant.model.property foo should not exist",
    ]


def test_post_assistant_validates_nested_config(http):
    assert error(http.post("/assistant", json={"model": {**MODEL, "foo": 1}})) == [
        "model.property foo should not exist"
    ]


def test_a_valid_nested_assistant_is_accepted_and_its_call_matches_the_spec(emu, http):
    body = inline(
        emu,
        firstMessage="Hello",
        voice={"provider": "azure", "voiceId": "andrew", "speed": 1.1},
        transcriber={"provider": "deepgram", "model": "nova-2", "language": "en"},
        endCallPhrases=["bye"],
        artifactPlan={"recordingEnabled": True},
        analysisPlan={"structuredDataPlan": {"enabled": True, "schema": {"type": "object"}}},
        metadata={"any": {"thing": [1, "x"]}},
    )
    call = create(http, body)
    assert get_call(http, call["id"])["assistant"]["voice"]["voiceId"] == "andrew"
