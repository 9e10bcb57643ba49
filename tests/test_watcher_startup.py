"""Starting many waits at once costs a listing, not a direct read per trigger (watcher.py's start-up
rule), and the shared poll stays cheap on an account busy with calls nobody waits for (feed.py).

Against the emulator over real HTTP; counts come from its request log.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_vapi.models import Call
from airflow_provider_vapi.triggers import CallStatusTrigger
from airflow_provider_vapi.waiting import feed, watcher

from .test_watcher import HELD, all_covered, in_thread, lists, reads, start, the_watcher, until

pytestmark = pytest.mark.timeout(90)


def place_held(emu: Any, count: int, code: int) -> list[str]:
    """``count`` calls held in progress, placed in batches of 100 (numbers unique to ``code``).
    They last an hour of Vapi's time (three minutes at speed 20): longer than any test, so none ends
    by itself however slow the machine."""
    ids: list[str] = []
    with emu.client(timeout=30) as http:
        for first in range(0, count, 100):
            # The emulator's outcome is the number's last four digits: 0006 holds the call.
            customers = [{"number": f"+1555{code:02d}{i:03d}0006"} for i in range(first, min(count, first + 100))]
            body = emu.call_body(customers=customers, assistantOverrides={"maxDurationSeconds": 3600})
            del body["customer"]
            answer = http.post("/call", json=body)
            answer.raise_for_status()
            ids += [c["id"] for c in answer.json()["results"]]
    return ids


async def test_three_hundred_triggers_start_with_one_direct_read(vapi_conn, vapi_emulator):
    """One probe read tells the watcher Vapi's clock; the first poll's listing gives every other
    trigger its call's state. The old start-up read every call: 300 ``GET /call/{id}``."""
    emu = vapi_emulator
    ids = place_held(emu, 300, 11)
    emu.clear_requests()
    tasks = [start(CallStatusTrigger(cid, vapi_conn, poll_interval=0.3)) for cid in ids]
    await until(all_covered(count=300), timeout=40, what="every trigger covered by the listing")
    assert len(reads(emu)) == 1, "more than the probe read its call directly"

    ended = ids[:50]
    for cid in ended:
        await in_thread(emu.end_call, cid)
    events = await asyncio.gather(*tasks[:50])
    assert {e["status"] for e in events} == {"success"}
    assert len(reads(emu)) == 1, "an end was read directly instead of coming through the poll"
    for task in tasks[50:]:
        task.cancel()
    await asyncio.gather(*tasks[50:], return_exceptions=True)


async def test_a_trigger_joining_a_running_poll_reads_nothing(vapi_conn, vapi_emulator):
    """A trigger that starts while the poll runs (a task deferring mid-campaign, a trigger moved to
    this triggerer) takes its call's state from the next poll."""
    emu = vapi_emulator
    first = emu.create_call(HELD)["id"]
    t_first = start(CallStatusTrigger(first, vapi_conn, poll_interval=0.2))
    await until(all_covered(count=1), what="the first trigger covered")
    joiner = emu.create_call("+15550010006")["id"]  # held, like HELD
    emu.clear_requests()
    t_joiner = start(CallStatusTrigger(joiner, vapi_conn, poll_interval=0.2))
    await until(all_covered(count=2), what="the joiner covered")
    await in_thread(emu.end_call, joiner)
    assert (await asyncio.wait_for(t_joiner, 15))["status"] == "success"
    assert reads(emu) == [], "the joiner read its call instead of waiting for the poll"
    t_first.cancel()
    await asyncio.gather(t_first, return_exceptions=True)


async def test_a_trigger_joining_while_a_poll_is_answered_waits_for_the_next_poll(vapi_conn, vapi_emulator):
    """The poll under way when a trigger joins was listed before the joiner's call existed (its
    answer is held back by ``stall:S``). Judged by that listing, the joiner would find its call
    missing and read it directly; it must wait for the next poll, which started after it joined.
    Under load this is the ordinary case: the answer waits in the socket while the loop is busy."""
    emu = vapi_emulator
    first = emu.create_call(HELD)["id"]
    t_first = start(CallStatusTrigger(first, vapi_conn, poll_interval=0.2))
    await until(all_covered(count=1), what="the first trigger covered")
    emu.fault("stall:2", method="GET", path="/call", query={"updatedAtGt": "*"})

    def listed_and_held() -> bool:
        return any(r["fault"] == "stall:2" and r["status"] for r in lists(emu))

    await until(listed_and_held, what="a poll listed, its answer held back")
    joiner = emu.create_call("+15550010006")["id"]  # held, like HELD; after the listing was made
    emu.clear_requests()
    t_joiner = start(CallStatusTrigger(joiner, vapi_conn, poll_interval=0.2))
    await until(all_covered(count=2), what="the joiner covered")
    await in_thread(emu.end_call, joiner)
    assert (await asyncio.wait_for(t_joiner, 15))["status"] == "success"
    assert reads(emu, joiner) == [], "the joiner was judged by a listing made before it joined"
    t_first.cancel()
    await asyncio.gather(t_first, return_exceptions=True)


