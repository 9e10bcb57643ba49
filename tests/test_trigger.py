"""``CallStatusTrigger``'s contract, against the emulator over real HTTP: its kwargs, its one
event and that event's shape, deadlines, errors, the analysis grace rule, cancellation."""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

import pytest

from airflow_provider_vapi.triggers import CallStatusTrigger
from airflow_provider_vapi.waiting import shared_poll

HELD = "+15550000006"  # stays in progress until ended
TALK = "+15550004242"  # an ordinary conversation: ends, then its analysis arrives
pytestmark = pytest.mark.timeout(60)


async def events(trigger: CallStatusTrigger, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Every event the trigger yields until it returns (it must yield exactly one)."""
    out = []
    async with asyncio.timeout(timeout):
        async for event in trigger.run():
            out.append(dict(event.payload))
    return out


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_serialize_round_trip():
    trigger = CallStatusTrigger(
        ["a", "b"], "my_vapi", poll_interval=3, deadline=1234.5, analysis_grace_period=7, end_on_kill=False
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs == {
        "call_ids": ["a", "b"],
        "vapi_conn_id": "my_vapi",
        "poll_interval": 3.0,
        "deadline": 1234.5,
        "analysis_grace_period": 7.0,
        "end_on_kill": False,
        "results": None,
    }
    assert CallStatusTrigger("one").call_ids == ["one"]


async def test_success_waits_for_the_analysis(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    call_id = emu.create_call(TALK)["id"]
    got = await events(CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1, analysis_grace_period=60))
    assert got == [{"status": "success", "message": "1 call(s) ended.", "call_ids": [call_id], "pending": []}]
    call = emu.call(call_id)
    assert call["status"] == "ended" and "analysis" in call
    # The analysis landing was a change the shared poll delivered: one direct read, at start.
    assert len(emu.requests(method="GET", path=f"/call/{call_id}")) == 1


async def test_already_ended_call_needs_no_poll(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    call_id = emu.create_call("+15550000005")["id"]  # a start error: ended at once, no analysis
    emu.clear_requests()
    got = await events(CallStatusTrigger(call_id, vapi_conn, poll_interval=5))
    assert got[0]["status"] == "success"
    assert emu.requests(method="GET", path="/call") == []
    assert len(emu.requests(method="GET", path=f"/call/{call_id}")) == 1


async def test_change_twice_within_one_interval(vapi_conn, vapi_emulator):
    """Queued at the first read; rings, talks, ends and is analysed before the first poll."""
    emu = vapi_emulator
    call_id = emu.create_call(TALK)["id"]
    got = await events(CallStatusTrigger(call_id, vapi_conn, poll_interval=1.5, analysis_grace_period=60))
    assert got[0]["status"] == "success"
    assert "analysis" in emu.call(call_id)
    assert len(emu.requests(method="GET", path="/call")) <= 2
    assert len(emu.requests(method="GET", path=f"/call/{call_id}")) == 1


async def test_several_calls_in_one_trigger(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    quick, held = emu.create_call(TALK)["id"], emu.create_call(HELD)["id"]
    task = asyncio.create_task(events(CallStatusTrigger([quick, held, quick], vapi_conn, poll_interval=0.1)))
    await asyncio.to_thread(emu.wait_for, quick, analysis=True)
    await asyncio.sleep(0.3)
    assert not task.done()
    await asyncio.to_thread(emu.end_call, held)
    got = await task
    assert [e["status"] for e in got] == ["success"]
    assert got[0]["call_ids"] == [quick, held, quick]


async def test_deadline_gives_timeout_with_the_pending_calls(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    done, held = emu.create_call("+15550000005")["id"], emu.create_call(HELD)["id"]
    start = time.time()
    got = await events(CallStatusTrigger([done, held], vapi_conn, poll_interval=0.1, deadline=start + 0.8))
    assert time.time() >= start + 0.8
    assert got == [
        {
            "status": "timeout",
            "message": "1 call(s) still not ended at the deadline.",
            "call_ids": [done, held],
            "pending": [held],
        }
    ]
    assert emu.call(held)["status"] == "in-progress"  # a timeout ends nothing: the task decides


async def test_deadline_already_past(vapi_conn, vapi_emulator):
    held = vapi_emulator.create_call(HELD)["id"]
    got = await events(CallStatusTrigger(held, vapi_conn, deadline=time.time() - 1))
    assert got[0]["status"] == "timeout" and got[0]["pending"] == [held]


async def test_unknown_call_is_an_error_event(vapi_conn, vapi_emulator):
    missing = "00000000-0000-4000-8000-000000000000"
    got = await events(CallStatusTrigger(missing, vapi_conn, poll_interval=0.1))
    assert len(got) == 1 and got[0]["status"] == "error"
    assert missing in got[0]["message"] and got[0]["pending"] == [missing]


async def test_wrong_key_is_an_error_event(vapi_emulator, monkeypatch):
    from tests.conftest import vapi_conn_json

    monkeypatch.setenv("AIRFLOW_CONN_VAPI_BAD", vapi_conn_json(vapi_emulator.url, "not-the-key"))
    held = vapi_emulator.create_call(HELD)["id"]
    got = await events(CallStatusTrigger(held, "vapi_bad", poll_interval=0.1))
    assert got[0]["status"] == "error" and "401" in got[0]["message"]


async def test_transient_errors_are_retried_not_reported(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    call_id = emu.create_call(TALK)["id"]
    emu.faults([503, 429, "ok", 500], method="GET", path=f"/call/{call_id}")
    got = await events(CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1, analysis_grace_period=60))
    assert got[0]["status"] == "success"


@pytest.mark.parametrize("status", [408, 504])
async def test_a_retryable_status_that_outlasts_the_retries_keeps_the_wait_going(vapi_conn, vapi_emulator, status):
    """The hook retries 408 and 504 alike, so the trigger must judge them alike: a first read that
    exhausts its retries is transient, and the wait goes on (a 408 used to end it with an error)."""
    emu = vapi_emulator
    call_id = emu.create_call(TALK)["id"]
    emu.faults([status] * 6, method="GET", path=f"/call/{call_id}")  # the connection allows 5 attempts
    got = await events(CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1, analysis_grace_period=60))
    assert [e["status"] for e in got] == ["success"], got
    assert emu.active_faults() == [], "every scripted failure was answered, so the read was retried"


async def test_grace_period_settles_a_call_whose_analysis_never_comes(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    emu.configure(analysis_delay=3600)
    call_id = emu.create_call(TALK)["id"]
    task = asyncio.create_task(
        events(CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1, analysis_grace_period=0.5))
    )
    await asyncio.to_thread(emu.wait_for, call_id)
    await asyncio.sleep(0.2)
    assert not task.done()  # ended, but the analysis may still come
    got = await task
    assert got[0]["status"] == "success" and "analysis" not in emu.call(call_id)


async def test_cancelled_and_recreated_from_kwargs(vapi_conn, vapi_emulator):
    """A triggerer restart: the running trigger is cancelled, a new one built from its kwargs."""
    emu = vapi_emulator
    held = emu.create_call(HELD)["id"]
    trigger = CallStatusTrigger(held, vapi_conn, poll_interval=0.1)
    first = asyncio.create_task(events(trigger))
    await until(lambda: bool(shared_poll.active_watchers()))
    await asyncio.sleep(0.3)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert shared_poll.active_watchers() == {}
    assert emu.call(held)["status"] == "in-progress"  # cancelling ends nothing

    _, kwargs = trigger.serialize()
    again = CallStatusTrigger(**kwargs)
    second = asyncio.create_task(events(again))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(emu.end_call, held)
    assert [e["status"] for e in await second] == ["success"]


async def test_on_kill_ends_live_calls(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    held, done = emu.create_call(HELD)["id"], emu.create_call("+15550000005")["id"]
    await CallStatusTrigger([held, done], vapi_conn).on_kill()
    assert emu.call(held)["endedReason"] == "manually-canceled"
    assert emu.call(done)["endedReason"].startswith("call.start.error")


async def test_on_kill_can_be_disabled(vapi_conn, vapi_emulator):
    held = vapi_emulator.create_call(HELD)["id"]
    await CallStatusTrigger(held, vapi_conn, end_on_kill=False).on_kill()
    assert vapi_emulator.call(held)["status"] != "ended"
    assert vapi_emulator.requests(path="/control/*") == []
