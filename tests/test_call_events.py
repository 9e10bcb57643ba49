"""``VapiCallEventTrigger`` against the emulator over real HTTP, through Airflow's own shared-stream
manager (tests/call_events_support.py plays the database and the asset state store).

Each test has the emulator to itself (the ``vapi_emulator`` fixture resets it), so "every call of
the account" is every call the test made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

pytest.importorskip(
    "airflow.triggers.shared_stream", reason="call-event watchers need Airflow 3.3's shared streams"
)

from airflow_provider_vapi.call_events.trigger import VapiCallEventTrigger
from airflow_provider_vapi.exceptions import VapiInvalidRequestError
from airflow_provider_vapi.waiting import shared_poll
from tests.call_events_support import Database, StateStore, Triggerer

pytestmark = pytest.mark.timeout(120)
TALK = "+1555000{:04d}"  # ordinary numbers: a conversation, analysed after it ends


@pytest.fixture(autouse=True)
async def watchers_stopped() -> AsyncIterator[None]:
    yield
    stopping = [t for t in asyncio.all_tasks() if t.get_name().startswith("vapi-watcher-")]
    for task in stopping:
        task.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)


async def until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def trigger(conn: str, **filters: Any) -> VapiCallEventTrigger:
    filters.setdefault("poll_interval", 0.2)
    filters.setdefault("analysis_grace_period", 5.0)
    return VapiCallEventTrigger(vapi_conn_id=conn, **filters)


async def ended(emu: Any, call_ids: list[str]) -> None:
    for call_id in call_ids:
        await asyncio.to_thread(emu.wait_for, call_id, analysis=True, timeout=30)


async def first_run_placed(store: StateStore) -> None:
    await until(lambda: store.ledger().mark is not None, what="the first run to place its mark")


async def test_each_inbound_call_once_outbound_ones_not(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    store, db = StateStore(), Database()
    tt = Triggerer(trigger(vapi_conn, direction="inbound"), store, db).start()
    await first_run_placed(store)
    inbound = [emu.inject_inbound_call(TALK.format(4200 + i))["id"] for i in range(6)]
    outbound = [emu.create_call(TALK.format(4300 + i))["id"] for i in range(4)]
    await ended(emu, inbound + outbound)
    await until(lambda: len(db.events) >= 6, what="six events")
    await asyncio.sleep(1.0)  # a few more polls: nothing else may come
    await tt.stop()
    assert sorted(db.ids()) == sorted(inbound)
    for event in db.events:
        assert event["type"] == "inboundPhoneCall" and event["analysis"]["summary"], event
        assert event["outcome"] == "completed" and "dashboardUrl" in event
    assert set(inbound) <= set(store.ledger().done), "the ledger records each stored call"
    assert not set(outbound) & set(store.ledger().done), "and no call its filter refused"


async def test_filters_are_checked_at_parse_time_naming_the_argument():
    with pytest.raises(VapiInvalidRequestError, match="direction has 'Inbound'"):
        VapiCallEventTrigger(direction="Inbound")
    with pytest.raises(VapiInvalidRequestError, match="outcomes has 'complete'"):
        VapiCallEventTrigger(outcomes=["complete"])
    with pytest.raises(VapiInvalidRequestError, match="metadata keys 'n'"):
        VapiCallEventTrigger(metadata={"n": [1]})
    with pytest.raises(VapiInvalidRequestError, match="poll_interval=0"):
        VapiCallEventTrigger(poll_interval=0)
    a = VapiCallEventTrigger(assistant_id=["b", "a", "b"], outcomes="completed")
    b = VapiCallEventTrigger(assistant_id=["a", "b"], outcomes=["completed"])
    assert a.serialize() == b.serialize(), "one trigger for Airflow, however the filters are written"


class Caller:
    """Calls keep ending in the background: one inbound call (already ended) every ``every`` s."""

    def __init__(self, emu: Any, every: float = 0.03, prefix: int = 5000) -> None:
        self.emu = emu
        self.every = every
        self.ids: list[str] = []
        self.prefix = prefix
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Caller:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            number = TALK.format(self.prefix + len(self.ids) % 4000)
            call = await asyncio.to_thread(self.emu.inject_inbound_call, number, ended=True)
            self.ids.append(call["id"])
            await asyncio.sleep(self.every)

    async def stop(self) -> list[str]:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return list(self.ids)


def unrecorded(db: Database, store: StateStore) -> set[str]:
    """Events Airflow stored that the ledger does not hold: the only ones a SIGKILL may repeat."""
    ledger = store.ledger()
    return {cid for cid in db.ids() if cid not in ledger.done}


async def test_sigkill_mid_stream_loses_nothing_and_repeats_only_the_unrecorded(vapi_conn, vapi_emulator):
    store, db = StateStore(), Database()
    tt = Triggerer(trigger(vapi_conn, direction="inbound"), store, db).start()
    await first_run_placed(store)
    caller = Caller(vapi_emulator).start()
    await until(lambda: len(db.events) >= 40, what="40 events before the kill")
    await tt.kill()
    window = unrecorded(db, store)
    stored_at_kill = len(db.events)
    await until(
        lambda: len(caller.ids) >= stored_at_kill + 40, what="calls ending while the triggerer is down"
    )
    tt = Triggerer(trigger(vapi_conn, direction="inbound"), store, db).start()
    await asyncio.sleep(0.5)
    ids = await caller.stop()
    await until(lambda: set(ids) <= set(db.ids()), what="every call delivered after the restart")
    await tt.stop()
    assert set(db.ids()) == set(ids), "nothing lost, nothing invented"
    assert set(db.repeated()) <= window, f"repeated outside the kill window: {set(db.repeated()) - window}"
    assert db.unflagged_repeats() == set(), "a repeat carries possibleRepeat"
    assert tt.failures() == []


async def test_restart_while_calls_end_repeats_only_what_was_in_flight(vapi_conn, vapi_emulator):
    """A clean stop has the kill's window too (events Airflow stores after the stream stopped are
    never acknowledged); a stop while the account is quiet repeats nothing at all."""
    store, db = StateStore(), Database()
    tt = Triggerer(trigger(vapi_conn), store, db).start()
    await first_run_placed(store)
    caller = Caller(vapi_emulator).start()
    await until(lambda: len(db.events) >= 30, what="30 events")
    await tt.stop()
    window = unrecorded(db, store)
    tt = Triggerer(trigger(vapi_conn), store, db).start()
    ids = await caller.stop()
    await until(lambda: set(ids) <= set(db.ids()), what="every call delivered")
    await asyncio.sleep(0.5)
    await tt.stop()
    assert set(db.repeated()) <= window and set(db.ids()) == set(ids)
    assert unrecorded(db, store) == set(), "a stop while nothing is in flight leaves nothing unrecorded"

    tt = Triggerer(trigger(vapi_conn), store, db).start()
    late = vapi_emulator.inject_inbound_call(TALK.format(4500), ended=True)["id"]
    await until(lambda: late in db.ids(), what="the call after the quiet restart")
    await asyncio.sleep(0.5)
    await tt.stop()
    assert db.ids().count(late) == 1 and set(db.repeated()) <= window, "the quiet restart repeated nothing"


async def test_downtime_past_the_horizon_warns_naming_what_is_skipped(vapi_conn, vapi_emulator, caplog):
    store, db = StateStore(), Database()
    old = {"version": 1, "mark": "2026-01-01T00:00:00.000Z", "done": {"old-call": "2026-01-01T00:00:01.000Z"}}
    await store.aset("vapi_call_events", old)
    tt = Triggerer(trigger(vapi_conn, catch_up_hours=1), store, db).start()
    await until(lambda: "NOT delivered" in caplog.text, what="the horizon warning")
    call = vapi_emulator.inject_inbound_call(TALK.format(4400), ended=True)["id"]
    await until(lambda: db.ids() == [call], what="a new call delivered")
    await tt.stop()
    assert "2026-01-01T00:00:00.000Z" in caplog.text and "catch_up_hours" in caplog.text
    assert "old-call" not in store.ledger().done


async def test_watchers_and_waits_of_a_triggerer_share_one_listing_per_interval(vapi_conn, vapi_emulator):
    """Three watchers and five waiting tasks in one loop: about one GET /call per interval."""
    from airflow_provider_vapi.triggers import CallStatusTrigger

    emu = vapi_emulator
    interval = 0.25
    runs = [
        Triggerer(trigger(vapi_conn, poll_interval=interval, **f), StateStore(), Database()).start()
        for f in (
            {"direction": "inbound"},
            {"outcomes": "completed"},
            {"metadata": {"line": "support"}},
        )
    ]
    for tt in runs:
        await first_run_placed(tt.store)
    held = [emu.create_call("+15550000006")["id"] for _ in range(5)]
    waits = [
        asyncio.get_running_loop().create_task(
            _first(CallStatusTrigger(cid, vapi_conn, poll_interval=interval))
        )
        for cid in held
    ]
    await asyncio.sleep(1.0)  # every start-up read is done
    emu.clear_requests()
    window = 3.0
    await asyncio.sleep(window)
    polls = len(emu.requests(method="GET", path="/call"))
    assert len(shared_poll.active_watchers()) == 1
    assert window / interval * 0.5 <= polls <= window / interval + 2, f"{polls} listings in {window}s"
    for task in waits:
        task.cancel()
    for tt in runs:
        await tt.stop()


async def _first(trig: Any) -> Any:
    async for event in trig.run():
        return event


async def test_without_a_shared_stream_run_delivers_each_call_once(vapi_conn, vapi_emulator):
    """Airflow 3.0-3.2 run the trigger's ``run()`` (no shared stream, no state store)."""
    emu = vapi_emulator
    got: list[str] = []
    trig = trigger(vapi_conn, direction="inbound")

    async def collect() -> None:
        async for event in trig.run():
            got.append(event.payload["id"])

    task = asyncio.get_running_loop().create_task(collect())
    await asyncio.sleep(1.0)
    ids = [emu.inject_inbound_call(TALK.format(4600 + i), ended=True)["id"] for i in range(5)]
    await until(lambda: len(got) >= 5, what="five events")
    await asyncio.sleep(0.8)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(got) == sorted(ids)
