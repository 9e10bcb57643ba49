"""One poll of Vapi's change feed per connection and event loop, shared by every waiting trigger.

A campaign defers hundreds or thousands of tasks at once. Polling ``GET /call/{id}`` for each of
them costs N requests per interval; instead, every ``CallStatusTrigger`` of one triggerer process
that uses the same connection subscribes to one :class:`CallWatcher`, which asks Vapi once per
interval what changed (``GET /call?updatedAtGt=<cursor>``, paged by time windows past 1,000) and
hands each changed call to exactly the subscriptions that wait for it.

Correctness rests on these rules:

* **The cursor is Vapi's time, never ours**, and reaches back an overlap: the rules of
  :mod:`airflow_provider_vapi.waiting.cursor`.
* **A subscriber knows what it may rely on.** It subscribes *before* it learns the state of its
  calls, and is *covered* (may stop reading them itself) only when the watcher is healthy and that
  state came from a look that started after the watcher's current run chose its first cursor (or
  showed ``updatedAt`` values no older than that cursor). Every later change then has a newer
  ``updatedAt`` than the cursor and reaches it.
* **Start-up costs a listing, not a read per trigger.** The first subscriber of a new watcher
  reads its calls directly (a *probe*: it tells the watcher Vapi's clock); the others wait for the
  first poll, which starts :data:`GATHER_SECONDS` later so a triggerer's burst of new triggers is
  in, and lists everything changed in the :data:`BOOTSTRAP_HORIZON` before the newest ``updatedAt``
  seen. A subscriber all of whose calls that listing held takes their state from it and is
  covered; one with a call it did not hold (quiet for longer) reads its calls directly. A trigger
  joining a running watcher does the same with the next poll. While the poll fails, new
  subscribers read directly at once.
* **A deleted call is noticed.** The change feed never mentions a deleted call, so the watcher
  takes a census of its calls now and then (:mod:`airflow_provider_vapi.waiting.census`) and makes the
  triggers of a missing call read it directly, which ends their wait with Vapi's 404.
* **Failure is visible.** A poll that fails marks the watcher unhealthy and wakes every
  subscriber, which falls back to direct polling; the cursor does not move, so the first poll that
  succeeds again delivers everything missed and the subscribers return to waiting. The last
  subscriber leaving stops the watcher.

* **Call-event watchers read the same poll.** A :class:`FeedTap` (``VapiCallEventTrigger``'s way
  in) gets every ended call each successful poll lists, with the stretch of ``updatedAt`` it
  covered; the watcher keeps models of ended calls while a tap is attached, and runs while it
  has a subscriber or a tap. A tap notices a gap itself (a poll whose stretch starts after what it
  has read) and lists it on its own.

Which watcher serves a trigger (one per event loop and connection) is
:mod:`airflow_provider_vapi.waiting.shared_poll`'s business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import AwaitedResults
from airflow_provider_vapi.waiting.census import Census
from airflow_provider_vapi.waiting.cursor import BOOTSTRAP_HORIZON, OVERLAP, Cursor
from airflow_provider_vapi.waiting.direct_reads import DirectReads
from airflow_provider_vapi.waiting.feed import Listing, alist_wanted
from airflow_provider_vapi.waiting.subscription import FeedBatch, FeedTap, Subscription
from airflow_provider_vapi.wire.paging import PagingError
from airflow_provider_vapi.wire.retries import RetryPolicy

log = logging.getLogger(__name__)

#: A new watcher's first poll waits this long (at most one interval) after its probe read, so
#: the triggers a triggerer starts together are subscribed when it lists.
GATHER_SECONDS = 1.0
#: Subscribers woken between two turns of the event loop (each then runs its trigger a little).
WAKE_SLICE = 256
#: After this many failed polls in a row the watcher starts a new run (a fresh cursor).
RESTART_AFTER_FAILURES = 10


class CallWatcher:
    """The shared poller of one connection in one event loop (see the module docstring).

    Obtain subscriptions with :func:`airflow_provider_vapi.waiting.shared_poll.subscribe` (taps with
    ``tap``); the watcher itself is an implementation detail, exposed for tests and benchmarks
    through :func:`airflow_provider_vapi.waiting.shared_poll.active_watchers`.
    """

    def __init__(
        self,
        vapi_conn_id: str,
        loop: asyncio.AbstractEventLoop,
        on_idle: Callable[[CallWatcher], None] | None = None,
    ) -> None:
        self.vapi_conn_id = vapi_conn_id
        self.loop = loop
        #: Called when the last subscriber or tap leaves (the registry forgets the watcher).
        self._on_idle = on_idle
        self._subs: set[Subscription] = set()
        self._taps: set[FeedTap] = set()  # call-event watchers reading every ended call
        self._unchecked = 0  # subscribers whose calls' state is not known yet
        self._probes = 0  # subscribers reading directly to learn Vapi's clock (see module doc)
        self._fresh: set[Subscription] = set()  # the next poll tells their calls' state
        self._gather_until: float | None = None
        self._intervals: Counter[float] = Counter()  # subscribers by the interval they ask for
        self._min_interval = float("inf")
        self._by_call: dict[str, set[Subscription]] = {}
        self._direct = DirectReads(vapi_conn_id)
        self._poll_hook: VapiHook | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        # The current run: its cursor, and when its first cursor was chosen.
        self._cursor = Cursor()
        self._covers_from: float | None = None
        self._healthy = False
        self._failing = False
        self._started_at = time.monotonic()
        self._failures = 0
        #: The newest ``updatedAt`` Vapi has shown this watcher (polls and direct reads alike).
        self._newest_seen: datetime | None = None
        self._census = Census()
        self.polls = 0
        self.failed_polls = 0
        self.delivered = 0

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, call_ids: Iterable[str], interval: float) -> Subscription:
        sub = Subscription(self, call_ids, interval, read_first=self._needs_own_read())
        self._subs.add(sub)
        self._unchecked += 1
        if sub.read_first:
            self._probes += 1
        else:
            self._fresh.add(sub)
        for call_id in sub.call_ids:
            self._by_call.setdefault(call_id, set()).add(sub)
        self._join(interval)
        return sub

    def tap(self, interval: float) -> FeedTap:
        """A reader of every ended call each poll lists (see :class:`FeedTap`)."""
        tap = FeedTap(self, interval)
        self._taps.add(tap)
        self._join(interval)
        return tap

    def untap(self, tap: FeedTap) -> None:
        if tap in self._taps:
            self._taps.discard(tap)
            self._leave(tap.interval)

    def _join(self, interval: float) -> None:
        """A subscriber or tap arrived: run the poll loop, at the shortest interval asked for."""
        if self._task is None or self._task.done():
            self._started_at = time.monotonic()
            self._task = self.loop.create_task(self._run(), name=f"vapi-watcher-{self.vapi_conn_id}")
        self._intervals[interval] += 1
        if interval < self._min_interval:
            self._min_interval = interval
            self._wakeup.set()  # poll at the new, shorter interval from now on

    def _leave(self, interval: float) -> None:
        self._intervals[interval] -= 1
        if not self._intervals[interval]:
            del self._intervals[interval]
            self._min_interval = min(self._intervals, default=float("inf"))
        if not self._subs and not self._taps:
            if self._on_idle is not None:
                self._on_idle(self)
            if self._task is not None and not self._task.done():
                self._task.cancel()

    def unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        self._fresh.discard(sub)
        if sub.checked_at is None:
            self._unchecked -= 1
            self._probes -= sub.read_first
        for call_id in sub.call_ids:
            self.unwatch(sub, call_id)
        self._leave(sub.interval)

    def unwatch(self, sub: Subscription, call_id: str) -> None:
        subs = self._by_call.get(call_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_call[call_id]
                self._cursor.forget(call_id)
                self._census.forget(call_id)

    def _needs_own_read(self) -> bool:
        """Must a new subscriber read its calls itself (see the module docstring's start-up rule)?"""
        if self._healthy:
            return False
        if self._failing:
            return True
        return self._newest_seen is None and self._probes == 0

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subs)

    @property
    def healthy(self) -> bool:
        """The last poll succeeded: subscribers it covers may rely on it."""
        return self._healthy

    @staticmethod
    def poll_timeout(interval: float) -> float:
        """The longest one poll (or census) of a watcher polling every ``interval`` seconds may take."""
        return max(10.0, 5 * interval)

    @property
    def failing(self) -> bool:
        """The last poll failed: subscribers must not wait for the next one."""
        return self._failing

    @property
    def starting(self) -> bool:
        """No poll of this watcher has answered yet, and one is due within a poll's time."""
        age = time.monotonic() - self._started_at
        limit = self.poll_timeout(self._min_interval) + self._min_interval
        return not (self._healthy or self._failing) and age < limit

    def covers(self, sub: Subscription) -> bool:
        """The coverage rule of the module docstring."""
        if not self._healthy or self._covers_from is None or sub.checked_at is None:
            return False
        if sub.checked_at >= self._covers_from:
            return True
        return (
            sub.floor is not None
            and self._cursor.first is not None
            and sub.floor - OVERLAP >= self._cursor.first
        )

    # -- direct reads (direct_reads.py) ---------------------------------------------------------

    async def read_assistant(self, call: Call) -> AwaitedResults:
        return await self._direct.assistant(call)

    async def read_calls(self, call_ids: Sequence[str]) -> list[Call]:
        """``GET /call/{id}`` for each id; what they show tells the watcher Vapi's clock."""
        calls = await self._direct.calls(call_ids)
        self.note_seen(max((c.updated_at for c in calls if c.updated_at), default=None))
        self._census.note(calls, self._by_call)
        return calls

    def note_seen(self, newest: datetime | None) -> None:
        """Vapi showed ``newest``: its clock is known (a new watcher may plan its first poll)."""
        if newest is not None and (self._newest_seen is None or newest > self._newest_seen):
            self._newest_seen = newest
        if self._newest_seen is not None and self._gather_until is None:
            self._gather_until = time.monotonic() + min(GATHER_SECONDS, self._min_interval)
            self._wakeup.set()

    # -- the poll loop --------------------------------------------------------------------------

    def read_done(self, sub: Subscription, first: bool) -> None:
        """A subscriber learnt its calls' state (read or listed): perhaps the run can start now."""
        self._fresh.discard(sub)
        if first:
            self._unchecked -= 1
            self._probes -= sub.read_first
        if self._cursor.value is None and self._unchecked == 0:
            self._wakeup.set()

    def _start_run(self) -> bool:
        """Choose the first cursor of a new run from what Vapi has shown; False if nothing yet."""
        if self._newest_seen is None:
            return False
        start = self._cursor.start(self._newest_seen, [s.floor for s in self._subs])
        self._covers_from = time.monotonic()
        self._failures = 0
        log.debug("Vapi watcher %s: new run from %s", self.vapi_conn_id, start)
        return True

    async def _set_health(self, healthy: bool, *, wake: bool = False) -> None:
        """Healthy: nobody is woken (a trigger falling back re-judges at its next read). Unhealthy
        (or ``wake``: the first failure of a watcher never healthy yet): every subscriber is, a slice
        at a time, to fall back to direct reads."""
        if healthy != self._healthy or wake:
            self._healthy = healthy
            if not healthy:
                for count, sub in enumerate(list(self._subs), 1):
                    sub.notify_health()
                    if count % WAKE_SLICE == 0:
                        await asyncio.sleep(0)

    async def _run(self) -> None:
        try:
            next_at = time.monotonic() + self._min_interval
            while self._subs or self._taps:
                self._wakeup.clear()
                early, delay = self._plan(next_at)
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
                    else:  # a shorter interval, or the subscribers' first reads are in: re-plan
                        next_at = min(next_at, time.monotonic() + self._min_interval)
                        continue
                interval = self._min_interval
                now = time.monotonic()
                next_at = now + interval if early else max(next_at + interval, now)
                if self._cursor.value is None and not self._start_run():
                    continue
                await self._poll_once(interval)
                if self._healthy and self._census.due(interval):
                    await self._take_census(interval)
        finally:
            self._healthy = False
            self._covers_from = None
            for sub in self._subs:
                sub.notify_health()
            for hook in (self._direct.hook, self._poll_hook):
                if hook is not None:
                    try:
                        await hook.aclose()
                    except Exception:  # closing must not mask why the loop ended
                        log.debug("closing the watcher's client failed", exc_info=True)

    def _plan(self, next_at: float) -> tuple[bool, float]:
        """``(early, seconds to wait)``: a new run starts early, once Vapi's clock is known and
        every subscriber's calls are known, or the gathering time is over (module docstring)."""
        now = time.monotonic()
        if self._cursor.value is None and self._newest_seen is not None and self._gather_until is not None:
            ready_at = now if not self._unchecked else self._gather_until
            if ready_at < next_at:
                return True, ready_at - now
        return False, next_at - now

    def _hook_for_polls(self, interval: float) -> VapiHook:
        if self._poll_hook is None:
            # Fail fast: while a poll retries, every subscriber waits; better fall back to direct.
            policy = RetryPolicy(2, base_delay=min(1.0, interval / 4), max_delay=interval, max_total=interval)
            self._poll_hook = VapiHook(self.vapi_conn_id, retry_policy=policy)
        return self._poll_hook

    async def _poll_once(self, interval: float) -> None:
        self.polls += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.poll_timeout(interval)):
                hook, since = self._hook_for_polls(interval), self._cursor.value
                listing = await alist_wanted(
                    hook,
                    {"updatedAtGt": since},
                    self._by_call,
                    known=self._known_state(),
                    ended=bool(self._taps),
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: subscribers poll directly until a poll succeeds
            self.failed_polls += 1
            self._failures += 1
            first_failure, self._failing = not self._failing, True
            log.warning("Polling Vapi for changed calls failed (%s); triggers poll directly.", exc)
            if isinstance(exc, PagingError) or self._failures >= RESTART_AFTER_FAILURES:
                self._cursor.stop()
                self._covers_from = None
            await self._set_health(False, wake=first_failure)
            return
        self._failures = 0
        self._failing = False
        await self._set_health(True)
        await self._dispatch(listing, started)
        if self._taps and since is not None and self._cursor.value is not None:
            batch = FeedBatch(
                tuple(c for c in listing.calls.values() if c.is_ended), since, self._cursor.value
            )
            for tap in list(self._taps):
                tap.deliver(batch)

    def _known_state(self) -> Callable[[str, datetime], bool]:
        """Which listed states need no model: delivered already (the overlap lists them again),
        unless a subscriber waits for this poll to tell it its calls' state."""
        fresh = {call_id for sub in self._fresh for call_id in sub.call_ids}
        cursor = self._cursor

        def known(call_id: str, stamp: datetime) -> bool:
            return call_id not in fresh and cursor.delivered(call_id, stamp)

        return known

    async def _take_census(self, interval: float) -> None:
        """Tell the subscribers of watched calls that vanished from Vapi (see census.py)."""
        missing = await self._census.suspects(self._hook_for_polls(interval), self.poll_timeout(interval))
        for call_id in missing:
            for sub in self._by_call.get(call_id, ()):
                sub.suspect(call_id)

    async def _dispatch(self, listing: Listing, started: float) -> None:
        """Hand each changed call to its subscribers (a slice at a time: a campaign's thousands of
        triggers waking at once would stall the loop), then move the cursor."""
        calls = listing.calls
        newest = listing.newest
        self.note_seen(newest)
        self._census.note(calls.values(), self._by_call)
        by_call = self._by_call
        cursor = self._cursor
        woken = 0
        for call in list(calls.values()):
            stamp = call.updated_at
            if stamp is None:
                continue
            subs = by_call.get(call.id)
            if not subs or cursor.delivered(call.id, stamp):
                continue  # nobody waits for it, or the overlap returned it again
            cursor.deliver(call.id, stamp)
            self.delivered += 1
            for sub in list(subs):
                sub.deliver(call)
            woken += len(subs)
            if woken >= WAKE_SLICE:
                woken = 0
                await asyncio.sleep(0)
        await self._settle_fresh(calls, started)
        cursor.advance(newest, started)

    async def _settle_fresh(self, calls: dict[str, Call], started: float) -> None:
        """Subscribers waiting for a poll to tell their calls' state: this listing held all of a
        subscriber's calls (it takes their state and is covered), or it reads them directly. One
        that joined while this poll was under way waits for the next: the listing may have been
        made before its call existed."""
        fresh, self._fresh = self._fresh, set()
        for count, sub in enumerate(fresh, 1):
            if count % WAKE_SLICE == 0:
                await asyncio.sleep(0)
            if sub.closed or sub.checked_at is not None:
                continue
            if sub.joined_at > started:
                self._fresh.add(sub)
                continue
            listed = [calls.get(call_id) for call_id in sub.call_ids]
            missing = [cid for cid, call in zip(sub.call_ids, listed, strict=True) if call is None]
            if missing:
                for call_id in missing:
                    sub.suspect(call_id)  # not listed: quiet since before the cursor; read it
                continue
            for call in listed:
                sub.deliver(call)  # type: ignore[arg-type]
            sub.listed(started, [c.updated_at for c in listed if c is not None and c.updated_at])


__all__ = ["BOOTSTRAP_HORIZON", "OVERLAP", "CallWatcher", "FeedTap", "Subscription"]
