"""``CallStatusTrigger``: wait in the triggerer until Vapi calls have ended and been analysed.

Every trigger of one triggerer process that uses the same connection shares one poll of Vapi's
change feed (:mod:`airflow_provider_vapi.waiting.watcher`): a thousand waiting tasks cost about one
``GET /call?updatedAtGt=...`` per interval instead of a thousand ``GET /call/{id}``. A starting
trigger takes its calls' state from the poll's next listing (one trigger per watcher reads its
calls to learn Vapi's clock), and reads them directly whenever the poll cannot vouch for them (a
call quiet for longer than the listing reaches back, a failed poll): the result is the same as
polling each call: the same events, the same data, the same deadline.

Fully async, side-effect free (it may run more than once, e.g. after a triggerer restart, and
re-created from its kwargs it simply goes on waiting), bounded by a wall-clock deadline so
``timeout`` / ``execution_timeout`` hold while deferred. It yields exactly one
:class:`~airflow_provider_vapi.waiting.task.WaitEvent`: ``success`` (every call settled), ``timeout`` or
``error``; the task re-reads the calls in ``execute_complete`` so the event stays small whatever the
transcripts weigh. A failed read is judged by the same rule as the hook's retries
(:func:`~airflow_provider_vapi.wire.retries.is_retryable_status`): transient ones keep the wait going.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_vapi.exceptions import (
    VapiAPIError,
    VapiConnectionError,
    VapiError,
    VapiNotFoundError,
    is_transient,
)
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import AwaitedResults
from airflow_provider_vapi.waiting.completion import (
    DEFAULT_ANALYSIS_GRACE_PERIOD,
    WaitEvent,
    WaitStatus,
    is_settled,
)
from airflow_provider_vapi.waiting.shared_poll import subscribe
from airflow_provider_vapi.waiting.subscription import Subscription

# A read that keeps failing for this long is reported as an error instead of waiting forever.
MAX_CONSECUTIVE_FAILURE_SECONDS = 600.0
# While the shared poll vouches for the calls the trigger still wakes this often (no request is
# made): a safety net should the poll ever stop without saying so.
COVERED_RECHECK_FACTOR = 10.0


class _WaitState:
    """What one run of the trigger remembers: little, so a thousand waiting tasks stay cheap."""

    __slots__ = ("awaited", "ended", "failing_since", "last_read", "reads", "unsettled")

    def __init__(self, call_ids: list[str]) -> None:
        #: The calls not settled yet -> ``updatedAt`` of the newest state judged (older ones are
        #: ignored). A call leaves when it settles; the wait is over when none is left.
        self.unsettled: dict[str, datetime | None] = dict.fromkeys(call_ids)
        #: Calls that ended and wait for their analysis: kept to re-judge when the grace runs out.
        self.ended: dict[str, Call] = {}
        #: What each ended call awaits (its assistant's configuration, read once it ended).
        self.awaited: dict[str, AwaitedResults] = {}
        #: ``time.time()`` of the first of the direct reads failing in a row, else ``None``.
        self.failing_since: float | None = None
        #: ``time.monotonic()`` when the last direct read ended (or the wait began, without one).
        self.last_read = 0.0
        #: Direct reads so far (a 404 after one means the call was deleted while we waited).
        self.reads = 0

    def pending(self) -> list[str]:
        return list(self.unsettled)


#: Where Airflow finds the trigger (the face :mod:`airflow_provider_vapi.triggers` re-exports it).
PUBLIC_CLASSPATH = "airflow_provider_vapi.triggers.CallStatusTrigger"


class CallStatusTrigger(BaseTrigger):
    """Wait until every call in ``call_ids`` is settled, or the deadline passes.

    :param call_ids: the call(s) to wait for.
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param poll_interval: seconds between checks. Triggers sharing a connection share one poll,
        run at the shortest interval any of them asks for.
    :param deadline: wall-clock time (``time.time()``, seconds since the epoch) after which a
        ``timeout`` event is sent; ``None`` waits as long as it takes.
    :param analysis_grace_period: seconds after ``endedAt`` to wait for the results its
        configuration asks for (analysis, structured outputs) before settling without them.
    :param results: what every call awaits, when the task knows it (a re-extraction:
        :meth:`AwaitedResults.to_json`); ``None``: each call's assistant says.
    :param end_on_kill: end the calls still going when a user kills the deferred task (mark
        failed/success, clear): a live one through ``monitor.controlUrl``, a scheduled one by
        ``DELETE`` (:meth:`VapiHook.aend_call`). Airflow 3 only: Airflow 2's ``BaseTrigger`` has
        no ``on_kill`` and its triggerer never calls one, so there the calls go on (the task warns
        when it defers).
    """

    def __init__(
        self,
        call_ids: list[str] | str,
        vapi_conn_id: str = VapiHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        analysis_grace_period: float = DEFAULT_ANALYSIS_GRACE_PERIOD,
        end_on_kill: bool = True,
        results: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.call_ids = [call_ids] if isinstance(call_ids, str) else list(call_ids)
        self.vapi_conn_id = vapi_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.analysis_grace_period = float(analysis_grace_period)
        self.end_on_kill = end_on_kill
        self.results = None if results is None else AwaitedResults.from_json(results)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Airflow stores the class path with the deferred task and imports it in the triggerer: the
        # public face's, so that a task deferred before an upgrade that moves this module resumes.
        own = type(self) is CallStatusTrigger
        return (
            PUBLIC_CLASSPATH if own else f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "call_ids": self.call_ids,
                "vapi_conn_id": self.vapi_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "analysis_grace_period": self.analysis_grace_period,
                "end_on_kill": self.end_on_kill,
                "results": None if self.results is None else self.results.to_json(),
            },
        )

    def _event(self, status: WaitStatus, message: str, pending: list[str] | None = None) -> TriggerEvent:
        event = WaitEvent(status, self.call_ids, message, pending or [])
        return TriggerEvent(event.to_event())  # type: ignore[no-untyped-call]

    # -- judging calls ----------------------------------------------------------------------------

    async def _see(self, call: Call, state: _WaitState, sub: Subscription) -> None:
        """Take in a state of one call (read directly or delivered by the shared poll)."""
        if call.id not in state.unsettled:
            return  # settled already, or not ours
        known = state.unsettled[call.id]
        if known is not None and call.updated_at is not None and call.updated_at < known:
            return  # an older state than the one already judged
        state.unsettled[call.id] = call.updated_at
        if call.is_ended and call.id not in state.awaited:
            state.awaited[call.id] = self.results or await sub.awaited(call)
        if is_settled(call, self.analysis_grace_period, state.awaited.get(call.id)):
            self._settle(call.id, state, sub)
        elif call.is_ended:  # ended, its results still to come: judged again when grace runs out
            state.ended[call.id] = call
        else:
            state.ended.pop(call.id, None)

    @staticmethod
    def _settle(call_id: str, state: _WaitState, sub: Subscription) -> None:
        state.unsettled.pop(call_id, None)
        state.ended.pop(call_id, None)
        sub.done_with(call_id)

    def _settle_by_grace(self, state: _WaitState, sub: Subscription) -> float | None:
        """Settle the ended calls whose grace ran out; seconds until the next one may, or None."""
        soonest: float | None = None
        for call_id, call in list(state.ended.items()):
            awaited = state.awaited.get(call_id)
            if is_settled(call, self.analysis_grace_period, awaited):
                self._settle(call_id, state, sub)
                continue
            ended = call.ended_at or call.updated_at
            if awaited is not None and awaited.requested_at is not None:
                ended = max(ended, awaited.requested_at) if ended else awaited.requested_at
            if ended is not None:
                left = ended.timestamp() + self.analysis_grace_period - time.time()
                soonest = left if soonest is None else min(soonest, left)
        return None if soonest is None else max(0.0, soonest) + 0.01

    # -- the wait ---------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = _WaitState(list(dict.fromkeys(self.call_ids)))
        # Subscribe before the first read: a change the shared poll sees from now on reaches us.
        sub = subscribe(self.vapi_conn_id, state.pending(), self.poll_interval)
        # Most triggers take their calls' first state from the shared poll's listing (watcher.py).
        read_due = sub.read_first
        state.last_read = 0.0 if read_due else time.monotonic()
        try:
            while True:
                failed = await self._read_directly(state, sub) if read_due else None
                grace_left = self._settle_by_grace(state, sub)
                final = failed or self._final_event(state)
                if final is not None:
                    yield final
                    return
                await sub.wait(self._next_wait(state, sub, grace_left))
                for call in sub.take().values():
                    await self._see(call, state, sub)
                read_due = self._read_due(state, sub)
        except VapiError as exc:
            yield self._event(WaitStatus.ERROR, str(exc))
        finally:
            sub.close()

    async def _read_directly(self, state: _WaitState, sub: Subscription) -> TriggerEvent | None:
        """``GET /call/{id}`` for the unsettled calls; an error event when the wait cannot go on.

        A failure the hook counts as transient (connection errors, 408, 429, 5xx gateways, a 2xx
        whose body is garbage) keeps the wait going, unless it lasts
        :data:`MAX_CONSECUTIVE_FAILURE_SECONDS`; any other answer (401, 404 ...) cannot change by
        waiting and ends it.
        """
        try:
            for call in await sub.get_calls(state.pending()):
                await self._see(call, state, sub)
            state.failing_since = None
            return None
        except (VapiConnectionError, VapiAPIError) as exc:
            if not is_transient(exc):
                gone = isinstance(exc, VapiNotFoundError) and state.reads > 0
                said = f"Vapi call {exc.call_id} no longer exists: it was deleted while this task waited for it. "
                return self._event(WaitStatus.ERROR, (said if gone else "") + str(exc), state.pending())
            state.failing_since = state.failing_since or time.time()
            self.log.warning("Checking Vapi calls failed, will try again: %s", exc)
            if time.time() - state.failing_since > MAX_CONSECUTIVE_FAILURE_SECONDS:
                message = f"Reading the calls kept failing for {MAX_CONSECUTIVE_FAILURE_SECONDS:.0f}s: {exc}"
                return self._event(WaitStatus.ERROR, message, state.pending())
            return None
        finally:
            # Like a poll loop that sleeps after each check: the next direct read is due an
            # interval after this one *ended*, however long it queued.
            state.last_read = time.monotonic()
            state.reads += 1

    def _final_event(self, state: _WaitState) -> TriggerEvent | None:
        """``success`` when nothing is left to wait for, ``timeout`` past the deadline, else None."""
        if not state.unsettled:
            return self._event(WaitStatus.SUCCESS, f"{len(self.call_ids)} call(s) ended.")
        if self.deadline is not None and time.time() >= self.deadline:
            pending = state.pending()
            message = f"{len(pending)} call(s) still not ended at the deadline."
            return self._event(WaitStatus.TIMEOUT, message, pending)
        return None

    def _next_wait(self, state: _WaitState, sub: Subscription, grace_left: float | None) -> float:
        """Seconds to sleep: until the next direct read is due (long while the shared poll vouches
        for the calls), the deadline, or the next analysis grace running out, the soonest."""
        if sub.covered():
            wait = max(COVERED_RECHECK_FACTOR * self.poll_interval, 60.0)
        else:
            wait = state.last_read + sub.fallback_interval(self.poll_interval) - time.monotonic()
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.time())
        if grace_left is not None:
            wait = min(wait, grace_left)
        return wait

    def _read_due(self, state: _WaitState, sub: Subscription) -> bool:
        """Read directly when the shared poll cannot vouch for the calls and an interval passed, or
        when a call went missing from the census (a deleted call then ends the wait with a 404)."""
        if sub.take_suspects():
            return True  # the census no longer lists one of the calls: has it been deleted?
        due_at = state.last_read + sub.fallback_interval(self.poll_interval) - 0.001
        return not sub.covered() and time.monotonic() >= due_at

    async def on_kill(self) -> None:
        """A user killed the deferred task (Airflow 3 calls this; Airflow 2 never does): end the
        calls still going, a live one through ``monitor.controlUrl``, a scheduled one by DELETE."""
        if not self.end_on_kill:
            return
        hook = VapiHook(self.vapi_conn_id)
        try:
            for call_id in self.call_ids:
                try:
                    call = await asyncio.wait_for(hook.aend_call(call_id), timeout=30)
                    self.log.info("Vapi call %s: %s", call_id, call.ended_reason or call.status)
                except (VapiError, TimeoutError) as exc:
                    self.log.warning("Could not end Vapi call %s: %s", call_id, exc)
        finally:
            await hook.aclose()


__all__ = ["CallStatusTrigger"]
