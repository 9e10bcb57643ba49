"""The stream of one call-event watcher: ended calls in, one event per matching call out.

:class:`CallEventStream` reads the change feed through the triggerer's shared watcher (a
:class:`~airflow_provider_vapi.waiting.subscription.FeedTap`: the same ``GET /call?updatedAtGt=`` poll
the waiting tasks share, so a triggerer lists once per interval however many watchers and waits
it runs), judges each ended call by the watcher's filters and by the wait's completion rule
(:func:`~airflow_provider_vapi.waiting.task.is_settled`), and keeps its
:class:`~airflow_provider_vapi.call_events.ledger.Ledger` in the asset state store.

The flow of one run:

1. **Load** the ledger. None stored: the first look places the mark at the newest call that had
   ended (nothing older is delivered). A mark older than ``catch_up`` is moved up to it with a
   WARNING naming the calls skipped (land those with ``ExportCallsOperator``).
2. **Catch up**: list every call changed since the mark (a page at a time) and judge it; then
   read the tap. A tap batch that starts after what was read (the watcher lost its place) is a
   gap, listed the same way.
3. **Send** each settled matching call once (:meth:`CallEventStream.events` yields it); a call
   that ended but whose results are still to come waits up to ``grace`` after ``endedAt``.
4. **Stored**: when Airflow has stored an event (:meth:`CallEventStream.stored`, from the
   shared stream's acknowledgement), the ledger records it and is written back.

At most :data:`MAX_IN_FLIGHT` events are sent and not yet stored at once, well under the
triggerer's per-subscriber queue, so a catch-up after hours never overflows it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from airflow_provider_vapi.call_events.filters import CallFilter
from airflow_provider_vapi.call_events.ledger import Ledger, ended_key
from airflow_provider_vapi.exceptions import VapiError, is_transient
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import AwaitedResults, aawaited_for, call_result
from airflow_provider_vapi.waiting.completion import is_settled
from airflow_provider_vapi.waiting.cursor import OVERLAP
from airflow_provider_vapi.waiting.feed import aended_pages
from airflow_provider_vapi.waiting.shared_poll import tap as tap_watcher
from airflow_provider_vapi.waiting.subscription import FeedTap
from airflow_provider_vapi.wire.paging import iso
from airflow_provider_vapi.wire.skew import CLOCK_SKEW

log = logging.getLogger(__name__)


#: Events sent and not yet stored by Airflow, at most: three quarters of the triggerer's queue of
#: raw events per subscriber (``[triggerer] shared_stream_subscriber_queue_size``, 1,024 by default;
#: a subscriber whose queue fills is failed by Airflow).
def _in_flight_cap() -> int:
    try:
        from airflow.providers.common.compat.sdk import conf

        size = conf.getint("triggerer", "shared_stream_subscriber_queue_size", fallback=1024)
    except Exception:  # no such option (Airflow before 3.3), or no configuration at all
        size = 1024
    return max(1, int(size) * 3 // 4)


MAX_IN_FLIGHT = _in_flight_cap()
#: The asset state store key of the ledger.
STATE_KEY = "vapi_call_events"


class LedgerStore(Protocol):
    """Where the ledger is kept: the asset state store (:mod:`.trigger`), or memory."""

    async def load(self) -> Ledger: ...

    async def save(self, ledger: Ledger) -> None: ...


class MemoryStore:
    """A ledger kept in memory: for Airflow without an asset state store (a restart starts anew)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.writes = 0

    async def load(self) -> Ledger:
        return Ledger.from_state([self.state])

    async def save(self, ledger: Ledger) -> None:
        self.state = ledger.state()
        self.writes += 1


