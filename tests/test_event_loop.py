"""Nothing synchronous of Airflow runs on the triggerer's event loop: reading the connection's
extras and telling the masker about the API key happen in a worker thread.

On Airflow 3 both talk to the supervisor synchronously; on the shared loop of the triggerer that
blocks every other trigger, and with another request in flight it raises
``DeadlockImminentError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_vapi.hook import core as hooks
from airflow_provider_vapi.triggers import CallStatusTrigger
from airflow_provider_vapi.wire import connection

pytestmark = pytest.mark.timeout(60)


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def test_the_trigger_reads_the_connection_and_masks_off_the_loop(
    vapi_conn: str, vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bool]] = []
    real_mask, real_from = hooks.mask, connection.ConnectionSettings.from_connection

    def mask(secrets: Any) -> None:
        seen.append(("mask_secret", _on_a_loop()))
        real_mask(secrets)

    def from_connection(*args: Any, **kwargs: Any) -> Any:
        seen.append(("extras", _on_a_loop()))
        return real_from(*args, **kwargs)

    monkeypatch.setattr(hooks, "mask", mask)
    monkeypatch.setattr(connection.ConnectionSettings, "from_connection", from_connection)
    call_id = vapi_emulator.create_call("+15550004242")["id"]
    trigger = CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1, analysis_grace_period=0)
    async with asyncio.timeout(30):
        events = [event async for event in trigger.run()]
    assert len(events) == 1
    assert ("extras", False) in seen and ("mask_secret", False) in seen, seen
    assert not [name for name, on_loop in seen if on_loop], f"ran on the event loop: {seen}"
