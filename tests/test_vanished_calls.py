"""A call deleted while a trigger waits on it ends the wait with an error in a stated time (#11, 6).

Once the shared poll covers a trigger, nothing reads its call directly any more, and a deleted call
simply stops appearing in the change feed. The watcher's census (census.py) notices it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_vapi.triggers import CallStatusTrigger
from airflow_provider_vapi.waiting import census, shared_poll

HELD = "+15550000006"  # stays in progress until ended
pytestmark = pytest.mark.timeout(60)


async def until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def covered() -> bool:
    found = shared_poll.active_watchers().get("vapi_default")
    return found is not None and bool(found.subscriptions) and all(found.covers(s) for s in found.subscriptions)


async def test_a_deleted_call_ends_a_covered_wait_with_an_error(
    vapi_conn: str, vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(census, "CENSUS_MIN_SECONDS", 1.0)
    emu = vapi_emulator
    doomed, kept = emu.create_call(HELD)["id"], emu.create_call(HELD)["id"]
    first = CallStatusTrigger(doomed, vapi_conn, poll_interval=0.1, deadline=time.time() + 30)
    second = CallStatusTrigger(kept, vapi_conn, poll_interval=0.1, deadline=time.time() + 30)

    async def first_event(trigger: CallStatusTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    waits = [asyncio.create_task(first_event(t)) for t in (first, second)]
    await until(covered, what="the shared poll to cover both waits")
    reads_before = len(emu.requests(method="GET", path=f"/call/{kept}"))
    with emu.client() as http:
        http.delete(f"/call/{doomed}").raise_for_status()
    deleted_at = time.monotonic()

    event = await asyncio.wait_for(waits[0], 15)
    assert event["status"] == "error" and doomed in event["message"], event
    assert "404" in event["message"] and "deleted while this task waited" in event["message"]
    # Within one census interval (1 s here) and a poll interval, with margin for a busy machine.
    assert time.monotonic() - deleted_at < 10
    assert not waits[1].done(), "the other call's wait goes on"
    assert len(emu.requests(method="GET", path=f"/call/{kept}")) == reads_before, "only the missing call is read"
    emu.end_call(kept)
    assert (await asyncio.wait_for(waits[1], 15))["status"] == "success"
