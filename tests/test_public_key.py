"""Ending calls whose control URL is locked ("Data is never code", item 5).

An assistant with ``monitorPlan.controlAuthenticationEnabled: true`` locks its calls'
``monitor.controlUrl``: it then wants ``Authorization: Bearer <public API key>``. The connection's
``public_api_key`` extra is sent there (and only there); the private API key never is. Without a
public key, the refusal says which field to set. Against the emulator, which locks such calls and
knows its org's public key (``vapi_emulator.public_key``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_vapi.exceptions import VapiAuthError, VapiError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.wire.connection import CONN_FIELDS, PUBLIC_KEY_EXTRA, UI_FIELD_BEHAVIOUR
from tests.conftest import vapi_conn_json

pytestmark = pytest.mark.timeout(60)

LIVE = "+14155550006"  # the emulator keeps it in progress until it is ended


def connect(monkeypatch: pytest.MonkeyPatch, emu: Any, **extra: Any) -> VapiHook:
    """``vapi_default`` on the emulator with ``extra`` (short retries), and a hook on it."""
    conn = vapi_conn_json(
        emu.url, emu.api_key, timeout=5, retry_max_wait=0.2, retry_total_seconds=10, **extra
    )
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", conn)
    return VapiHook()


def live_call(emu: Any, *, locked: bool) -> str:
    """A call in progress whose assistant locks (or not) its control URL."""
    with emu.client() as http:
        made = http.post(
            "/assistant", json={"name": "control", "monitorPlan": {"controlAuthenticationEnabled": locked}}
        )
    made.raise_for_status()
    call_id = str(emu.create_call(LIVE, assistantId=made.json()["id"])["id"])
    emu.wait_for(call_id, status="in-progress")
    emu.clear_requests()
    return call_id


def control_posts(emu: Any, call_id: str) -> list[dict[str, Any]]:
    return emu.requests(method="POST", path=f"/control/{call_id}")


# -- a locked control URL --------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_locked_call_ends_with_the_public_key(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    emu = vapi_emulator
    hook = connect(monkeypatch, emu, **{PUBLIC_KEY_EXTRA: emu.public_key})
    call_id = live_call(emu, locked=True)
    ended = hook.end_call(call_id) if driver == "sync" else asyncio.run(hook.aend_call(call_id))
    assert ended.status == "ended" and ended.ended_reason == "manually-canceled"
    (post,) = control_posts(emu, call_id)
    assert post["authorization"] and post["status"] < 300, "the public key was sent, and accepted"


def test_a_locked_call_without_a_public_key_names_the_field_to_set(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = vapi_emulator
    hook = connect(monkeypatch, emu)
    call_id = live_call(emu, locked=True)
    with pytest.raises(VapiAuthError) as info:
        hook.end_call(call_id)
    message = str(info.value)
    assert info.value.status_code in (401, 403) and info.value.call_id == call_id
    assert "controlAuthenticationEnabled" in message and "*public* API key" in message
    assert "'vapi_default'" in message and f"'{PUBLIC_KEY_EXTRA}'" in message and "still live" in message
    assert "private* key (Dashboard" not in message, "not the API's 'fix your private key' hint"
    assert [p["authorization"] for p in control_posts(emu, call_id)] == [False], (
        "the API key never goes there"
    )
    assert emu.call(call_id)["status"] == "in-progress"


def test_a_wrong_public_key_is_reported_as_such(vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = vapi_emulator
    hook = connect(monkeypatch, emu, **{PUBLIC_KEY_EXTRA: "not-the-public-key-0000"})
    call_id = live_call(emu, locked=True)
    with pytest.raises(
        VapiAuthError, match=r"public API key of connection 'vapi_default' .* was sent and refused"
    ):
        hook.end_call(call_id)
    assert emu.call(call_id)["status"] == "in-progress"


# -- an open control URL, and the key itself --------------------------------------------------------


@pytest.mark.parametrize("with_public_key", [False, True])
def test_an_open_control_url_ends_either_way_and_never_sees_the_api_key(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch, with_public_key: bool
) -> None:
    emu = vapi_emulator
    extra = {PUBLIC_KEY_EXTRA: "pk-open-url-1234"} if with_public_key else {}
    hook = connect(monkeypatch, emu, **extra)
    call_id = live_call(emu, locked=False)
    assert hook.end_call(call_id).ended_reason == "manually-canceled"
    assert [p["authorization"] for p in control_posts(emu, call_id)] == [with_public_key]


def test_the_private_key_in_the_public_field_is_never_sent(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = vapi_emulator
    hook = connect(monkeypatch, emu, **{PUBLIC_KEY_EXTRA: emu.api_key})
    call_id = live_call(emu, locked=False)
    with pytest.raises(VapiError, match="private API key in the public API key field"):
        hook.end_call(call_id)
    assert control_posts(emu, call_id) == [], "nothing reached the control URL"
    assert emu.api_key not in repr(hook.settings)


def test_the_public_key_is_masked_and_kept_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import redact

    key = "pk-7f3e0c1a-unique-public"
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_DEFAULT",
        vapi_conn_json("http://127.0.0.1:9", "sk-private-1", **{PUBLIC_KEY_EXTRA: f" {key} "}),
    )
    settings = VapiHook().settings
    assert settings.public_key == key, "trimmed"
    assert key not in str(redact(f"header Bearer {key}"))
    assert key not in repr(settings) and "sk-private-1" not in repr(settings)


def test_the_form_has_a_masked_public_key_field() -> None:
    field = CONN_FIELDS[PUBLIC_KEY_EXTRA]
    assert field["schema"]["format"] == "password", "Airflow 3.2+ shows it masked, as sensitive"
    assert "null" in field["schema"]["type"], "optional"
    assert PUBLIC_KEY_EXTRA in UI_FIELD_BEHAVIOUR["placeholders"]
    widgets = VapiHook.get_connection_form_widgets()
    if widgets:  # WTForms exists only on Airflow < 3.2
        assert widgets[PUBLIC_KEY_EXTRA].field_class.widget.input_type == "password"


def test_airflow_counts_the_field_as_sensitive() -> None:
    from airflow.providers_manager import ProvidersManager

    widget = ProvidersManager().connection_form_widgets[f"extra__vapi__{PUBLIC_KEY_EXTRA}"]
    assert widget.is_sensitive
