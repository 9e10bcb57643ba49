"""``Subscription``: one trigger's interest in some calls of a shared watcher.

The trigger side of :mod:`airflow_provider_vapi.waiting.watcher` (whose module docstring states the rules
this class keeps): the trigger reads its calls directly through it, waits on it, takes what the
watcher delivered, and asks it whether the watcher covers its calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from airflow_provider_vapi.models import Call

if TYPE_CHECKING:
    from airflow_provider_vapi.results import AwaitedResults


class WatcherApi(Protocol):
    """What a subscription or tap asks of its watcher (:class:`~.watcher.CallWatcher` is the one).
    A protocol, so that the watcher imports this module and not the other way round."""

    @property
    def failing(self) -> bool: ...

    @property
    def starting(self) -> bool: ...

    def poll_timeout(self, interval: float) -> float: ...

    def covers(self, sub: Subscription) -> bool: ...

    async def read_calls(self, call_ids: Sequence[str]) -> list[Call]: ...

    async def read_assistant(self, call: Call) -> AwaitedResults: ...

    def read_done(self, sub: Subscription, first: bool) -> None: ...

    def unwatch(self, sub: Subscription, call_id: str) -> None: ...

    def unsubscribe(self, sub: Subscription) -> None: ...

    def note_seen(self, newest: datetime | None) -> None: ...

    def untap(self, tap: FeedTap) -> None: ...


class Subscription:
    """One trigger's interest in some calls of one watcher.

    The trigger reads its calls with :meth:`get_calls` (which also tells the watcher what it has
    seen), waits with :meth:`wait`, collects what the watcher delivered with :meth:`take`, and asks
    :meth:`covered` whether it may rely on the watcher instead of polling itself.
    """

    __slots__ = (
        "_changed",
        "_inbox",
        "_suspects",
        "_watcher",
        "call_ids",
        "checked_at",
        "closed",
        "floor",
        "interval",
        "joined_at",
        "read_first",
    )

    def __init__(
        self, watcher: WatcherApi, call_ids: Iterable[str], interval: float, *, read_first: bool = True
    ) -> None:
        self._watcher = watcher
        #: Must the trigger read its calls directly before it waits? Otherwise the watcher's next
        #: poll hands it their state (or asks it to read them, by :meth:`suspect`).
        self.read_first = read_first
        self.call_ids = set(call_ids)
        self.interval = interval
        #: ``time.monotonic()`` when it subscribed: only a poll that started later may settle it.
        self.joined_at = time.monotonic()
        self._changed = asyncio.Event()
        self._inbox: dict[str, Call] = {}
        self._suspects: set[str] = set()
        #: ``time.monotonic()`` when the last complete direct read of the calls started (or the poll
        #: whose listing held them all, see :meth:`listed`).
        self.checked_at: float | None = None
        #: The oldest ``updatedAt`` that direct read returned.
        self.floor: datetime | None = None
        self.closed = False

    # -- trigger side ---------------------------------------------------------------------------

    async def get_calls(self, call_ids: Sequence[str]) -> list[Call]:
        """Read the calls directly (``GET /call/{id}``, through the watcher's pooled client).

        Records when the read started and the oldest ``updatedAt`` it saw, which is what
        :meth:`covered` judges by. Raises what the hook raises.
        """
        started = time.monotonic()
        calls = await self._watcher.read_calls(call_ids)
        if self.call_ids <= set(call_ids):
            stamps = [c.updated_at for c in calls if c.updated_at is not None]
            first = self.checked_at is None
            self.checked_at = started
            self.floor = min(stamps) if stamps and len(stamps) == len(calls) else None
            self._watcher.read_done(self, first)
        return calls

    async def awaited(self, call: Call) -> AwaitedResults:
        """The results ``call`` awaits, from its assistant's configuration (read through the
        watcher's client: at most every 5 minutes per assistant for the whole triggerer)."""
        return await self._watcher.read_assistant(call)

    def done_with(self, call_id: str) -> None:
        """This call needs watching no more (it settled): stop delivering it."""
        if call_id in self.call_ids:
            self.call_ids.discard(call_id)
            self._watcher.unwatch(self, call_id)

    def covered(self) -> bool:
        """May the trigger rely on the watcher to hand it every change of its calls?"""
        return self._watcher.covers(self)

    def fallback_interval(self, interval: float) -> float:
        """How long after its last direct read (or its start) an uncovered trigger reads again: its
        own interval; as long as a poll may take while the watcher is starting or its next poll is
        to tell the calls' state (that answer will cover it; a failed poll wakes the trigger at
        once, see :meth:`notify_health`)."""
        watcher = self._watcher
        fresh = self.checked_at is None and not self.read_first and not watcher.failing
        return watcher.poll_timeout(interval) + interval if watcher.starting or fresh else interval

    def take(self) -> dict[str, Call]:
        """The newest delivered state of each call that changed since the last take."""
        inbox, self._inbox = self._inbox, {}
        self._changed.clear()
        return inbox

    async def wait(self, timeout: float | None) -> None:
        """Until the watcher delivers a change or its health changes, or ``timeout`` seconds."""
        if self._changed.is_set() or (timeout is not None and timeout <= 0):
            return
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            pass

    def close(self) -> None:
        """Leave the watcher (it stops when its last subscriber leaves). Safe to call twice."""
        if not self.closed:
            self.closed = True
            self._watcher.unsubscribe(self)

    # -- watcher side ---------------------------------------------------------------------------

    def deliver(self, call: Call) -> None:
        """A new state of one of the calls: keep the newest, wake the trigger."""
        self._inbox[call.id] = call
        self._changed.set()

    def listed(self, started: float, stamps: list[datetime]) -> None:
        """A poll that started at ``started`` listed every one of the calls (and delivered them):
        as good as a direct read started then (see :meth:`get_calls`)."""
        first = self.checked_at is None
        self.checked_at = started
        self.floor = min(stamps) if len(stamps) == len(self.call_ids) and stamps else None
        self._watcher.read_done(self, first)

    def suspect(self, call_id: str) -> None:
        """The watcher's census no longer lists this call (deleted?): the trigger must read it."""
        self._suspects.add(call_id)
        self._changed.set()

    def take_suspects(self) -> set[str]:
        """The calls the census found missing since the last take (see :meth:`suspect`)."""
        suspects, self._suspects = self._suspects, set()
        return suspects

    def notify_health(self) -> None:
        """The watcher's poll failed (or it stopped): wake the trigger to re-judge :meth:`covered`."""
        self._changed.set()


@dataclass(frozen=True)
class FeedBatch:
    """What one successful poll of the shared watcher listed, for a :class:`FeedTap`: the ended
    calls, and the stretch of Vapi's ``updatedAt`` it covered: everything changed after ``since``
    was listed, and every later poll starts after ``until`` (the watcher's cursor)."""

    calls: tuple[Call, ...]
    since: datetime
    until: datetime


class FeedTap:
    """A reader of every ended call the shared watcher lists (the call-event watchers' way in).

    Unlike a :class:`Subscription` it waits for no call in particular: each successful poll hands
    it a :class:`FeedBatch`. It is the tap's job to notice a gap (a batch whose ``since`` is later
    than what it has read, after a failure made the watcher start a new run) and to list the gap
    itself.
    """

    def __init__(self, watcher: WatcherApi, interval: float) -> None:
        self._watcher = watcher
        self.interval = interval
        self._batches: asyncio.Queue[FeedBatch] = asyncio.Queue()
        self.closed = False

    def deliver(self, batch: FeedBatch) -> None:
        self._batches.put_nowait(batch)

    async def next(self, timeout: float | None) -> FeedBatch | None:
        """The next batch, or ``None`` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                return await self._batches.get()
        except TimeoutError:
            return None

    def seen(self, newest: datetime | None) -> None:
        """The tap's own listing showed Vapi's clock: the watcher may plan its first poll."""
        self._watcher.note_seen(newest)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._watcher.untap(self)
