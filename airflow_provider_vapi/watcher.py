"""One poll of Vapi's change feed per connection and event loop, shared by every waiting trigger.

A campaign defers hundreds or thousands of tasks at once. Polling ``GET /call/{id}`` for each of
them costs N requests per interval; instead, every ``CallStatusTrigger`` of one triggerer process
that uses the same connection subscribes to one :class:`CallWatcher`, which asks Vapi once per
interval what changed (``GET /call?updatedAtGt=<cursor>``, paged by time windows past 1,000) and
hands each changed call to exactly the subscriptions that wait for it.

Correctness rests on four rules:

* **The cursor is Vapi's time, never ours.** It is derived from ``updatedAt`` values Vapi has
  returned, so a skewed triggerer clock cannot make it skip changes. Each poll reaches back
  :data:`OVERLAP` behind the newest ``updatedAt`` seen (rows stamped before they were visible,
  Vapi servers' own skew) and the overlap is de-duplicated by ``(id, updatedAt)``. Once a stamp
  has been known for OVERLAP seconds (measured as a duration, so skew-free) the cursor moves up
  to it, and a quiet account is not listed over and over.
* **A subscriber knows what it may rely on.** It subscribes *before* it reads its calls directly,
  and is *covered* (may stop reading them itself) only when the watcher is healthy and its own
  direct read either started after the watcher's current run chose its first cursor, or returned
  ``updatedAt`` values no older than that cursor. Every later change then has a newer ``updatedAt``
  than the cursor and reaches it.
* **A deleted call is noticed.** The change feed never mentions a deleted call, so the watcher
  takes a census of its calls now and then (:mod:`airflow_provider_vapi.census`) and makes the
  triggers of a missing call read it directly, which ends their wait with Vapi's 404.
* **Failure is visible.** A poll that fails marks the watcher unhealthy and wakes every
  subscriber, which falls back to direct polling; the cursor does not move, so the first poll that
  succeeds again delivers everything missed and the subscribers return to waiting. The last
  subscriber leaving stops the watcher.

Watchers are keyed by event loop as well as connection id: the triggerer runs one loop, tests and
tools create many, and an ``httpx.AsyncClient`` belongs to the loop that created it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from airflow_provider_vapi.census import Census
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.paging import PagingError
from airflow_provider_vapi.results import AwaitedResults, aawaited_for
from airflow_provider_vapi.retries import RetryPolicy
from airflow_provider_vapi.subscription import Subscription

log = logging.getLogger(__name__)

#: How far behind the newest ``updatedAt`` seen each poll starts again.
OVERLAP = timedelta(seconds=5)
#: A new watcher run never starts its cursor further back than this before the newest ``updatedAt``
#: seen: a subscriber whose calls last changed earlier reads them directly once more instead.
BOOTSTRAP_HORIZON = timedelta(minutes=10)
#: Direct reads in flight at once per watcher (the startup check of a thousand triggers).
DIRECT_READ_CONCURRENCY = 8
#: After this many failed polls in a row the watcher starts a new run (a fresh cursor).
RESTART_AFTER_FAILURES = 10


class CallWatcher:
    """The shared poller of one connection in one event loop (see the module docstring).

    Obtain subscriptions with :func:`subscribe`; the watcher itself is an implementation detail,
    exposed for tests and benchmarks through :func:`active_watchers`.
    """

    def __init__(self, vapi_conn_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.vapi_conn_id = vapi_conn_id
        self.loop = loop
        self._subs: set[Subscription] = set()
        self._unchecked = 0  # subscribers yet to finish their first direct read
        self._intervals: Counter[float] = Counter()  # subscribers by the interval they ask for
        self._min_interval = float("inf")
        self._by_call: dict[str, set[Subscription]] = {}
        self._read_hook = VapiHook(vapi_conn_id)
        self._poll_hook: VapiHook | None = None
        self._reads = asyncio.Semaphore(DIRECT_READ_CONCURRENCY)
        self._client_lock = asyncio.Lock()
        self._client_ready = False
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        # The current run: its first cursor, when it was chosen, the cursor now.
        self._first_cursor: datetime | None = None
        self._covers_from: float | None = None
        self._cursor: datetime | None = None
        self._healthy = False
        self._failing = False
        self._started_at = time.monotonic()
        self._failures = 0
        #: The newest ``updatedAt`` Vapi has shown this watcher (polls and direct reads alike).
        self._newest_seen: datetime | None = None
        #: Watched calls delivered with ``updatedAt`` still inside the overlap: de-duplication.
        self._recent: dict[str, datetime] = {}
        #: ``(newest updatedAt of a poll, time.monotonic() it was first seen)``, increasing.
        self._marks: deque[tuple[datetime, float]] = deque()
        self._census = Census()
        self.polls = 0
        self.failed_polls = 0
        self.delivered = 0

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, call_ids: Iterable[str], interval: float) -> Subscription:
        sub = Subscription(self, call_ids, interval)
        self._subs.add(sub)
        self._unchecked += 1
        for call_id in sub.call_ids:
            self._by_call.setdefault(call_id, set()).add(sub)
        if self._task is None or self._task.done():
            self._started_at = time.monotonic()
            self._task = self.loop.create_task(self._run(), name=f"vapi-watcher-{self.vapi_conn_id}")
        self._intervals[interval] += 1
        if interval < self._min_interval:
            self._min_interval = interval
            self._wakeup.set()  # poll at the new, shorter interval from now on
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        if sub.checked_at is None:
            self._unchecked -= 1
        self._intervals[sub.interval] -= 1
        if not self._intervals[sub.interval]:
            del self._intervals[sub.interval]
            self._min_interval = min(self._intervals, default=float("inf"))
        for call_id in sub.call_ids:
            self.unwatch(sub, call_id)
        if not self._subs:
            _forget(self)
            if self._task is not None and not self._task.done():
                self._task.cancel()

    def unwatch(self, sub: Subscription, call_id: str) -> None:
        subs = self._by_call.get(call_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_call[call_id]
                self._recent.pop(call_id, None)
                self._census.forget(call_id)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subs)

    @property
    def healthy(self) -> bool:
        """The last poll succeeded: subscribers it covers may rely on it."""
        return self._healthy

    @property
    def starting(self) -> bool:
        """Just started, no poll has succeeded or failed yet: its first answer is imminent."""
        age = time.monotonic() - self._started_at
        return not (self._healthy or self._failing) and age < 3 * self._min_interval

    def covers(self, sub: Subscription) -> bool:
        """The coverage rule of the module docstring."""
        if not self._healthy or self._covers_from is None or sub.checked_at is None:
            return False
        if sub.checked_at >= self._covers_from:
            return True
        return (
            sub.floor is not None
            and self._first_cursor is not None
            and sub.floor - OVERLAP >= self._first_cursor
        )

    # -- direct reads ---------------------------------------------------------------------------

    async def read_assistant(self, call: Call) -> AwaitedResults:
        """What ``call`` awaits: its assistant is read (once per process and
        :data:`~airflow_provider_vapi.results.ASSISTANT_CACHE_SECONDS`) on the direct-read client."""
        async with self._reads:
            return await aawaited_for(self._read_hook, call)

    async def read_calls(self, call_ids: Sequence[str]) -> list[Call]:
        """``GET /call/{id}`` for each id, at most :data:`DIRECT_READ_CONCURRENCY` in flight."""

        async def read(call_id: str) -> Call:
            async with self._reads:
                return await self._read_hook.aget_call(call_id)

        if not self._client_ready:
            # The hook builds its client on first use; concurrent first uses would build many.
            async with self._client_lock:
                await self._read_hook.aget_conn()
                self._client_ready = True

        calls = (
            [await read(call_ids[0])] if len(call_ids) == 1 else await asyncio.gather(*map(read, call_ids))
        )
        self._note_seen(calls)
        self._census.note(calls, self._by_call)
        return calls

    def _note_seen(self, calls: Iterable[Call]) -> None:
        stamps = [c.updated_at for c in calls if c.updated_at is not None]
        if self._newest_seen is not None:
            stamps.append(self._newest_seen)
        self._newest_seen = max(stamps, default=None)

    # -- the poll loop --------------------------------------------------------------------------

    def read_done(self, first: bool) -> None:
        """A subscriber finished a complete direct read: perhaps the run can start now."""
        if first:
            self._unchecked -= 1
        if self._cursor is None and self._unchecked == 0:
            self._wakeup.set()

    def _start_run(self) -> bool:
        """Choose the first cursor of a new run from what Vapi has shown; False if nothing yet."""
        if self._newest_seen is None:
            return False
        floors = [s.floor for s in self._subs if s.floor is not None]
        start = self._newest_seen - BOOTSTRAP_HORIZON
        if floors:
            start = max(start, min(floors))
        self._first_cursor = self._cursor = start - OVERLAP
        self._covers_from = time.monotonic()
        self._recent.clear()
        self._marks.clear()
        self._failures = 0
        log.debug("Vapi watcher %s: new run from %s", self.vapi_conn_id, self._cursor)
        return True

    def _set_health(self, healthy: bool) -> None:
        if healthy != self._healthy:
            self._healthy = healthy
            for sub in self._subs:
                sub.notify_health()

    async def _run(self) -> None:
        try:
            next_at = time.monotonic() + self._min_interval
            while self._subs:
                self._wakeup.clear()
                # A new run starts as soon as every subscriber has read its calls once: its first
                # cursor then covers them all, and nobody needs to read again.
                early = self._cursor is None and self._newest_seen is not None and not self._unchecked
                delay = next_at - time.monotonic()
                if not early and delay > 0:
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
                if self._cursor is None and not self._start_run():
                    continue
                await self._poll_once(interval)
                if self._healthy and self._census.due(interval):
                    await self._take_census(interval)
        finally:
            self._healthy = False
            self._covers_from = None
            for sub in self._subs:
                sub.notify_health()
            for hook in (self._read_hook, self._poll_hook):
                if hook is not None:
                    try:
                        await hook.aclose()
                    except Exception:  # closing must not mask why the loop ended
                        log.debug("closing the watcher's client failed", exc_info=True)

    def _hook_for_polls(self, interval: float) -> VapiHook:
        if self._poll_hook is None:
            # Fail fast: while a poll retries, every subscriber waits; better fall back to direct.
            policy = RetryPolicy(2, base_delay=min(1.0, interval / 4), max_delay=interval, max_total=interval)
            self._poll_hook = VapiHook(self.vapi_conn_id, retry_policy=policy)
        return self._poll_hook

    async def _poll_once(self, interval: float) -> None:
        assert self._cursor is not None
        self.polls += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(10.0, 5 * interval)):
                calls = await self._hook_for_polls(interval).alist_calls(updatedAtGt=self._cursor)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: subscribers poll directly until a poll succeeds
            self.failed_polls += 1
            self._failures += 1
            self._failing = True
            log.warning("Polling Vapi for changed calls failed (%s); triggers poll directly.", exc)
            self._set_health(False)
            if isinstance(exc, PagingError) or self._failures >= RESTART_AFTER_FAILURES:
                self._cursor = self._first_cursor = self._covers_from = None
            return
        self._failures = 0
        self._failing = False
        self._dispatch(calls, started)
        self._set_health(True)

    async def _take_census(self, interval: float) -> None:
        """Tell the subscribers of watched calls that vanished from Vapi (see census.py)."""
        try:
            async with asyncio.timeout(max(10.0, 5 * interval)):
                missing = await self._census.missing(self._hook_for_polls(interval))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next census tries again; the waits go on meanwhile
            log.warning("Checking that the watched Vapi calls still exist failed (%s).", exc)
            return
        for call_id in missing:
            log.warning("Vapi call %s is no longer listed (deleted?): its waits read it directly.", call_id)
            for sub in self._by_call.get(call_id, ()):
                sub.suspect(call_id)

    def _dispatch(self, calls: list[Call], started: float) -> None:
        self._note_seen(calls)
        recent = self._recent
        by_call = self._by_call
        newest: datetime | None = None
        for call in calls:
            stamp = call.updated_at
            if stamp is None:
                continue
            if newest is None or stamp > newest:
                newest = stamp
            subs = by_call.get(call.id)
            if not subs:
                continue
            if recent.get(call.id) == stamp:
                continue  # already delivered: the overlap returned it again
            recent[call.id] = stamp
            self.delivered += 1
            for sub in subs:
                sub.deliver(call)
        # Only the poll's own answer moves the cursor: a direct read may show a stamp newer than a
        # change this poll missed while it paged (that change's stamp is newer than anything the
        # poll itself returned, see paging.Window.split: the open-ended window is read first).
        if self._cursor is None:
            return
        cursor = self._cursor
        if newest is not None:
            cursor = max(cursor, newest - OVERLAP)
            if not self._marks or newest > self._marks[-1][0]:
                self._marks.append((newest, time.monotonic()))
        # A stamp this poll's answer first showed OVERLAP (our seconds) before the poll started is
        # settled: whatever was stamped before it had time to become visible, and was listed. So
        # a quiet account is not listed again and again for the OVERLAP behind its last change.
        while self._marks and self._marks[0][1] <= started - OVERLAP.total_seconds():
            cursor = max(cursor, self._marks.popleft()[0])
        if cursor != self._cursor:
            self._cursor = cursor
            self._recent = {cid: stamp for cid, stamp in recent.items() if stamp > cursor}


_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, CallWatcher]] = (
    weakref.WeakKeyDictionary()
)


def subscribe(vapi_conn_id: str, call_ids: Iterable[str], interval: float) -> Subscription:
    """Subscribe to the watcher of this connection in the running loop (created on first use)."""
    loop = asyncio.get_running_loop()
    watchers = _WATCHERS.setdefault(loop, {})
    watcher = watchers.get(vapi_conn_id)
    if watcher is None:
        watcher = watchers[vapi_conn_id] = CallWatcher(vapi_conn_id, loop)
    return watcher.subscribe(call_ids, interval)


def _forget(watcher: CallWatcher) -> None:
    watchers = _WATCHERS.get(watcher.loop)
    if watchers is not None and watchers.get(watcher.vapi_conn_id) is watcher:
        del watchers[watcher.vapi_conn_id]
        if not watchers:
            _WATCHERS.pop(watcher.loop, None)


def active_watchers(loop: asyncio.AbstractEventLoop | None = None) -> dict[str, CallWatcher]:
    """The watchers running in ``loop`` (default: the running loop), by connection id."""
    return dict(_WATCHERS.get(loop or asyncio.get_running_loop(), {}))


__all__ = ["OVERLAP", "CallWatcher", "Subscription", "active_watchers", "subscribe"]
