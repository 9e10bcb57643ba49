"""The call state machine: every call's timeline, the concurrency slots and the analysis lag.

Every call has at most one pending event (``start``, ``ring``, ``answer``, ``end``, ``analysis``)
on a heap ordered by time; beside it, any number of pending structured-output jobs
(:mod:`.output_results`, heap entries of kind ``outputs``), each applied at its own time. Before
answering any request the engine applies every event that is due (:meth:`CallBook.advance`), in
time order and with the event's own timestamp, so:

* status and timestamps are exact whenever they are read (nothing depends on a background tick);
* ``updatedAt`` moves exactly when something changes, and never to a time a reader has already
  been shown, so ``updatedAtGt`` polling cannot miss a change;
* a call ending at ``T`` frees its concurrency slot at ``T`` and the next waiting call is admitted
  at ``T`` (not when someone happens to look); then :attr:`CallBook.on_end` hears of it, at ``T``
  too (a campaign dials its next contact then: :mod:`.campaigns`).

All durations are fixed when a call is created (``speed`` divides them), so changing the speed at
run time affects new calls only. Times are integer milliseconds since the epoch, as Vapi's wire
format has millisecond precision, on Vapi's clock (:meth:`.engine.Engine.now`, which a clock
offset can set apart from the wall clock: :meth:`CallBook.shift`). Nothing here reads the clock or
takes a lock: the :class:`~.engine.Engine` passes ``now`` in and holds its lock around every call.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from . import content, output_results
from .config import EngineConfig
from .outcomes import CONCURRENCY_LIMIT_MESSAGE, CONCURRENCY_LIMIT_REACHED, VOICEMAIL, outcome_for
from .recordings import Presigner, fill
from .records import CallRecord, WireCache, iso


class CallBook:
    """Every call, its pending event, the concurrency slots and the queue waiting for one."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.calls: dict[str, CallRecord] = {}
        self._wire = WireCache()
        self.presigner = Presigner()
        self._heap: list[tuple[int, int, str, str]] = []
        self._waiters: deque[str] = deque()
        self._occupied: set[str] = set()
        self._dirty: set[str] = set()
        self._seq = 0
        #: Told ``(call, at)`` when a call ends or is deleted before it ended.
        self.on_end: Callable[[CallRecord, int], None] | None = None

    # -- bookkeeping ----------------------------------------------------------------------------

    def ms(self, seconds: float) -> int:
        """A duration of ``seconds`` at the current speed, in milliseconds (at least 1)."""
        return max(int(seconds * 1000 / self.config.speed), 1)

    def next_seq(self) -> int:
        """The creation-order number of the next call."""
        self._seq += 1
        return self._seq

    def add(self, rec: CallRecord) -> None:
        """Record a new call (not yet on its way: see :meth:`end` and :meth:`enter_queue`)."""
        self.calls[rec.id] = rec
        self._dirty.add(rec.id)

    def json(self, rec: CallRecord, now: int) -> bytes:
        """The serialized ``Call`` (cached until the call changes), with presigned recording URLs
        valid from ``now`` for the configured TTL (real seconds) when it has a recording."""
        data = self._wire.get(rec)
        if rec.has_recording:
            expires = now + int(self.config.presigned_url_ttl_s * 1000)
            data = fill(data, self.presigner.fields(rec.base_url, rec.id, expires, iso(expires)))
        return data

    def presigned_url(self, rec: CallRecord, kind: str, base: str, now: int) -> str:
        """A fresh presigned URL of the recording ``kind`` of ``rec``, valid from ``now``."""
        return self.presigner.url(base, rec.id, kind, now + int(self.config.presigned_url_ttl_s * 1000))

    def forget_json(self, call_id: str) -> None:
        """Drop the cached ``Call`` of ``call_id`` (changed behind the state machine's back)."""
        self._wire.forget(call_id)

    def take_dirty(self) -> list[CallRecord]:
        """The calls changed since the last time this was asked (what persistence must save)."""
        changed = [self.calls[cid] for cid in self._dirty if cid in self.calls]
        self._dirty.clear()
        return changed

    def free_slots(self) -> int:
        """How many more calls the concurrency limit lets in now."""
        return max(self.config.concurrency_limit - len(self._occupied), 0)

    def touch(self, rec: CallRecord, at: int) -> None:
        """Note that ``rec`` changed at ``at``."""
        rec.updated_ms = at
        self._wire.forget(rec.id)
        self._dirty.add(rec.id)

    def schedule(self, rec: CallRecord, at: int, kind: str) -> None:
        """Make ``kind`` at ``at`` the one pending event of ``rec``."""
        rec.pending_ms, rec.pending_kind = at, kind
        heapq.heappush(self._heap, (at, rec.seq, rec.id, kind))

    # -- events ---------------------------------------------------------------------------------

    def advance(self, now: int) -> None:
        """Apply every event due by ``now``, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, call_id, kind = heapq.heappop(heap)
            rec = self.calls.get(call_id)
            if rec is not None and kind == output_results.OUTPUTS_EVENT:
                self._write_outputs(rec, at)
                continue
            if rec is None or rec.pending_ms != at or rec.pending_kind != kind:
                continue
            rec.pending_ms = rec.pending_kind = None
            self._fire(rec, kind, at)

    def _fire(self, rec: CallRecord, kind: str, at: int) -> None:
        outcome = outcome_for(rec.customer.get("number"))
        if kind == "start":
            rec.status = "queued"
            self.touch(rec, at)
            self.enter_queue(rec, at)
        elif kind == "ring":
            rec.status = "ringing"
            rec.started_ms = at
            self.touch(rec, at)
            self.schedule(rec, at + rec.ring_ms, "answer" if outcome.answers else "end")
        elif kind == "answer":
            rec.status = "in-progress"
            rec.answered_ms = at
            self.touch(rec, at)
            self.schedule(rec, at + rec.talk_ms, "end")
        elif kind == "end":
            self.end(rec, at, outcome.ended_reason, outcome.ended_message)
        elif kind == "analysis":
            self._add_analysis(rec, at)

    # -- concurrency ----------------------------------------------------------------------------

    def enter_queue(self, rec: CallRecord, at: int) -> bool:
        """Take a slot or wait for one (``queue``), or end at once (``reject``). True if blocked."""
        full = len(self._occupied) >= self.config.concurrency_limit
        if self.config.concurrency_mode == "reject":
            if full:
                self.end(rec, at, CONCURRENCY_LIMIT_REACHED, CONCURRENCY_LIMIT_MESSAGE)
                return True
            self._admit(rec, at)
            return False
        if full or self._waiters:
            rec.waiting_since_ms = at
            self._waiters.append(rec.id)
            self.admit_waiters(at)
            return rec.id in self._waiters
        self._admit(rec, at)
        return False

    def _admit(self, rec: CallRecord, at: int) -> None:
        rec.admitted = True
        rec.waiting_since_ms = None
        self._occupied.add(rec.id)
        self._dirty.add(rec.id)
        self.schedule(rec, at + rec.queue_ms, "ring")

    def admit_waiters(self, at: int) -> None:
        """Give free slots to waiting calls, first come first served."""
        while self._waiters and len(self._occupied) < self.config.concurrency_limit:
            rec = self.calls.get(self._waiters.popleft())
            if rec is not None and rec.status == "queued" and not rec.admitted:
                self._admit(rec, at)

    def _release(self, rec: CallRecord, at: int) -> None:
        if rec.id in self._occupied:
            self._occupied.discard(rec.id)
        elif rec.id in self._waiters:
            self._waiters.remove(rec.id)
        self.admit_waiters(at)

    # -- the end of a call ----------------------------------------------------------------------

    def end(self, rec: CallRecord, at: int, reason: str, message: str | None) -> None:
        """End ``rec`` at ``at`` (no-op when it already has): transcript, costs, its slot freed and
        the analysis scheduled."""
        if rec.status == "ended":
            return
        rec.status = "ended"
        rec.ended_ms = at
        rec.ended_reason = reason
        rec.ended_message = message
        rec.pending_ms = rec.pending_kind = None
        if rec.answered_ms is not None:
            outcome = outcome_for(rec.customer.get("number"))
            first = rec.assistant.get("firstMessage")
            rec.messages = content.build_messages(
                outcome.messages,
                outcome.ended_reason == VOICEMAIL,
                content.render(first, rec.variables) if isinstance(first, str) else None,
                rec.answered_ms,
                at,
            )
        if rec.started_ms is not None:
            rec.costs, rec.cost_breakdown = content.costs(rec.started_ms, at, rec.messages, rec.assistant)
        self._plan_outputs(rec, at)
        self.touch(rec, at)
        self._release(rec, at)
        plan = rec.assistant.get("analysisPlan") or {}
        threshold = plan.get("minMessagesThreshold", 2)
        if rec.messages and len(rec.messages) >= threshold:
            self.schedule(rec, at + rec.analysis_ms, "analysis")
        if self.on_end is not None:
            self.on_end(rec, at)

    def _add_analysis(self, rec: CallRecord, at: int) -> None:
        plan = rec.assistant.get("analysisPlan") or {}
        assert rec.ended_reason is not None
        rec.analysis = content.analysis(plan, rec.seed, rec.customer, rec.variables, rec.ended_reason)
        self.charge(rec, *content.analysis_costs(rec.analysis))
        self.touch(rec, at)

    @staticmethod
    def charge(rec: CallRecord, items: list[dict[str, Any]], breakdown: dict[str, Any], total: float) -> None:
        """Add analysis cost ``items`` to ``costs``, ``breakdown`` to ``analysisCostBreakdown``."""
        rec.costs = [*rec.costs, *items]
        if rec.cost_breakdown is not None:
            merged = {**(rec.cost_breakdown.get("analysisCostBreakdown") or {}), **breakdown}
            rec.cost_breakdown = {
                **rec.cost_breakdown,
                "analysisCostBreakdown": merged,
                "total": round(rec.cost_breakdown["total"] + total, 4),
            }

    # -- structured outputs ---------------------------------------------------------------------

    def _plan_outputs(self, rec: CallRecord, at: int) -> None:
        """At the end of ``rec``: write its skipped structured outputs now, plan the others."""
        if not rec.output_plan:
            return
        results, skipped = output_results.evaluate(rec, rec.output_plan)
        if skipped:
            output_results.write(rec, {}, skipped, at)
        if results:
            self.queue_outputs(rec, at + rec.outputs_ms, results, {}, billed=True)

    def queue_outputs(
        self, rec: CallRecord, at: int, results: dict[str, Any], skipped: dict[str, Any], billed: bool
    ) -> None:
        """Write ``results``/``skipped`` on ``rec`` at ``at`` (``billed``: charge each result)."""
        output_results.add_job(rec, at, results, skipped, billed)
        heapq.heappush(self._heap, (at, rec.seq, rec.id, output_results.OUTPUTS_EVENT))
        self._dirty.add(rec.id)

    def _write_outputs(self, rec: CallRecord, at: int) -> None:
        for job in output_results.take_due(rec, at):
            output_results.write(rec, job["results"], job["skipped"], job["at"])
            if job["billed"]:
                self.charge(rec, *output_results.output_costs(job["results"]))
            self.touch(rec, job["at"])

    # -- whole-book operations ------------------------------------------------------------------

    def remove(self, rec: CallRecord, at: int) -> None:
        """Forget ``rec`` entirely (``DELETE /call``), freeing its slot or its place in the queue."""
        del self.calls[rec.id]
        self._wire.forget(rec.id)
        self._release(rec, at)
        if rec.status != "ended" and self.on_end is not None:
            self.on_end(rec, at)

    def restore(self, records: Iterable[CallRecord]) -> None:
        """Rebuild slots, queue and pending events from saved records (given oldest first)."""
        for rec in records:
            self.calls[rec.id] = rec
            self._seq = max(self._seq, rec.seq)
            if rec.status == "ended":
                pass
            elif rec.admitted:
                self._occupied.add(rec.id)
            elif rec.status == "queued":
                self._waiters.append(rec.id)
            if rec.pending_ms is not None and rec.pending_kind is not None:
                heapq.heappush(self._heap, (rec.pending_ms, rec.seq, rec.id, rec.pending_kind))
            for job in rec.output_jobs:
                heapq.heappush(self._heap, (job["at"], rec.seq, rec.id, output_results.OUTPUTS_EVENT))

    def shift(self, delta: int) -> None:
        """Vapi's clock moved ``delta`` ms (a new clock offset): move every pending step of a
        call's own timeline (``ring``, ``answer``, ``end``, ``analysis``, structured outputs) with
        it, so each still happens after the same real time. A ``start`` (the call's
        ``schedulePlan.earliestAt``) stays: it is a time on Vapi's clock, not a duration."""
        self._heap = [
            (at if kind == "start" else at + delta, seq, call_id, kind)
            for at, seq, call_id, kind in self._heap
        ]
        heapq.heapify(self._heap)
        for rec in self.calls.values():
            moved = False
            if rec.pending_ms is not None and rec.pending_kind != "start":
                rec.pending_ms += delta
                moved = True
            if rec.output_jobs:
                rec.output_jobs = [{**job, "at": job["at"] + delta} for job in rec.output_jobs]
                moved = True
            if moved:
                self._dirty.add(rec.id)

    def clear(self) -> None:
        """Forget every call (the admin reset)."""
        self.calls.clear()
        self._wire.clear()
        self._heap.clear()
        self._waiters.clear()
        self._occupied.clear()
        self._dirty.clear()
