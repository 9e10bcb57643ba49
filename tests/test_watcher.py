"""The shared change poll (``watcher``) against the emulator over real HTTP.

Each test counts requests in the emulator's own request log: ``GET /call`` (the shared poll) and
``GET /call/{id}`` (a trigger reading its call directly). Held calls (number ending 0006) stay
in progress until a test ends them through their ``controlUrl``, so the test decides when a
change happens.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_vapi.emulator.engine import Engine
from airflow_provider_vapi.triggers import CallStatusTrigger
from airflow_provider_vapi.waiting import shared_poll, watcher

HELD = "+15550000006"  # stays in progress until ended
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
async def watchers_stopped() -> AsyncIterator[None]:
    """After each test, let a watcher its last trigger left finish stopping on this test's loop
    (pytest-asyncio before 1.0 closes the loop with such a task still cancelling, and Python then
    logs "Task was destroyed but it is pending" at exit)."""
    yield
    stopping = [t for t in asyncio.all_tasks() if t.get_name().startswith("vapi-watcher-")]
    for task in stopping:
        task.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)


# A wait's own bound, under the module's pytest timeout. It must outlast any ``until`` a test runs
# while the trigger waits: a trigger that gave up leaves its watcher, and coverage never comes.
FIRST_EVENT_TIMEOUT = 50.0


async def first_event(trigger: CallStatusTrigger, timeout: float = FIRST_EVENT_TIMEOUT) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        async for event in trigger.run():
            return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            state = getattr(predicate, "state", None)
            raise AssertionError(f"timed out waiting for {what}" + (f" ({state()})" if state else ""))
        await asyncio.sleep(0.02)


def lists(emu: Any) -> list[dict[str, Any]]:
    return emu.requests(method="GET", path="/call")


def reads(emu: Any, call_id: str | None = None) -> list[dict[str, Any]]:
    return emu.requests(method="GET", path=f"/call/{call_id}" if call_id else "/call/*")


def the_watcher(conn_id: str = "vapi_default") -> watcher.CallWatcher:
    return shared_poll.active_watchers()[conn_id]


def all_covered(conn_id: str = "vapi_default", count: int | None = None) -> Callable[[], bool]:
    def check() -> bool:
        w = shared_poll.active_watchers().get(conn_id)
        if w is None:
            return False
        subs = w.subscriptions
        return (count is None or len(subs) == count) and bool(subs) and all(s.covered() for s in subs)

    def state() -> str:  # what ``until`` reports when coverage never came
        w = shared_poll.active_watchers().get(conn_id)
        if w is None:
            return "no watcher"
        subs = w.subscriptions
        covered = sum(s.covered() for s in subs)
        return f"{covered} of {len(subs)} subscriptions covered; healthy={w.healthy}, polls={w.polls}, failed={w.failed_polls}"

    check.state = state  # type: ignore[attr-defined]
    return check


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def start(trigger: CallStatusTrigger) -> asyncio.Task[dict[str, Any]]:
    return asyncio.get_running_loop().create_task(first_event(trigger))


async def test_n_triggers_cost_one_list_request_per_interval(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    n, interval = 40, 0.2
    ids = [emu.create_call(HELD)["id"] for _ in range(n)]
    emu.clear_requests()
    tasks = [start(CallStatusTrigger(cid, vapi_conn, poll_interval=interval)) for cid in ids]
    await until(all_covered(count=n), what="every trigger covered by the shared poll")
    assert len(shared_poll.active_watchers()) == 1
    assert len(reads(emu)) <= 2 * n  # one start-up read each (a few re-read once at bootstrap)

    # Steady state: the shared poll only, at one list per interval, whatever N.
    emu.clear_requests()
    window = 2.0
    await asyncio.sleep(window)
    polled = len(lists(emu))
    assert reads(emu) == []
    assert window / interval * 0.5 <= polled <= window / interval + 2

    # Every call ends: every trigger hears it from the poll, none reads its call again.
    for cid in ids:
        await in_thread(emu.end_call, cid)
    events = await asyncio.gather(*tasks)
    assert [e["status"] for e in events] == ["success"] * n
    assert reads(emu) == []


@pytest.mark.parametrize("vapi_offset_s", [-3600, 3600], ids=["vapi-behind", "vapi-ahead"])
async def test_clock_skew_between_us_and_vapi(vapi_conn, vapi_emulator, monkeypatch, vapi_offset_s):
    """The cursor comes from Vapi's own updatedAt values: a skewed clock on either side is harmless.

    A poller whose cursor came from our clock would ask Vapi (an hour behind) for changes after
    a time it has not reached, hear nothing, and let the trigger run into its deadline.
    """
    emu = vapi_emulator
    offset_ms = vapi_offset_s * 1000
    monkeypatch.setattr(Engine, "now", staticmethod(lambda: time.time_ns() // 1_000_000 + offset_ms))
    held = emu.create_call(HELD)["id"]
    talk = emu.create_call("+15550004242")["id"]  # an ordinary conversation, analysed after it ends
    emu.clear_requests()
    deadline = time.time() + 20
    tasks = [
        start(
            CallStatusTrigger(cid, vapi_conn, poll_interval=0.2, deadline=deadline, analysis_grace_period=60)
        )
        for cid in (held, talk)
    ]
    await until(all_covered(), what="coverage")
    await in_thread(emu.end_call, held)
    events = await asyncio.gather(*tasks)
    assert [e["status"] for e in events] == ["success", "success"]
    # The held call's end came through the shared poll, not through a direct read.
    assert len(reads(emu, held)) == 1
    stamps = [q["query"].get("updatedAtGt") for q in lists(emu)]
    assert stamps and all(s is not None for s in stamps)
    # The cursor lives in Vapi's time, an hour away from ours (it starts up to the bootstrap horizon
    # before the newest updatedAt Vapi has shown).
    first = datetime.fromisoformat(stamps[0].replace("Z", "+00:00")).timestamp()
    assert abs(first - (time.time() + vapi_offset_s)) < watcher.BOOTSTRAP_HORIZON.total_seconds() + 120


async def test_more_than_a_thousand_changes_in_one_interval(vapi_conn, vapi_emulator):
    """The watched call is the oldest of 1,051 that change in one interval: one page cannot hold
    them, and ``GET /call`` answers the newest first, so only paging finds it."""
    emu = vapi_emulator
    watched = emu.create_call(HELD)["id"]
    emu.clear_requests()
    interval = 1.5
    task = start(CallStatusTrigger(watched, vapi_conn, poll_interval=interval))
    await until(all_covered(), what="coverage")
    w = the_watcher()
    polls = w.polls

    def burst() -> None:
        with emu.client(timeout=30) as http:
            for batch in range(11):
                customers = [{"number": f"+1555{batch:02d}{i:05d}"} for i in range(100)]
                body = emu.call_body(customers=customers)
                del body["customer"]
                http.post("/call", json=body).raise_for_status()
        emu.end_call(watched)

    await until(lambda: w.polls > polls, what="a poll to pass")  # the burst starts right after one
    # Even should the burst outlast an interval, the next poll reaches back OVERLAP seconds and
    # so answers with every one of the 1,101 changed calls.
    await in_thread(burst)
    event = await task
    assert event["status"] == "success"
    assert len(reads(emu, watched)) == 1  # only the start-up read: the poll found the end
    assert len(emu.calls()) == 1101
    paged = [q["query"] for q in lists(emu) if "updatedAtGe" in q["query"] or "updatedAtLt" in q["query"]]
    assert paged, "the poll never split its window"


async def test_poller_failure_falls_back_to_direct_reads_and_recovers(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    during, after = emu.create_call(HELD)["id"], emu.create_call(HELD)["id"]
    interval = 0.2
    t_during = start(CallStatusTrigger(during, vapi_conn, poll_interval=interval))
    t_after = start(CallStatusTrigger(after, vapi_conn, poll_interval=interval))
    await until(all_covered(count=2), what="coverage")
    w = the_watcher()

    emu.fault(500, method="GET", path="/call", times=12)  # the shared poll fails for a while
    await until(lambda: not w.healthy, what="the poll to fail")
    emu.clear_requests()
    await in_thread(emu.end_call, during)
    assert (await asyncio.wait_for(t_during, 10))["status"] == "success"
    assert reads(emu, during), "the trigger did not fall back to reading its call"

    await until(lambda: w.healthy, what="the poll to recover")
    await until(all_covered(count=1), what="coverage after recovery")
    emu.clear_requests()
    await asyncio.sleep(5 * interval)
    assert reads(emu) == []  # back to waiting on the poll
    await in_thread(emu.end_call, after)
    assert (await asyncio.wait_for(t_after, 10))["status"] == "success"
    assert reads(emu, after) == []
    assert w.failed_polls >= 1


async def test_last_trigger_leaving_stops_the_poller(vapi_conn, vapi_emulator):
    emu = vapi_emulator
    ids = [emu.create_call(HELD)["id"] for _ in range(3)]
    tasks = [start(CallStatusTrigger(cid, vapi_conn, poll_interval=0.1)) for cid in ids]
    await until(all_covered(count=3), what="coverage")
    w = the_watcher()
    tasks[0].cancel()
    await until(lambda: len(w.subscriptions) == 2, what="the cancelled trigger to leave")
    assert shared_poll.active_watchers() == {"vapi_default": w}
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert shared_poll.active_watchers() == {}
    await asyncio.sleep(0.05)
    emu.clear_requests()
    await asyncio.sleep(0.5)
    assert lists(emu) == []


async def test_one_poller_per_connection(vapi_conn, vapi_emulator, monkeypatch):
    emu = vapi_emulator
    conn = {"conn_type": "vapi", "host": emu.url, "password": emu.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_OTHER", json.dumps(conn))
    ids = {name: [emu.create_call(HELD)["id"] for _ in range(3)] for name in ("vapi_default", "vapi_other")}
    tasks = [
        start(CallStatusTrigger(cid, name, poll_interval=0.2)) for name, group in ids.items() for cid in group
    ]
    await until(lambda: all_covered("vapi_default", 3)() and all_covered("vapi_other", 3)(), what="coverage")
    watchers = shared_poll.active_watchers()
    assert set(watchers) == {"vapi_default", "vapi_other"}
    emu.clear_requests()
    await asyncio.sleep(1.0)
    assert 4 <= len(lists(emu)) <= 2 * (1.0 / 0.2) + 3  # two polls per interval: one each
    for group in ids.values():
        for cid in group:
            await in_thread(emu.end_call, cid)
    assert {e["status"] for e in await asyncio.gather(*tasks)} == {"success"}
    assert shared_poll.active_watchers() == {}


def test_one_poller_per_event_loop(vapi_conn, vapi_emulator):
    """Two loops (two threads) waiting on one connection each get their own watcher and client."""
    emu = vapi_emulator
    ids = [emu.create_call(HELD)["id"] for _ in range(2)]
    seen: dict[int, Any] = {}
    results: dict[int, dict[str, Any]] = {}
    ready = threading.Barrier(3, timeout=20)

    def run(i: int) -> None:
        async def main() -> None:
            task = start(CallStatusTrigger(ids[i], vapi_conn, poll_interval=0.1))
            await until(all_covered(count=1), what="coverage")
            seen[i] = the_watcher()
            await asyncio.to_thread(ready.wait)
            results[i] = await task

        asyncio.run(main())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    ready.wait()
    assert seen[0] is not seen[1] and seen[0].loop is not seen[1].loop
    for cid in ids:
        emu.end_call(cid)
    for t in threads:
        t.join(20)
    assert [results[i]["status"] for i in range(2)] == ["success", "success"]


async def test_settled_by_grace_period_fires_without_a_change(vapi_conn, vapi_emulator):
    """A conversation whose analysis never comes settles when the grace runs out, with no poll
    bringing anything new."""
    emu = vapi_emulator
    emu.configure(analysis_delay=3600)
    call_id = emu.create_call("+15550004242")["id"]
    grace = 0.6
    task = start(CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1, analysis_grace_period=grace))
    ended = await in_thread(emu.wait_for, call_id)
    event = await asyncio.wait_for(task, 10)
    assert event["status"] == "success"
    assert "analysis" not in emu.call(call_id)
    ended_at = datetime.fromisoformat(ended["endedAt"].replace("Z", "+00:00")).timestamp()
    assert time.time() >= ended_at + grace - 1.0


async def test_unhealthy_watcher_never_covers(vapi_conn, vapi_emulator):
    """A poll that keeps failing (503) leaves the triggers reading directly; they still finish."""
    emu = vapi_emulator
    call_id = emu.create_call(HELD)["id"]
    task = start(CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1))
    await until(lambda: bool(reads(emu, call_id)), what="the start-up read")
    emu.fault(503, method="GET", path="/call", rate=1.0)
    emu.clear_requests()
    await asyncio.sleep(0.6)
    assert not all_covered()()
    assert len(reads(emu, call_id)) >= 2  # direct polling at the trigger's interval
    await in_thread(emu.end_call, call_id)
    assert (await asyncio.wait_for(task, 10))["status"] == "success"
