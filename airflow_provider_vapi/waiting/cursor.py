"""Where the shared poll's next ``GET /call?updatedAtGt=`` starts, and which states it has delivered.

The cursor is **Vapi's time, never ours**: it is derived from ``updatedAt`` values Vapi has
returned, so a skewed triggerer clock cannot make it skip changes. Each poll reaches back
:data:`OVERLAP` behind the newest ``updatedAt`` seen (rows stamped before they were visible, Vapi
servers' own skew) and the overlap is de-duplicated by ``(id, updatedAt)``. Once a stamp has been
known for OVERLAP seconds (measured as a duration, so skew-free) the cursor moves up to it, and a
quiet account is not listed over and over.

A *run* is one stretch of polls from a first cursor (:meth:`Cursor.start`); a new run starts when
the watcher starts, and after a failure it cannot page past (:mod:`airflow_provider_vapi.waiting.watcher`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

#: How far behind the newest ``updatedAt`` seen each poll starts again.
OVERLAP = timedelta(seconds=5)
#: A new run never starts its cursor further back than this before the newest ``updatedAt`` seen:
#: a subscriber whose calls last changed earlier reads them directly instead.
BOOTSTRAP_HORIZON = timedelta(minutes=10)


class Cursor:
    """The current run's cursor (``value``, ``None`` between runs) and its first value."""

    __slots__ = ("_marks", "_recent", "first", "value")

    def __init__(self) -> None:
        self.value: datetime | None = None
        self.first: datetime | None = None
        #: Watched calls delivered with ``updatedAt`` still inside the overlap: de-duplication.
        self._recent: dict[str, datetime] = {}
        #: ``(newest updatedAt of a poll, time.monotonic() it was first seen)``, increasing.
        self._marks: deque[tuple[datetime, float]] = deque()

    def start(self, newest_seen: datetime, floors: Iterable[datetime | None]) -> datetime:
        """Begin a run: from :data:`BOOTSTRAP_HORIZON` before ``newest_seen``, or from the oldest
        of the subscribers' ``floors`` when every one of them is known (none needs anything older)."""
        known = list(floors)
        start = newest_seen - BOOTSTRAP_HORIZON
        if known and None not in known:
            start = max(start, min(f for f in known if f is not None))
        self.first = self.value = start - OVERLAP
        self._recent.clear()
        self._marks.clear()
        return self.value

    def stop(self) -> None:
        """End the run: the next poll starts a new one."""
        self.value = self.first = None

    def delivered(self, call_id: str, stamp: datetime) -> bool:
        """Was this state of the call handed on already (the overlap lists it again)?"""
        return self._recent.get(call_id) == stamp

    def deliver(self, call_id: str, stamp: datetime) -> None:
        self._recent[call_id] = stamp

    def forget(self, call_id: str) -> None:
        """Nobody watches the call any more."""
        self._recent.pop(call_id, None)

    def advance(self, newest: datetime | None, started: float) -> None:
        """After a poll that started at ``started`` (``time.monotonic()``) and saw ``newest``.

        Only the poll's own answer moves the cursor: a direct read may show a stamp newer than a
        change this poll missed while it paged (that change's stamp is newer than anything the
        poll itself returned, see paging.Window.split: the open-ended window is read first).
        """
        if self.value is None:
            return
        cursor = self.value
        if newest is not None:
            cursor = max(cursor, newest - OVERLAP)
            if not self._marks or newest > self._marks[-1][0]:
                self._marks.append((newest, time.monotonic()))
        # A stamp this poll's answer first showed OVERLAP (our seconds) before the poll started is
        # settled: whatever was stamped before it had time to become visible, and was listed.
        while self._marks and self._marks[0][1] <= started - OVERLAP.total_seconds():
            cursor = max(cursor, self._marks.popleft()[0])
        if cursor != self.value:
            self.value = cursor
            self._recent = {cid: stamp for cid, stamp in self._recent.items() if stamp > cursor}


__all__ = ["BOOTSTRAP_HORIZON", "OVERLAP", "Cursor"]
