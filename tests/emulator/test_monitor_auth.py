"""A call's monitor URLs: open by default (as on Vapi); locked by the assistant's
``monitorPlan.controlAuthenticationEnabled`` / ``listenAuthenticationEnabled``, they want
``Authorization: Bearer <public key>`` and refuse anything else, the private API key included."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_vapi.emulator import DEFAULT_PUBLIC_KEY
from airflow_provider_vapi.emulator.errors import INVALID_KEY_MESSAGE
from airflow_provider_vapi.emulator.server import EmulatorProcess
from tests.emulator.conftest import create, error

HOLDS = "+15550100006"  # ...0006: a call that is answered and stays in progress (outcomes.py)
END = {"type": "end-call"}
LOCKED = {"monitorPlan": {"controlAuthenticationEnabled": True, "listenAuthenticationEnabled": True}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def live_call(emu: Any, http: httpx.Client, **fields: Any) -> dict[str, Any]:
    call = create(http, emu.call_body(HOLDS, **fields))
    emu.wait_for(call["id"], status="in-progress")
    return call


def saved_locked_assistant(http: httpx.Client) -> str:
    answer = http.post("/assistant", json={"name": "locked monitor", **LOCKED})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def assert_locked(emu: Any, call: dict[str, Any]) -> None:
    """Every key but the public one is refused (and not recorded); the public key ends the call."""
    control = call["monitor"]["controlUrl"]
    for headers in ({}, bearer(emu.api_key), bearer("wrong"), {"Authorization": emu.public_key}):
        assert error(httpx.post(control, json=END, headers=headers), 401) == INVALID_KEY_MESSAGE
    assert emu.call(call["id"])["status"] == "in-progress", "a refused request changed nothing"
    assert httpx.post(control, json=END, headers=bearer(emu.public_key)).status_code == 200
    ended = emu.wait_for(call["id"])
    assert ended["endedReason"] == "manually-canceled"
    log = emu.request_log(path=f"/control/{call['id']}")
    assert [r["status"] for r in log["requests"]] == [401, 401, 401, 401, 200] and log["refused"] == 4
    assert [r["body"] for r in log["requests"]] == [None, None, None, None, END], "no body kept unless let in"


@pytest.mark.parametrize("how", ["overrides", "inline", "saved"])
def test_a_locked_control_url_wants_the_public_key(emu, http, how):
    if how == "overrides":
        call = live_call(emu, http, assistantOverrides=LOCKED)
    elif how == "inline":
        body = emu.call_body(HOLDS, assistant={"name": "inline", **LOCKED})
        del body["assistantId"]
        call = create(http, body)
        emu.wait_for(call["id"], status="in-progress")
    else:
        call = live_call(emu, http, assistantId=saved_locked_assistant(http))
    assert_locked(emu, call)


def test_a_per_customer_override_locks_that_customer_s_call_only(emu, http):
    body = emu.call_body(HOLDS)
    del body["customer"]
    body["customers"] = [{"number": HOLDS, "assistantOverrides": LOCKED}, {"number": "+15550200006"}]
    locked, open_ = create(http, body)["results"]
    emu.wait_for(locked["id"], status="in-progress")
    assert httpx.post(open_["monitor"]["controlUrl"], json=END).status_code == 200
    assert_locked(emu, locked)


@pytest.mark.parametrize("plan", [None, {}, {"controlAuthenticationEnabled": False}])
def test_by_default_the_control_url_is_open_whatever_is_sent(emu, http, plan):
    fields = {} if plan is None else {"assistantOverrides": {"monitorPlan": plan}}
    for headers in ({}, bearer("anything"), bearer(emu.public_key)):
        call = live_call(emu, http, **fields)
        assert httpx.post(call["monitor"]["controlUrl"], json=END, headers=headers).status_code == 200
        assert emu.wait_for(call["id"])["endedReason"] == "manually-canceled"
    assert [r["status"] for r in emu.requests(path="/control/*")] == [200, 200, 200]


def test_the_public_key_opens_no_vapi_route(emu):
    answer = httpx.get(f"{emu.url}/call", headers=bearer(emu.public_key))
    assert error(answer, 401) == INVALID_KEY_MESSAGE


def test_the_handle_ends_a_locked_call_with_its_public_key(emu, http):
    assert emu.public_key == DEFAULT_PUBLIC_KEY != emu.api_key
    call = live_call(emu, http, assistantOverrides=LOCKED)
    emu.end_call(call["id"])
    assert emu.wait_for(call["id"])["endedReason"] == "manually-canceled"


def test_a_custom_public_key_in_a_thread_and_in_a_process(vapi_emulator_factory):
    threaded = vapi_emulator_factory(public_key="pk-thread")
    server = EmulatorProcess(public_key="pk-process")
    with server as process:
        assert any("public key:" in line and "pk-process" in line for line in server.output)
        for emu, key in ((threaded, "pk-thread"), (process, "pk-process")):
            assert emu.public_key == key
            with emu.client() as http:
                call = live_call(emu, http, assistantOverrides=LOCKED)
            control = call["monitor"]["controlUrl"]
            assert httpx.post(control, json=END, headers=bearer(DEFAULT_PUBLIC_KEY)).status_code == 401
            assert httpx.post(control, json=END, headers=bearer(key)).status_code == 200


def test_the_public_key_must_not_be_the_api_key():
    with pytest.raises(RuntimeError, match="public key must differ"):
        EmulatorProcess(api_key="same-key", public_key="same-key").start()


# -- the listen URL (a WebSocket; needs the optional ``websockets`` package) -------------------------


def listen(url: str, headers: dict[str, str]) -> int:
    """Open the listen socket: the close code once accepted (the emulator streams no audio), or
    the refused handshake's status as a negative number."""
    websockets = pytest.importorskip("websockets.sync.client")
    exceptions = pytest.importorskip("websockets.exceptions")
    try:
        with websockets.connect(url, additional_headers=headers, open_timeout=10) as socket:
            try:
                socket.recv(timeout=10)
            except exceptions.ConnectionClosed as closed:
                return int(closed.rcvd.code)
    except exceptions.InvalidStatus as refused:
        return -int(refused.response.status_code)
    raise AssertionError("the listen socket sent a message")


def test_the_listen_url_is_open_by_default_and_locked_on_request(emu, http):
    opened = live_call(emu, http)
    assert listen(opened["monitor"]["listenUrl"], {}) == 1000
    locked = live_call(emu, http, assistantOverrides=LOCKED)
    url = locked["monitor"]["listenUrl"]
    assert listen(url, {}) == listen(url, bearer(emu.api_key)) == -401
    assert listen(url, bearer(emu.public_key)) == 1000
    unknown = url.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    assert listen(unknown, bearer(emu.public_key)) == -404
