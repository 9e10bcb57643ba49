"""``VapiHook.end_call`` / ``aend_call`` (and the trigger's ``on_kill``) against the emulator: one rule
for every stage of a call. Scheduled: ``DELETE /call/{id}`` (``scheduled-call-deleted``); live:
``monitor.controlUrl`` (``manually-canceled``); ended: nothing is sent."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.triggers import CallStatusTrigger

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def hook(vapi_conn: str) -> Any:
    h = VapiHook(vapi_conn)
    yield h
    h.close()


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """What was logged so far: Airflow 3 prints hook logs (structlog) to stdout, 2.11 logs them."""
    caplog.set_level(logging.INFO)

    def read() -> str:
        out = capsys.readouterr()
        return out.out + out.err + caplog.text

    return read


def scheduled(emu: Any) -> str:
    earliest = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    call = emu.create_call("+14155550123", schedulePlan={"earliestAt": earliest})
    assert call["status"] == "scheduled"
    return str(call["id"])


def live(emu: Any) -> str:
    call_id = str(emu.create_call("+14155550006")["id"])
    emu.wait_for(call_id, status="in-progress")
    return call_id


def sent(emu: Any, call_id: str) -> list[tuple[str, str]]:
    """The writes that reached the emulator for this call: (method, path)."""
    return [
        (r["method"], r["path"])
        for r in emu.requests()
        if r["method"] != "GET" and r["path"] in (f"/call/{call_id}", f"/control/{call_id}")
    ]


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_scheduled_call_is_cancelled_by_delete(
    hook: VapiHook, vapi_emulator: Any, logs: Any, driver: str
) -> None:
    call_id = scheduled(vapi_emulator)
    ended = hook.end_call(call_id) if driver == "sync" else asyncio.run(hook.aend_call(call_id))
    assert ended.status == "ended" and ended.ended_reason == "scheduled-call-deleted"
    assert sent(vapi_emulator, call_id) == [("DELETE", f"/call/{call_id}")], (
        "no controlUrl for a scheduled call"
    )
    assert vapi_emulator.call(call_id)["endedReason"] == "scheduled-call-deleted"
    assert f"Cancelled scheduled Vapi call {call_id} (DELETE" in logs()


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_live_call_is_ended_through_its_control_url(
    hook: VapiHook, vapi_emulator: Any, logs: Any, driver: str
) -> None:
    call_id = live(vapi_emulator)
    ended = hook.end_call(call_id) if driver == "sync" else asyncio.run(hook.aend_call(call_id))
    assert ended.status == "ended" and ended.ended_reason == "manually-canceled"
    assert sent(vapi_emulator, call_id) == [("POST", f"/control/{call_id}")], "a live call is never deleted"
    assert f"Ended live Vapi call {call_id} through its monitor.controlUrl" in logs()


def test_an_ended_call_is_left_alone(hook: VapiHook, vapi_emulator: Any) -> None:
    call_id = scheduled(vapi_emulator)
    hook.end_call(call_id)
    vapi_emulator.clear_requests()
    again = hook.end_call(call_id)
    assert again.ended_reason == "scheduled-call-deleted"
    assert sent(vapi_emulator, call_id) == [], "a second DELETE would delete the call's record"


def test_the_trigger_on_kill_cancels_a_scheduled_call_and_ends_a_live_one(
    vapi_conn: str, vapi_emulator: Any
) -> None:
    later, now = scheduled(vapi_emulator), live(vapi_emulator)
    asyncio.run(CallStatusTrigger([later, now], vapi_conn).on_kill())
    assert vapi_emulator.call(later)["endedReason"] == "scheduled-call-deleted"
    assert vapi_emulator.call(now)["endedReason"] == "manually-canceled"
    assert sent(vapi_emulator, later) == [("DELETE", f"/call/{later}")]
    assert sent(vapi_emulator, now) == [("POST", f"/control/{now}")]
