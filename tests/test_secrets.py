"""Secrets found by key name: what the log masker is told, and what XCom never carries."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from airflow_provider_vapi.idempotency import keyed_body
from airflow_provider_vapi.models import Call, CreateCallRequest
from airflow_provider_vapi.secrets import REDACTED, find_secret_values, maskable, redact_secrets
from tests.shared_data import seed_payload

NUMBER = "+14155550123"


def minimal(**extra: Any) -> dict[str, Any]:
    return {"assistantId": "asst_1", "phoneNumberId": "pn_1", "customer": {"number": NUMBER}, **extra}


def leaves(node: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Leaf path -> value (empty containers are leaves too)."""
    if isinstance(node, dict) and node:
        return {p: v for key, value in node.items() for p, v in leaves(value, (*path, key)).items()}
    if isinstance(node, list) and node:
        return {p: v for index, value in enumerate(node) for p, v in leaves(value, (*path, index)).items()}
    return {path: node}


def unique_strings(node: Any, counter: itertools.count[int] | None = None) -> Any:
    """``node`` with every string made unique (``<string>`` placeholders tell nothing apart)."""
    counter = counter if counter is not None else itertools.count()
    if isinstance(node, dict):
        return {key: unique_strings(value, counter) for key, value in node.items()}
    if isinstance(node, list):
        return [unique_strings(value, counter) for value in node]
    return f"{node}#{next(counter)}" if isinstance(node, str) else node


def test_secret_values_finds_every_secret_and_no_ordinary_value() -> None:
    body = minimal(
        phoneNumberId=None,
        phoneNumber={
            "twilioPhoneNumber": NUMBER,
            "twilioAccountSid": "AC-sid",
            "twilioAuthToken": "twilio-token",
            "serverUrlSecret": "legacy-phone-secret",
        },
        assistantId=None,
        assistant={
            "serverUrlSecret": "legacy-assistant-secret",
            "server": {"url": "https://hooks.example.com", "headers": {"Authorization": "Bearer hook-token"}},
            "credentials": [
                {"provider": "openai", "apiKey": "sk-openai"},
                {"provider": "gcp", "gcpKey": {"k": "gk"}},
            ],
            "model": {
                "provider": "openai",
                "maxTokens": 200,
                "tools": [
                    {"type": "function", "server": {"url": "https://t", "secret": "tool-secret"}},
                    {"type": "transferCall", "server": {"url": "https://t", "secret": "dropped-secret"}},
                ],
            },
        },
        assistantOverrides={
            "server": {"headers": {"x-api-key": "override-key"}},
            "credentialIds": ["cred-1"],
        },
    )
    request = CreateCallRequest.from_payload(body)
    secrets = set(request.secret_values())
    assert {
        "twilio-token",
        "legacy-phone-secret",
        "legacy-assistant-secret",
        "Bearer hook-token",
        "hook-token",
        "sk-openai",
        "gk",
        "tool-secret",
        "override-key",
        "dropped-secret",  # dropped before sending, but it may still show in a rendered template
    } == secrets
    assert "twilio-token" not in repr(request)
    assert request.to_wire()["phoneNumber"]["twilioAuthToken"] == "twilio-token"
    # The body actually sent (with the idempotency key) holds no secret the masker was not told of.
    assert set(find_secret_values(keyed_body(request, "k"))) <= secrets


def assert_redaction_matches_finding(body: Any) -> None:
    """Exactly the strings :func:`find_secret_values` reports become ``***``; all else is equal."""
    found = set(find_secret_values(body))
    before = leaves(body)
    after = leaves(redact_secrets(body))
    assert set(after) == set(before), "keys and structure are kept"
    for path, value in before.items():
        expected = REDACTED if isinstance(value, str) and value in found else value
        assert after[path] == expected, path


def test_redaction_and_finding_agree_on_every_leaf() -> None:
    body = unique_strings(
        {
            "phoneNumber": {"twilioAuthToken": "t", "twilioAccountSid": "AC", "twilioApiSecret": ""},
            "assistant": {
                "server": {"url": "https://h", "headers": {"X-Vapi-Secret": "s", "Authorization": "Basic b"}},
                "credentials": [{"provider": "gcp", "gcpKey": {"k": "g", "n": 3}, "credentialId": "c"}],
                "model": {"maxTokens": 200, "tools": [{"server": {"secret": "x", "timeoutSeconds": 20}}]},
                "secretNumber": 42,
                "tokenUrl": "https://token",
            },
            "costs": [{"promptTokens": 10, "completionTokens": 5, "type": "model"}],
            "credentialIds": ["cred-1"],
        }
    )
    assert_redaction_matches_finding(body)
    assert_redaction_matches_finding(unique_strings(seed_payload()))
    assert find_secret_values(redact_secrets(body)) == [REDACTED]
    assert redact_secrets([{"token": ""}, None, "plain"]) == [{"token": ""}, None, "plain"]


