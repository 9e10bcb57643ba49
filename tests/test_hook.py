"""VapiHook against the emulator over real HTTP: every method, sync and async, faults, errors."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from airflow_provider_vapi.emulator.redaction import fingerprint, redact
from airflow_provider_vapi.exceptions import (
    VapiAuthError,
    VapiBadRequestError,
    VapiConnectionError,
    VapiInvalidRequestError,
    VapiNotFoundError,
    VapiRateLimitError,
)
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.idempotency import IDEMPOTENCY_METADATA_KEY, key_of
from airflow_provider_vapi.idempotency.persons import identity, token
from airflow_provider_vapi.models import Call, CallBatchResponse, CreateCallRequest
from airflow_provider_vapi.wire.retries import RetryPolicy
from tests.conftest import vapi_conn_json
from tests.shared_data import seed_payload, strings_where_the_spec_wants_them

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total=10)


@pytest.fixture
def hook(vapi_conn: str) -> Any:
    h = VapiHook(vapi_conn, retry_policy=FAST)
    yield h
    h.close()


def body(emu: Any, number: str = "+14155550123", **extra: Any) -> dict[str, Any]:
    return {
        "assistantId": emu.assistant_id,
        "phoneNumberId": emu.phone_number_id,
        "customer": {"number": number},
        **extra,
    }


# -- reads and writes -------------------------------------------------------------------------------


def test_create_get_list_end_delete(hook: VapiHook, vapi_emulator: Any) -> None:
    call = hook.create_call(body(vapi_emulator, "+14155550006"), idempotency_key="k-1")
    assert isinstance(call, Call) and call.status in ("queued", "ringing", "in-progress")
    assert key_of(call) == "k-1"
    assert hook.get_call(call.id).id == call.id
    assert [c.id for c in hook.list_calls(id=call.id)] == [call.id]
    assert [c.id for c in hook.list_calls(assistantId=vapi_emulator.assistant_id)] == [call.id]
    vapi_emulator.wait_for(call.id, status="in-progress", timeout=10)
    ended = hook.end_call(call.id)
    assert ended.status == "ended" and ended.ended_reason == "manually-canceled"
    control = vapi_emulator.requests(method="POST", path="/control/*")
    assert control, "end_call must go through monitor.controlUrl"
    hook.delete_call(call.id)
    with pytest.raises(VapiNotFoundError, match=call.id):
        hook.get_call(call.id)


def test_end_call_of_an_ended_call_sends_nothing(hook: VapiHook, vapi_emulator: Any) -> None:
    call = hook.create_call(body(vapi_emulator, "+14155550005"))
    ended = Call.model_validate(vapi_emulator.wait_for(call.id))
    vapi_emulator.clear_requests()
    assert hook.end_call(ended).ended_reason == ended.ended_reason
    assert vapi_emulator.requests() == []


def test_scheduled_call_is_cancelled_by_delete(hook: VapiHook, vapi_emulator: Any) -> None:
    plan = {"earliestAt": "2099-01-01T09:00:00.000Z", "latestAt": "2099-01-01T17:00:00.000Z"}
    call = hook.create_call(body(vapi_emulator, schedulePlan=plan))
    assert call.status == "scheduled"
    deleted = hook.delete_call(call.id)
    assert deleted is not None and deleted.ended_reason == "scheduled-call-deleted"


def test_batch_create_with_a_refused_customer(hook: VapiHook, vapi_emulator: Any) -> None:
    request = {
        "assistantId": vapi_emulator.assistant_id,
        "phoneNumberId": vapi_emulator.phone_number_id,
        "customers": [{"number": "+14155550101"}, {"number": "+14155550102"}],
    }
    result = hook.create_call(request, idempotency_key="batch-1")
    assert isinstance(result, CallBatchResponse)
    assert len(result.results) == 2
    keys = sorted(key_of(c) or "" for c in result.results)
    people = [token(identity({"number": n})) for n in ("+14155550101", "+14155550102")]
    assert keys == sorted(f"batch-1|{p}" for p in people), "each customer's key names the person"
    assert sorted(c.id for c in hook.find_calls("batch-1")) == sorted(c.id for c in result.results)


def test_list_assistants_phone_numbers_and_test_connection(hook: VapiHook, vapi_emulator: Any) -> None:
    assert vapi_emulator.assistant_id in [a["id"] for a in hook.list_assistants()]
    assert vapi_emulator.phone_number_id in [p["id"] for p in hook.list_phone_numbers()]
    ok, message = hook.test_connection()
    assert ok, message
    assert vapi_emulator.url in message


def test_list_pages_past_a_thousand_calls(hook: VapiHook, vapi_emulator: Any) -> None:
    with vapi_emulator.client() as http:
        for i in range(1_150):
            http.post("/call", json=body(vapi_emulator, f"+1415555{i:04d}")).raise_for_status()
    vapi_emulator.clear_requests()
    calls = hook.list_calls()
    assert len({c.id for c in calls}) == 1_150
    assert len(vapi_emulator.requests(method="GET", path="/call")) >= 2
    assert len(hook.list_calls(limit=10)) == 10


# -- async twins ------------------------------------------------------------------------------------


def test_async_twins(vapi_conn: str, vapi_emulator: Any) -> None:
    async def scenario() -> None:
        hook = VapiHook(vapi_conn, retry_policy=FAST)
        try:
            call = await hook.acreate_call(body(vapi_emulator, "+14155550006"), idempotency_key="async-1")
            assert isinstance(call, Call)
            got = await hook.aget_call(call.id)
            assert got.id == call.id
            listed = await hook.alist_calls(id=call.id)
            assert [c.id for c in listed] == [call.id]
            assert vapi_emulator.assistant_id in [a["id"] for a in await hook.alist_assistants()]
            assert vapi_emulator.phone_number_id in [p["id"] for p in await hook.alist_phone_numbers()]
            await asyncio.to_thread(vapi_emulator.wait_for, call.id, status="in-progress")
            ended = await hook.aend_call(call.id)
            assert ended.ended_reason == "manually-canceled"
            await hook.adelete_call(call.id)
            with pytest.raises(VapiNotFoundError):
                await hook.aget_call(call.id)
        finally:
            await hook.aclose()

    asyncio.run(scenario())


# -- retries and never dialling twice ---------------------------------------------------------------


@pytest.mark.parametrize("fault", ["429", "500", "502", "503", "drop"])
def test_reads_recover_from_transient_faults(hook: VapiHook, vapi_emulator: Any, fault: str) -> None:
    call = hook.create_call(body(vapi_emulator))
    vapi_emulator.clear_requests()
    vapi_emulator.faults([fault, fault], method="GET", path="/call/*", retry_after=0.01)
    assert hook.get_call(call.id).id == call.id
    assert len(vapi_emulator.requests(method="GET", path="/call/*")) == 3


def test_retries_are_bounded(hook: VapiHook, vapi_emulator: Any) -> None:
    call = hook.create_call(body(vapi_emulator))
    vapi_emulator.fault(429, method="GET", path="/call/*", times=10, retry_after=0.01)
    with pytest.raises(VapiRateLimitError, match="429"):
        hook.get_call(call.id)
    assert len(vapi_emulator.requests(method="GET", path="/call/*")) == FAST.max_attempts


@pytest.mark.parametrize("sequence", [["drop"], ["drop", "drop"], ["500"], ["503", "drop"], ["429", "429"]])
def test_create_never_dials_twice(hook: VapiHook, vapi_emulator: Any, sequence: list[str]) -> None:
    vapi_emulator.faults(sequence, method="POST", path="/call", retry_after=0.01)
    call = hook.create_call(body(vapi_emulator), idempotency_key=f"once-{'-'.join(sequence)}")
    calls = vapi_emulator.calls()
    assert [c["id"] for c in calls] == [call.id], "exactly one call must exist"
    assert calls[0]["assistantOverrides"]["metadata"][IDEMPOTENCY_METADATA_KEY] == key_of(call)


def test_create_that_keeps_failing_creates_nothing_extra(hook: VapiHook, vapi_emulator: Any) -> None:
    vapi_emulator.fault("drop", method="POST", path="/call", times=10)
    call = hook.create_call(body(vapi_emulator), idempotency_key="dropped")
    # Every attempt after the first is replaced by a lookup that finds the first one.
    assert len(vapi_emulator.requests(method="POST", path="/call")) == 1
    assert [c["id"] for c in vapi_emulator.calls()] == [call.id]


def test_create_batch_lost_answer_returns_the_batch(hook: VapiHook, vapi_emulator: Any) -> None:
    vapi_emulator.faults(["drop"], method="POST", path="/call")
    request = {
        "assistantId": vapi_emulator.assistant_id,
        "phoneNumberId": vapi_emulator.phone_number_id,
        "customers": [{"number": "+14155550111"}, {"number": "+14155550112"}, {"number": "+14155550113"}],
    }
    result = hook.create_call(request, idempotency_key="lost-batch")
    assert isinstance(result, CallBatchResponse)
    assert len(result.results) == 3
    assert len(vapi_emulator.calls()) == 3


def test_unreachable_vapi_is_a_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", vapi_conn_json("http://127.0.0.1:9", "k"))
    hook = VapiHook(retry_policy=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01))
    with pytest.raises(VapiConnectionError, match="vapi_default"):
        hook.get_call("00000000-0000-4000-8000-000000000000")


# -- errors -----------------------------------------------------------------------------------------


def test_wrong_key_names_the_connection_and_the_fix(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_DEFAULT", vapi_conn_json(vapi_emulator.url, "public-key-by-mistake")
    )
    hook = VapiHook(retry_policy=FAST)
    with pytest.raises(VapiAuthError) as info:
        hook.list_assistants()
    err = info.value
    assert err.status_code == 401
    assert "Invalid Key" in str(err) and "'vapi_default'" in str(err) and "private" in str(err)
    ok, message = hook.test_connection()
    assert not ok and "401" in message
    assert "public-key-by-mistake" not in message


def test_vapi_400_messages_reach_the_user(hook: VapiHook, vapi_emulator: Any) -> None:
    request = body(vapi_emulator)
    request["assistantId"] = "00000000-0000-4000-8000-00000000dead"
    with pytest.raises(VapiBadRequestError) as info:
        hook.create_call(request)
    err = info.value
    assert err.status_code == 400 and err.method == "POST"
    assert any("Does Not Exist" in m for m in err.vapi_messages)
    assert "00000000-0000-4000-8000-00000000dead" in str(err)


def test_missing_api_key_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_DEFAULT", json.dumps({"conn_type": "vapi", "host": "http://127.0.0.1:9"})
    )
    with pytest.raises(Exception, match="Password field"):
        VapiHook().get_call("x")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer": {"number": "4155550123"}}, "customer.number"),
        ({"squadId": "s-1"}, "squad_id"),
        ({"phoneNumberId": None}, "phone_number"),
        ({"assistantVersion": "3", "assistantId": None, "assistant": {"name": "x"}}, "assistant_version"),
        ({"name": "x" * 41}, "name"),
    ],
)
def test_bad_input_fails_before_any_request(
    hook: VapiHook, vapi_emulator: Any, change: dict[str, Any], field: str
) -> None:
    request = {k: v for k, v in {**body(vapi_emulator), **change}.items() if v is not None}
    with pytest.raises(VapiInvalidRequestError, match=field.split(".")[0]):
        hook.create_call(request)
    assert vapi_emulator.requests() == [], "nothing may be sent for an invalid request"


# -- the seed payload, and secrets ------------------------------------------------------------------


def _seed_with_one_alternative_each(emu: Any) -> dict[str, Any]:
    seed = seed_payload()
    for dropped in ("assistantId", "squadId", "squad", "customerId", "phoneNumberId"):
        seed.pop(dropped)
    seed["customer"] = {"number": "+14155550177", "name": "Seed Person", "extension": "12"}
    strings_where_the_spec_wants_them(seed)
    seed["phoneNumber"].update(
        {
            "twilioPhoneNumber": "+14155550100",
            "twilioAccountSid": "AC-seed",
            "twilioAuthToken": "tw-secret-TOKEN-42",
        }
    )
    return seed


def test_seed_payload_reaches_the_emulator_with_nothing_lost(hook: VapiHook, vapi_emulator: Any) -> None:
    seed = _seed_with_one_alternative_each(vapi_emulator)
    expected = CreateCallRequest.from_payload(seed).model_dump(by_alias=True, exclude_unset=True, mode="json")
    call = hook.create_call(seed, idempotency_key="seed")
    assert isinstance(call, Call)
    entry = vapi_emulator.requests(method="POST", path="/call")[-1]
    sent = entry["body"]
    expected["assistantOverrides"]["metadata"][IDEMPOTENCY_METADATA_KEY] = "seed"
    # The emulator's log keeps no secret: compare with the secrets redacted, and prove that each
    # secret arrived intact by its fingerprint (the Twilio token is one of them).
    redacted, secrets = redact(expected)
    assert sent == redacted
    assert entry["fingerprints"] == secrets
    assert entry["fingerprints"]["phoneNumber.twilioAuthToken"] == fingerprint("tw-secret-TOKEN-42")
    # What the seed put in metadata travels in assistantOverrides.metadata now.
    assert "metadata" not in sent
    assert sent["assistant"]["voicemailDetection"] == seed["assistant"]["voicemailDetection"]
    # transferCall tools lost async/function/server in the current API (dropped with a warning).
    kept = [
        {k: t[k] for k in ("type", "messages", "destinations")} for t in seed["assistant"]["model"]["tools"]
    ]
    assert sent["assistant"]["model"]["tools"] == kept


def test_no_secret_reaches_the_logs(
    hook: VapiHook, vapi_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.providers.common.compat.sdk import redact

    seed = _seed_with_one_alternative_each(vapi_emulator)
    seed["assistant"]["server"] = {"url": "https://example.invalid/hook", "secret": "srv-secret-SHH-7"}
    secrets = ["tw-secret-TOKEN-42", "srv-secret-SHH-7", vapi_emulator.api_key]
    vapi_emulator.faults(["500", "drop"], method="POST", path="/call")
    with caplog.at_level(logging.DEBUG):
        hook.create_call(seed)
        bad = {k: v for k, v in seed.items() if k != "assistant"} | {
            "assistantId": "00000000-0000-4000-8000-0000000000aa"
        }
        with pytest.raises(VapiBadRequestError) as info:
            hook.create_call(bad)
    text = caplog.text + str(info.value)
    for secret in secrets:
        assert secret not in text
        assert secret not in str(redact(f"value {secret}")), (
            f"{secret[:4]}... is not registered with the masker"
        )
