"""``CallStatusTrigger``: wait in the triggerer until Vapi calls have ended and been analysed.

Every trigger of one triggerer process that uses the same connection shares one poll of Vapi's
change feed (:mod:`airflow_provider_vapi.watcher`): a thousand waiting tasks cost about one
``GET /call?updatedAtGt=...`` per interval instead of a thousand ``GET /call/{id}``. A trigger
still reads its calls directly when it starts (they may already be over) and whenever the shared
poll cannot vouch for them (it failed, or it started after the trigger last looked), so the result
is the same as polling each call: the same events, the same data, the same deadline.

Fully async, side-effect free (it may run more than once, e.g. after a triggerer restart, and
re-created from its kwargs it simply goes on waiting), bounded by a wall-clock deadline so
``timeout`` / ``execution_timeout`` hold while deferred. It yields exactly one event: ``success``
(every call settled), ``timeout`` or ``error``; the task re-reads the calls in ``execute_complete``
so the event stays small whatever the transcripts weigh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_vapi.completion import DEFAULT_ANALYSIS_GRACE_PERIOD, is_settled
from airflow_provider_vapi.exceptions import VapiAPIError, VapiConnectionError, VapiError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.watcher import Subscription, subscribe

# A read that keeps failing for this long is reported as an error instead of waiting forever.
MAX_CONSECUTIVE_FAILURE_SECONDS = 600.0
# While the shared poll vouches for the calls the trigger still wakes this often (no request is
# made): a safety net should the poll ever stop without saying so.
COVERED_RECHECK_FACTOR = 10.0


class _Pending:
    """What the trigger remembers of its unsettled calls: little, so a thousand stay cheap."""

    __slots__ = ("ended", "seen")

    def __init__(self) -> None:
        #: ``call_id -> updatedAt`` of the newest state seen (stale deliveries are ignored).
        self.seen: dict[str, datetime | None] = {}
        #: Calls that ended and wait for their analysis: kept to re-judge when the grace runs out.
        self.ended: dict[str, Call] = {}


class CallStatusTrigger(BaseTrigger):
    """Wait until every call in ``call_ids`` is settled, or the deadline passes.

    :param call_ids: the call(s) to wait for.
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param poll_interval: seconds between checks. Triggers sharing a connection share one poll,
        run at the shortest interval any of them asks for.
    :param deadline: wall-clock time (``time.time()``, seconds since the epoch) after which a
        ``timeout`` event is sent; ``None`` waits as long as it takes.
    :param analysis_grace_period: seconds after ``endedAt`` to wait for the analysis.
    :param end_on_kill: end the live calls (through ``monitor.controlUrl``) when a user kills the
        deferred task (mark failed/success, clear).
    """

    def __init__(
        self,
        call_ids: list[str] | str,
        vapi_conn_id: str = VapiHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        analysis_grace_period: float = DEFAULT_ANALYSIS_GRACE_PERIOD,
        end_on_kill: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.call_ids = [call_ids] if isinstance(call_ids, str) else list(call_ids)
        self.vapi_conn_id = vapi_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.analysis_grace_period = float(analysis_grace_period)
        self.end_on_kill = end_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "call_ids": self.call_ids,
                "vapi_conn_id": self.vapi_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "analysis_grace_period": self.analysis_grace_period,
                "end_on_kill": self.end_on_kill,
            },
        )

    def _event(self, status: str, message: str, pending: list[str] | None = None) -> TriggerEvent:
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {"status": status, "message": message, "call_ids": self.call_ids, "pending": pending or []}
        )

    # -- judging calls ----------------------------------------------------------------------------

    def _see(self, call: Call, state: _Pending, sub: Subscription) -> None:
        """Take in a state of one call (read directly or delivered by the shared poll)."""
        if call.id not in state.seen:
            return  # settled already, or not ours
        known = state.seen[call.id]
        if known is not None and call.updated_at is not None and call.updated_at < known:
            return  # an older state than the one already judged
        state.seen[call.id] = call.updated_at
        if is_settled(call, self.analysis_grace_period):
            del state.seen[call.id]
            state.ended.pop(call.id, None)
            sub.done_with(call.id)
        elif call.is_ended:  # ended, its analysis still to come: judged again when grace runs out
            state.ended[call.id] = call
        else:
            state.ended.pop(call.id, None)

    def _settle_by_grace(self, state: _Pending, sub: Subscription) -> float | None:
        """Settle the ended calls whose grace ran out; seconds until the next one may, or None."""
        soonest: float | None = None
        for call_id, call in list(state.ended.items()):
            if is_settled(call, self.analysis_grace_period):
                del state.ended[call_id]
                state.seen.pop(call_id, None)
                sub.done_with(call_id)
                continue
            ended = call.ended_at or call.updated_at
            if ended is not None:
                left = ended.timestamp() + self.analysis_grace_period - time.time()
                soonest = left if soonest is None else min(soonest, left)
        return None if soonest is None else max(0.0, soonest) + 0.01

    # -- the wait ---------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        call_ids = list(dict.fromkeys(self.call_ids))
        state = _Pending()
        state.seen = dict.fromkeys(call_ids)
        # Subscribe before the first read: a change the shared poll sees from now on reaches us.
        sub = subscribe(self.vapi_conn_id, call_ids, self.poll_interval)
        failing_since: float | None = None
        read_due = True
        last_read = 0.0
        try:
            while True:
                if read_due:
                    read_due = False
                    try:
                        for call in await sub.get_calls(list(state.seen)):
                            self._see(call, state, sub)
                        failing_since = None
                    except (VapiConnectionError, VapiAPIError) as exc:
                        if (
                            isinstance(exc, VapiAPIError)
                            and exc.status_code not in (429,)
                            and (exc.status_code or 0) < 500
                        ):
                            yield self._event("error", str(exc), list(state.seen))
                            return
                        # Transient: the hook already retried; keep waiting unless it lasts too long.
                        failing_since = failing_since or time.time()
                        self.log.warning("Checking Vapi calls failed, will try again: %s", exc)
                        if time.time() - failing_since > MAX_CONSECUTIVE_FAILURE_SECONDS:
                            yield self._event(
                                "error",
                                f"Vapi unreachable for {MAX_CONSECUTIVE_FAILURE_SECONDS:.0f}s: {exc}",
                                list(state.seen),
                            )
                            return
                    finally:
                        # Like a poll loop that sleeps after each check: the next direct read is
                        # due an interval after this one *ended*, however long it queued.
                        last_read = time.monotonic()
                grace_left = self._settle_by_grace(state, sub)
                if not state.seen:
                    yield self._event("success", f"{len(self.call_ids)} call(s) ended.")
                    return
                now = time.time()
                if self.deadline is not None and now >= self.deadline:
                    pending = list(state.seen)
                    yield self._event(
                        "timeout", f"{len(pending)} call(s) still not ended at the deadline.", pending
                    )
                    return
                covered = sub.covered()
                if covered:
                    wait = max(COVERED_RECHECK_FACTOR * self.poll_interval, 60.0)
                else:
                    wait = last_read + sub.fallback_interval(self.poll_interval) - time.monotonic()
                if self.deadline is not None:
                    wait = min(wait, self.deadline - now)
                if grace_left is not None:
                    wait = min(wait, grace_left)
                await sub.wait(wait)
                for call in sub.take().values():
                    self._see(call, state, sub)
                if (
                    not sub.covered()
                    and time.monotonic() >= last_read + sub.fallback_interval(self.poll_interval) - 0.001
                ):
                    read_due = True  # the shared poll cannot vouch for us: read directly
        except VapiError as exc:
            yield self._event("error", str(exc))
        finally:
            sub.close()

    async def on_kill(self) -> None:
        """A user killed the deferred task: end the calls that are still live."""
        if not self.end_on_kill:
            return
        hook = VapiHook(self.vapi_conn_id)
        try:
            for call_id in self.call_ids:
                try:
                    await asyncio.wait_for(hook.aend_call(call_id), timeout=30)
                except (VapiError, TimeoutError) as exc:
                    self.log.warning("Could not end Vapi call %s: %s", call_id, exc)
        finally:
            await hook.aclose()
