"""The ledger of one call-event watcher: which ended calls it has delivered, kept so that a
restart neither loses a call nor delivers one twice.

It is pure bookkeeping (no I/O, no clock of ours): :mod:`.stream` feeds it the calls Vapi lists
and tells it which events Airflow has stored; it answers what to send and what to write to the
asset state store. The rules, in Vapi's time:

* **The mark.** Every call is placed by its ``endedAt`` (which never changes once a call ended).
  A call that ended at or before the *mark* is behind it: it was delivered, or it ended before the
  watcher first looked, and it is never sent again, however often it is updated later.
* **Above the mark**, the ledger keeps the ids of the calls whose events Airflow has stored
  (``done``): those are not sent again either. Calls sent but not yet stored (``sent``) and calls
  that ended but whose results are still to come (``waiting``) hold the mark back: after a
  restart they are listed and judged again.
* **The mark moves** to just before the oldest call sent, waiting, or possibly not yet seen: a
  call's ended state shows in the change feed within :data:`LATE_ENDING` of its ``endedAt``, so
  the mark stays that far behind the point up to which the feed has been read (``feed``).
  ``done`` keeps only the ids above the mark: it holds the last few minutes of calls, not all.
* **What is stored** is the mark, ``done``, and the ids ``sent`` (written *before* their events
  leave): :meth:`Ledger.state`. After a restart a call that was sent but not recorded as stored is
  judged again and sent again: Airflow may or may not have stored its first event (it
  acknowledges a stored event about a second later, and gives no other way to ask), so the second
  event is flagged ``possibleRepeat`` (:meth:`Ledger.maybe_delivered`). ``waiting`` is not stored:
  those calls are simply judged again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from airflow_provider_vapi.models import Call
from airflow_provider_vapi.wire.paging import iso, parse_ts_or_none

#: A call's ended state reaches the change feed at most this long after its ``endedAt``.
LATE_ENDING = timedelta(minutes=5)
#: The format of :meth:`Ledger.state` (the asset state store's value).
STATE_VERSION = 1
_TICK = timedelta(milliseconds=1)

Verdict = Literal["behind", "known", "send", "wait"]


def ended_key(call: Call) -> datetime | None:
    """Where a call sits on the ledger: its ``endedAt`` (``updatedAt`` for the rare ended call
    Vapi gives no ``endedAt``)."""
    return call.ended_at or call.updated_at


@dataclass
class Ledger:
    """See the module docstring. ``mark`` is ``None`` until the watcher's first look placed it."""

    mark: datetime | None = None
    done: dict[str, datetime] = field(default_factory=dict)
    sent: dict[str, Call] = field(default_factory=dict)
    waiting: dict[str, Call] = field(default_factory=dict)
    #: Every change with ``updatedAt`` at or before this has been listed (``None``: not yet).
    feed: datetime | None = None
    #: Calls sent before a restart and not recorded as stored: Airflow may have their event.
    uncertain: dict[str, datetime] = field(default_factory=dict)

    # -- the stored state -----------------------------------------------------------------------

    @classmethod
    def from_state(cls, states: Iterable[Mapping[str, Any] | None]) -> Ledger:
        """The ledger stored for the watcher's asset(s). With several assets (one trigger behind
        two ``AssetWatcher`` objects) the earliest mark wins and the ``done`` sets are merged: a
        newly added asset's missing state can cause a repeat of nothing it has already had."""
        ledger = cls()
        marks: list[datetime] = []
        found = False
        for state in states:
            if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
                continue
            found = True
            mark = parse_ts_or_none(state.get("mark"))
            if mark is not None:
                marks.append(mark)
            for name, into in (("done", ledger.done), ("sending", ledger.uncertain)):
                for call_id, stamp in dict(state.get(name) or {}).items():
                    when = parse_ts_or_none(stamp)
                    if when is not None:
                        into[str(call_id)] = when
        if found and marks:
            ledger.mark = min(marks)
            ledger.done = {k: v for k, v in ledger.done.items() if v > ledger.mark}
            ledger.uncertain = {
                k: v for k, v in ledger.uncertain.items() if v > ledger.mark and k not in ledger.done
            }
        else:
            ledger.done.clear()
            ledger.uncertain.clear()
        return ledger

    def state(self) -> dict[str, Any]:
        """What the asset state store keeps (JSON): the mark and the ids delivered above it."""
        sending = {
            call_id: key for call_id, call in self.sent.items() if (key := ended_key(call)) is not None
        }
        sending.update(self.uncertain)
        return {
            "version": STATE_VERSION,
            "mark": None if self.mark is None else iso(self.mark),
            "done": {call_id: iso(stamp) for call_id, stamp in sorted(self.done.items())},
            "sending": {call_id: iso(stamp) for call_id, stamp in sorted(sending.items())},
        }

    def maybe_delivered(self, call_id: str) -> bool:
        """Was this call sent before a restart without being recorded as stored (its event now may
        be its second)?"""
        return call_id in self.uncertain

    # -- judging calls --------------------------------------------------------------------------

    def place_of(self, call: Call) -> Verdict | None:
        """``behind`` the mark, ``known`` (stored or sent), else ``None``: the call is to be judged."""
        key = ended_key(call)
        if self.mark is None or key is None or key <= self.mark:
            return "behind"
        if call.id in self.done or call.id in self.sent:
            return "known"
        return None

    def judge(self, call: Call, settled: bool) -> Verdict:
        """What to do with an ended call the watcher's filters match: ``send`` it (and it is
        recorded as sent), ``wait`` for its results, or nothing (``behind`` the mark, ``known``)."""
        place = self.place_of(call)
        if place is not None:
            return place
        if not settled:
            self.waiting[call.id] = call
            return "wait"
        self.waiting.pop(call.id, None)
        self.sent[call.id] = call
        return "send"

    def stored(self, call_ids: Iterable[str]) -> None:
        """Airflow stored the events of these calls."""
        for call_id in call_ids:
            call = self.sent.pop(call_id, None)
            key = None if call is None else ended_key(call)
            if key is not None:
                self.done[call_id] = key
                self.uncertain.pop(call_id, None)

    def unsent(self, call_ids: Iterable[str]) -> None:
        """These events were not stored (Airflow gave up on them): they wait to be sent again."""
        for call_id in call_ids:
            call = self.sent.pop(call_id, None)
            if call is not None:
                self.waiting[call_id] = call

    def fed(self, point: datetime) -> None:
        """The change feed has been read up to ``point`` (``updatedAt``, Vapi's clock)."""
        if self.feed is None or point > self.feed:
            self.feed = point

    def advance(self) -> bool:
        """Move the mark as far as the rules allow; True when it moved (the state must be written)."""
        if self.feed is None or self.mark is None:
            return False
        limit = self.feed - LATE_ENDING
        calls = [*self.sent.values(), *self.waiting.values()]
        held = [key for call in calls if (key := ended_key(call)) is not None]
        if held:
            limit = min(limit, min(held) - _TICK)
        if limit <= self.mark:
            return False
        self.mark = limit
        self.done = {k: v for k, v in self.done.items() if v > limit}
        self.uncertain = {k: v for k, v in self.uncertain.items() if v > limit}
        return True

    def place(self, mark: datetime) -> None:
        """A first run: calls that ended at or before ``mark`` are before the watcher's time."""
        if self.mark is None:
            self.mark = mark


__all__ = ["LATE_ENDING", "STATE_VERSION", "Ledger", "Verdict", "ended_key"]