def test_redaction_is_a_deep_copy() -> None:
    body = {"server": {"headers": {"X-Vapi-Secret": "s"}}, "other": {"list": [1, {"a": "b"}]}}
    original = copy.deepcopy(body)
    redacted = redact_secrets(body)
    redacted["other"]["list"][1]["a"] = "changed"
    assert body == original


# -- XCom ----------------------------------------------------------------------------------------
def echoed_call() -> dict[str, Any]:
    """A Call as Vapi echoes a request with a transient Twilio line and an inline assistant."""
    return {
        "id": "call_9",
        "orgId": "org_1",
        "status": "ended",
        "endedReason": "customer-ended-call",
        "phoneNumber": {
            "twilioPhoneNumber": NUMBER,
            "twilioAccountSid": "AC-account-sid",
            "twilioAuthToken": "twilio-auth-token-value",
        },
        "assistant": {
            "name": "Booker",
            "server": {
                "url": "https://hooks.example.com/vapi",
                "secret": "server-secret-value",
                "headers": {
                    "X-Vapi-Secret": "x-vapi-secret-value",
                    "Authorization": "Bearer bearer-token-value",
                },
            },
            "credentials": [{"provider": "openai", "apiKey": "sk-openai-key-value"}],
            "credentialIds": ["cred_1"],
            "model": {"provider": "openai", "model": "gpt-4o", "maxTokens": 250},
        },
        "costs": [{"type": "model", "promptTokens": 812, "completionTokens": 64, "cost": 0.01}],
        "monitor": {"listenUrl": "wss://listen", "controlUrl": "https://control"},
        "analysis": {"summary": "Booked.", "structuredData": {"booked": True, "slot": "10:00"}},
    }


SECRETS = (
    "twilio-auth-token-value",
    "server-secret-value",
    "x-vapi-secret-value",
    "bearer-token-value",
    "sk-openai-key-value",
)


def test_call_xcom_carries_no_secret_vapi_echoes_back() -> None:
    raw = echoed_call()
    call = Call.model_validate(raw)
    dumped = json.dumps(call.to_xcom())
    assert [s for s in SECRETS if s in dumped] == []
    assert set(find_secret_values(raw)) == {*SECRETS, "Bearer bearer-token-value"}

    expected = copy.deepcopy(raw)
    expected["phoneNumber"]["twilioAuthToken"] = REDACTED
    server = expected["assistant"]["server"]
    server["secret"] = server["headers"]["X-Vapi-Secret"] = server["headers"]["Authorization"] = REDACTED
    expected["assistant"]["credentials"][0]["apiKey"] = REDACTED
    assert call.to_xcom() == {**expected, "outcome": "completed"}, "ids, urls, counters and data kept"
    assert call.structured_data == {"booked": True, "slot": "10:00"}
    assert call.phone_number == raw["phoneNumber"], "only the XCom is redacted, not the model"


def test_a_batchs_refusals_reach_xcom_without_secrets() -> None:
    """Vapi answers a batch with each refused customer as sent and its reason; XCom is stored as it
    is (the masker does not touch it), so the operator redacts both before returning them."""
    from airflow_provider_vapi.models import CallBatchError
    from airflow_provider_vapi.placing.operator import _refused_for_xcom

    token = "hook-token-77c1"
    refused = CallBatchError.model_validate(
        {
            "customer": {
                "number": NUMBER,
                "assistantOverrides": {"server": {"headers": {"Authorization": f"Bearer {token}"}}},
            },
            "error": f"Server header Bearer {token} was rejected",
        }
    )
    request = CreateCallRequest.from_payload(
        minimal(customer=None, customers=[refused.customer, {"number": "+14155550124"}])
    )
    (entry,) = _refused_for_xcom([refused], request.secret_values())
    assert token not in json.dumps(entry)
    assert entry["customer"]["number"] == NUMBER, "the rest is kept"
    assert entry["error"] == f"Server header {REDACTED} was rejected"


def test_what_the_masker_is_told_never_breaks_it_nor_every_log_line() -> None:
    """Airflow 2.11's masker (``re2``) raised ``UnicodeEncodeError`` on a lone surrogate, so a
    fuzzed ``serverUrlSecret`` crashed ``create_call`` instead of ending in a clear refusal; and it
    masks a one-letter "secret" everywhere, turning every later "t" of the logs into ``***``."""
    from airflow_provider_vapi.secrets import mask

    body = {"serverUrlSecret": "\ud800", "server": {"headers": {"Authorization": "Bearer tok\udc00en-xyz-part"}}}
    found = find_secret_values(body)
    assert found == ["\ud800", "Bearer tok\udc00en-xyz-part", "tok\udc00en-xyz-part"], "reported whole"
    mask(found)  # raised on 2.11
    assert maskable("plain-secret") == ["plain-secret"]
    assert maskable("\ud800\udfff") == [] and maskable("t") == [] and maskable("abcd") == []
    assert maskable("alpha\ud800bravo\udbffc") == ["alpha", "bravo"]
    assert maskable("Bearer tok\udc00en-xyz-part") == ["Bearer tok", "en-xyz-part"]