async def test_a_call_quiet_for_longer_than_the_listing_reaches_is_read_directly(vapi_conn, vapi_emulator):
    """A call that ended two hours ago is older than the first listing reaches back: its trigger is
    told so and reads it. Taking "not listed" for "nothing new" would leave it waiting forever. A
    call that ended two minutes ago, long before the probe's call changed, is within reach: it is
    taken from the listing, not read."""
    emu = vapi_emulator
    now = datetime.now(UTC)

    def seed_one(at: datetime) -> str:
        return emu.seed_calls(1, at, at + timedelta(seconds=1), assistant_id=emu.assistant_id, ids=True)["ids"][0]

    old, recent = seed_one(now - timedelta(hours=2)), seed_one(now - timedelta(minutes=2))
    probe = emu.create_call(HELD)["id"]
    emu.clear_requests()
    t_probe = start(CallStatusTrigger(probe, vapi_conn, poll_interval=0.2))
    await asyncio.sleep(0)  # the probe subscribes first: it is the one that reads
    waits = [start(CallStatusTrigger(cid, vapi_conn, poll_interval=0.2)) for cid in (old, recent)]
    events = await asyncio.wait_for(asyncio.gather(*waits), 20)
    assert [e["status"] for e in events] == ["success", "success"], events
    assert len(reads(emu, old)) == 1
    assert reads(emu, recent) == [], "a call within the listing's reach was read directly"
    first_cursor = lists(emu)[0]["query"]["updatedAtGt"]
    assert datetime.fromisoformat(first_cursor.replace("Z", "+00:00")) > now - timedelta(hours=1)
    t_probe.cancel()
    await asyncio.gather(t_probe, return_exceptions=True)


async def test_calls_nobody_waits_for_are_paged_but_never_made_into_models(
    vapi_conn, vapi_emulator, monkeypatch
):
    """2,500 unrelated calls change while one trigger waits: the poll pages through them all (its
    cursor needs their ``updatedAt``) and makes a model of none of them."""
    emu = vapi_emulator
    watched = emu.create_call(HELD)["id"]
    made: list[str] = []
    real = Call.model_validate

    def counting(obj: Any, *args: Any, **kwargs: Any) -> Call:
        made.append(obj["id"])
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(feed.Call, "model_validate", counting)
    task = start(CallStatusTrigger(watched, vapi_conn, poll_interval=0.3))
    await until(all_covered(count=1), what="coverage")
    w = the_watcher()
    now = datetime.now(UTC)
    emu.clear_requests()
    made.clear()
    await in_thread(lambda: emu.seed_calls(2500, now - timedelta(seconds=1), now, recording=False))
    polls = w.polls
    await until(lambda: w.polls >= polls + 2 and w.healthy, what="two polls after the traffic")
    assert len(lists(emu)) >= 4, "2,500 changed calls take at least three pages, plus a split"
    unwanted = set(made) - {watched}  # the watched call itself may be listed again in the overlap
    assert not unwanted, f"models made of {len(unwanted)} calls nobody waits for"
    await in_thread(emu.end_call, watched)
    assert (await asyncio.wait_for(task, 15))["status"] == "success"
    assert set(made) == {watched}


def fat_page(count: int, transcript_chars: int) -> bytes:
    import json

    stamp = "2026-11-26T10:00:00.000Z"
    calls = [
        {"id": f"c{i:05d}", "status": "ended", "updatedAt": stamp, "createdAt": stamp, "transcript": "x" * transcript_chars}
        for i in range(count)
    ]
    return json.dumps(calls).encode()


async def test_a_large_page_is_decoded_without_holding_the_loop():
    """A page of 2,000 long calls (~20 MB) is decoded in slices: a task sharing the loop runs many
    times meanwhile. ``json.loads`` of the whole page would let it run once, after."""
    body = fat_page(2000, 10_000)
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    started, before = time.perf_counter(), ticks
    listing = feed.Listing()
    stamps = await feed.decode_page(body, {"c00007"}, "updatedAt", listing)
    took = time.perf_counter() - started
    stop = True
    await task
    assert len(stamps) == 2000 and listing.listed == 2000
    assert list(listing.calls) == ["c00007"]
    assert ticks - before >= max(2, int(took / feed.SLICE_SECONDS) // 4), (ticks - before, took)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"<html>502 Bad Gateway</html>", "not a JSON array"),
        (b'[{"id": "a", "updatedAt": "2026-11-26T10:00:00Z"}, {"id": "b", "upd', "cut off or not JSON"),
        (b'[{"id": "a", "updatedAt": "2026-11-26T10:00:00Z"} {"id": "b"}]', "cut off or not JSON"),
        (b'[{"updatedAt": "2026-11-26T10:00:00Z"}]', "an element without an id"),
        (b'[{"id": "a"}]', "call a without updatedAt"),
        (b'[{"id": "a", "updatedAt": "2026-11-26T10:00:00Z", "status": 7}]', "call a is not a call"),
        (b"\xff\xfe[]", "not UTF-8"),
    ],
)
async def test_a_garbage_page_is_an_error_that_says_what_is_wrong(body: bytes, said: str):
    from airflow_provider_vapi.exceptions import VapiResponseError

    with pytest.raises(VapiResponseError, match=said):
        await feed.decode_page(body, {"a"}, "updatedAt", feed.Listing())


async def test_an_empty_page_and_whitespace_are_fine():
    listing = feed.Listing()
    assert await feed.decode_page(b" [ ] ", {"a"}, "updatedAt", listing) == []
    assert listing.newest is None and listing.listed == 0


def test_the_start_up_rule_is_documented_where_the_watcher_is():
    assert "probe" in (watcher.__doc__ or "") and "GATHER_SECONDS" in (watcher.__doc__ or "")
