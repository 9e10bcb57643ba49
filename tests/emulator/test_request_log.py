"""The request log is bounded (and says what it dropped), keeps no secret, and the admin API that
serves it asks for the API key."""

from __future__ import annotations

import json

import httpx
import pytest

from airflow_provider_vapi.emulator.errors import INVALID_KEY_MESSAGE
from airflow_provider_vapi.emulator.redaction import REDACTED, fingerprint
from airflow_provider_vapi.emulator.server import EmulatorProcess
from tests.emulator.conftest import create, error

SECRETS = {
    "phoneNumber.twilioAuthToken": "tw-auth-token-SECRET-1",
    "phoneNumber.twilioApiSecret": "tw-api-secret-SECRET-2",
    "assistant.server.headers.Authorization": "Bearer hook-bearer-SECRET-3",
    "assistant.server.headers.X-Vapi-Secret": "hook-header-SECRET-4",
    "assistant.credentials.0.apiKey": "sk-openai-SECRET-5",
}


def admin_log(emu, **params) -> dict:
    answer = httpx.get(f"{emu.url}/_emulator/requests", params=params, headers=emu.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_log_keeps_the_last_n_and_says_how_many_it_dropped(vapi_emulator_factory):
    emu = vapi_emulator_factory(request_log_size=3)
    with emu.client() as http:
        for limit in range(5):
            http.get("/call", params={"limit": str(limit)})
    log = admin_log(emu)
    assert [r["query"]["limit"] for r in log["requests"]] == ["2", "3", "4"]
    assert (log["dropped"], log["limit"]) == (2, 3)
    httpx.delete(f"{emu.url}/_emulator/requests", headers=emu.headers).raise_for_status()
    assert admin_log(emu) == {**log, "requests": [], "dropped": 0, "bytes": 0}


def test_the_log_is_bounded_by_bytes_too(vapi_emulator_factory):
    emu = vapi_emulator_factory(request_log_bytes=50_000)
    with emu.client() as http:
        for _ in range(4):
            http.post("/assistant", json={"name": "a", "metadata": {"pad": "x" * 20_000}})
    log = admin_log(emu)
    assert (len(log["requests"]), log["dropped"], log["limitBytes"]) == (2, 2, 50_000)


def test_the_default_bound_is_ten_thousand(emu):
    log = admin_log(emu)
    assert log["limit"] == 10_000 and log["dropped"] == 0


def test_the_cli_bounds_the_log():
    with EmulatorProcess(request_log_size=1, extra_args=["--request-log-bytes", "1000"]) as emu:
        with emu.client() as http:
            http.get("/call")
            http.get("/assistant")
        log = admin_log(emu)
    assert [r["path"] for r in log["requests"]] == ["/assistant"]
    assert (log["dropped"], log["limit"], log["limitBytes"]) == (1, 1, 1000)


def secret_body(emu) -> dict:
    body = emu.call_body(
        phoneNumber={
            "twilioPhoneNumber": "+15550100200",
            "twilioAccountSid": "AC-not-secret",
            "twilioAuthToken": SECRETS["phoneNumber.twilioAuthToken"],
            "twilioApiSecret": SECRETS["phoneNumber.twilioApiSecret"],
        },
        assistant={
            "name": "with secrets",
            "server": {
                "url": "https://hooks.example.com/vapi",
                "headers": {
                    "Authorization": SECRETS["assistant.server.headers.Authorization"],
                    "X-Vapi-Secret": SECRETS["assistant.server.headers.X-Vapi-Secret"],
                },
            },
            "credentials": [{"provider": "openai", "apiKey": SECRETS["assistant.credentials.0.apiKey"]}],
        },
    )
    del body["phoneNumberId"], body["assistantId"]
    return body


def test_secrets_are_redacted_in_the_log_but_their_delivery_is_provable(emu, http):
    body = secret_body(emu)
    call = create(http, body)
    assert call["phoneNumber"]["twilioAuthToken"] == SECRETS["phoneNumber.twilioAuthToken"], "delivered"
    (entry,) = admin_log(emu)["requests"]
    text = json.dumps(entry)
    assert [s for s in SECRETS.values() if s in text] == []
    assert entry["body"]["phoneNumber"]["twilioAuthToken"] == REDACTED
    assert entry["body"]["phoneNumber"]["twilioAccountSid"] == "AC-not-secret"
    assert entry["body"]["assistant"]["server"]["headers"] == {
        "Authorization": REDACTED,
        "X-Vapi-Secret": REDACTED,
    }
    assert entry["body"]["assistant"]["credentials"] == [{"provider": "openai", "apiKey": REDACTED}]
    assert entry["fingerprints"] == {path: fingerprint(secret) for path, secret in SECRETS.items()}


ADMIN = [
    ("GET", "/_emulator/requests"),
    ("DELETE", "/_emulator/requests"),
    ("POST", "/_emulator/reset"),
    ("GET", "/_emulator/calls"),
    ("GET", "/_emulator/faults"),
    ("POST", "/_emulator/faults"),
    ("GET", "/_emulator/config"),
    ("PATCH", "/_emulator/config"),
]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "vapi-emulator-key"}]
)
@pytest.mark.parametrize(("method", "path"), ADMIN)
def test_the_admin_api_needs_the_api_key(emu, headers, method, path):
    emu.create_call()
    answer = httpx.request(method, emu.url + path, headers=headers, json={"action": "500"})
    assert error(answer, 401) == INVALID_KEY_MESSAGE
    assert len(emu.calls()) == 1 and emu.active_faults() == [] and len(emu.requests()) == 1


def test_health_answers_without_a_key_for_readiness_probes(emu):
    answer = httpx.get(f"{emu.url}/_emulator/health")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


def test_the_admin_api_takes_a_custom_key(vapi_emulator_factory):
    emu = vapi_emulator_factory(api_key="sk-admin")
    wrong = {"Authorization": "Bearer vapi-emulator-key"}
    assert httpx.get(f"{emu.url}/_emulator/calls", headers=wrong).status_code == 401
    assert emu.calls() == []