class CallEventStream:
    """See the module docstring."""

    def __init__(
        self,
        *,
        vapi_conn_id: str,
        poll_interval: float,
        call_filter: CallFilter,
        grace: float,
        catch_up: timedelta,
        store: LedgerStore,
        name: str = "",
    ) -> None:
        self.vapi_conn_id = vapi_conn_id
        self.poll_interval = poll_interval
        self.filter = call_filter
        self.grace = grace
        self.catch_up = catch_up
        self.store = store
        self.name = name or call_filter.describe()
        self.ledger = Ledger()
        self._awaited: dict[str, AwaitedResults] = {}
        self._room = asyncio.Event()
        self._room.set()
        self._save_lock = asyncio.Lock()
        self._hook: VapiHook | None = None
        self.sent_count = 0

    # -- the run ----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[tuple[dict[str, Any], str]]:
        """``(payload, call id)`` for each call to deliver, forever (see the module docstring)."""
        self.ledger = await self.store.load()
        tap = tap_watcher(self.vapi_conn_id, self.poll_interval)
        try:
            if self.ledger.mark is None:
                await self._place(tap)
            else:
                self._keep_within_horizon()
                async for item in self._catch_up(tap, self.ledger.mark - OVERLAP):
                    yield item
            while True:
                batch = await tap.next(self._until_next_grace())
                if batch is not None:
                    if self.ledger.feed is None or batch.since > self.ledger.feed:
                        log.warning(
                            "Vapi call events (%s): the shared poll lost its place; listing the gap since %s.",
                            self.name,
                            iso(self.ledger.feed or batch.since),
                        )
                        async for item in self._catch_up(tap, self.ledger.feed or batch.since):
                            yield item
                    async for item in self._judge_all(batch.calls):
                        yield item
                    self.ledger.fed(batch.until)
                async for item in self._judge_all(list(self.ledger.waiting.values())):
                    yield item
                if self.ledger.advance():
                    await self._save()
        finally:
            tap.close()
            if self._hook is not None:
                await self._hook.aclose()

    async def stored(self, call_ids: Iterable[str]) -> None:
        """Airflow stored these calls' events: record them and write the ledger."""
        self.ledger.stored(call_ids)
        self.ledger.advance()
        if len(self.ledger.sent) < MAX_IN_FLIGHT:
            self._room.set()
        await self._save()

    def unsent(self, call_ids: Iterable[str]) -> None:
        """Airflow did not store these events: send the calls again."""
        self.ledger.unsent(call_ids)
        if len(self.ledger.sent) < MAX_IN_FLIGHT:
            self._room.set()

    # -- steps ------------------------------------------------------------------------------------

    async def _place(self, tap: FeedTap) -> None:
        """A first run: the mark goes to the newest call that had ended (see the module docstring)."""
        delay = self.poll_interval
        while True:
            try:
                return await self._place_once(tap)
            except VapiError as exc:
                delay = await self._pause_after(exc, delay)

    async def _pause_after(self, exc: VapiError, delay: float) -> float:
        """A listing failed: wait and try again when waiting can help (else raise); the next delay."""
        if not is_transient(exc):
            raise exc
        log.warning(
            "Vapi call events (%s): listing calls failed (%s); trying again in %.0fs.", self.name, exc, delay
        )
        await asyncio.sleep(delay)
        return min(2 * delay, 60.0)

    async def _place_once(self, tap: FeedTap) -> None:
        since = datetime.now(UTC) - CLOCK_SKEW
        newest_end: datetime | None = None
        newest: datetime | None = None
        async for page in aended_pages(self._listing_hook(), {"updatedAtGt": since}):
            for call in page.calls.values():
                key = ended_key(call)
                newest_end = key if newest_end is None or (key and key > newest_end) else newest_end
            if page.newest is not None and (newest is None or page.newest > newest):
                newest = page.newest
        self.ledger.place(newest_end or newest or since)
        self.ledger.fed(max(since, newest - OVERLAP) if newest else since)
        tap.seen(self.ledger.feed)  # the shared poll may start from here (an empty account has no clock)
        await self._save()
        log.info(
            "Vapi call events (%s): first run; calls that end after %s are delivered.",
            self.name,
            iso(self.ledger.mark or since),
        )

    def _keep_within_horizon(self) -> None:
        floor = datetime.now(UTC) - self.catch_up
        mark = self.ledger.mark
        if mark is not None and mark < floor:
            log.warning(
                "Vapi call events (%s): the last delivered call ended at %s, more than %s ago (the "
                "catch-up horizon). Calls that ended between %s and %s are NOT delivered: land them with "
                "ExportCallsOperator, or raise catch_up_hours.",
                self.name,
                iso(mark),
                self.catch_up,
                iso(mark),
                iso(floor),
            )
            self.ledger.mark = floor
            self.ledger.done.clear()

    async def _catch_up(self, tap: FeedTap, since: datetime) -> AsyncIterator[tuple[dict[str, Any], str]]:
        """List every call changed after ``since``, a page at a time, judging each; a listing that
        fails is started again (what it sent is in the ledger: nothing is sent twice)."""
        delay = self.poll_interval
        while True:
            try:
                async for item in self._catch_up_once(tap, since):
                    yield item
                return
            except VapiError as exc:
                delay = await self._pause_after(exc, delay)

    async def _catch_up_once(
        self, tap: FeedTap, since: datetime
    ) -> AsyncIterator[tuple[dict[str, Any], str]]:
        started = time.monotonic()
        newest: datetime | None = None
        count = 0
        async for page in aended_pages(self._listing_hook(), {"updatedAtGt": since}):
            count += page.listed
            if page.newest is not None and (newest is None or page.newest > newest):
                newest = page.newest
            async for item in self._judge_all(list(page.calls.values())):
                yield item
        self.ledger.fed(max(since, newest - OVERLAP) if newest else since)
        tap.seen(self.ledger.feed)
        log.info(
            "Vapi call events (%s): caught up from %s (%d calls listed in %.1fs).",
            self.name,
            iso(since),
            count,
            time.monotonic() - started,
        )

    async def _judge_all(self, calls: Sequence[Call]) -> AsyncIterator[tuple[dict[str, Any], str]]:
        """Judge ``calls``; the ones to send are written to the ledger as sent *before* they leave
        (a batch at a time, at most the room :data:`MAX_IN_FLIGHT` leaves), then yielded."""
        batch: list[Call] = []
        for call in calls:
            if not call.is_ended or not self.filter.matches(call) or self.ledger.place_of(call) is not None:
                continue
            awaited = await self._awaited_for(call)
            if self.ledger.judge(call, is_settled(call, self.grace, awaited)) == "send":
                self._awaited.pop(call.id, None)
                batch.append(call)
                if len(self.ledger.sent) >= MAX_IN_FLIGHT:
                    async for item in self._send(batch):
                        yield item
                    batch = []
        async for item in self._send(batch):
            yield item

    async def _send(self, batch: list[Call]) -> AsyncIterator[tuple[dict[str, Any], str]]:
        if not batch:
            return
        await self._save()  # "sending" first: a repeat after a crash is then flagged
        for call in batch:
            payload = call_result(call)
            if self.ledger.maybe_delivered(call.id):
                payload["possibleRepeat"] = True
            self.sent_count += 1
            yield payload, call.id
        if len(self.ledger.sent) >= MAX_IN_FLIGHT:
            self._room.clear()
            await self._room.wait()

    async def _awaited_for(self, call: Call) -> AwaitedResults:
        known = self._awaited.get(call.id)
        if known is None:
            known = self._awaited[call.id] = await aawaited_for(self._listing_hook(), call)
        return known

    def _until_next_grace(self) -> float:
        """Seconds until the soonest waiting call's grace runs out (capped at a few intervals)."""
        wait = max(3 * self.poll_interval, 30.0)
        now = datetime.now(UTC).timestamp()
        for call in self.ledger.waiting.values():
            ended = call.ended_at or call.updated_at
            if ended is not None:
                wait = min(wait, ended.timestamp() + self.grace - now)
        return max(wait, 0.0) + 0.01

    def _listing_hook(self) -> VapiHook:
        if self._hook is None:
            self._hook = VapiHook(self.vapi_conn_id)
        return self._hook

    async def _save(self) -> None:
        async with self._save_lock:
            await self.store.save(self.ledger)


__all__ = ["MAX_IN_FLIGHT", "STATE_KEY", "CallEventStream", "LedgerStore", "MemoryStore"]
