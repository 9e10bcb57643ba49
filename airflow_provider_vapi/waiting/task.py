"""Waiting for calls: when a wait is over, what ends it, and how a task waits.

Shared by ``CallStatusSensor``, ``PlaceCallOperator(wait_for_completion=True)`` and
``CallStatusTrigger``, so all three agree:

* **the completion rule** (:func:`is_settled`, kept in :mod:`airflow_provider_vapi.waiting.completion`):
  a call is *settled* when it has ``ended`` and the results its configuration asks for (analysis, structured outputs: :mod:`airflow_provider_vapi.
  results`) have arrived, or cannot arrive (no conversation), or the grace period after
  ``endedAt`` has passed (Vapi computes them after hang-up): one rule for analysis and outputs;
* **the outcome policy** (:func:`check_outcome`): which outcome classes fail the task;
* **the event a wait ends with** (:class:`WaitEvent`, kept in :mod:`.completion` too): the
  trigger builds it, the operator's poll path builds the same, ``execute_complete`` reads it;
* **how a task waits** (:class:`CallWaitMixin`): one check, then poke, reschedule or defer;
* **what it hands on**: :func:`airflow_provider_vapi.results.call_result` (``xcom_detail``).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_vapi.exceptions import VapiCallFailedError, VapiCallTimeoutError, VapiError
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.hook.links import dashboard_url
from airflow_provider_vapi.models import Call, CallOutcome
from airflow_provider_vapi.results import (
    AwaitedResults,
    XComDetail,
    awaited_for,
    call_result,
    outputs_by_name,
)

# The completion rule and the event live below every way of waiting; re-exported from here.
from airflow_provider_vapi.waiting.completion import (
    DEFAULT_ANALYSIS_GRACE_PERIOD as DEFAULT_ANALYSIS_GRACE_PERIOD,
)
from airflow_provider_vapi.waiting.completion import WaitEvent as WaitEvent
from airflow_provider_vapi.waiting.completion import WaitStatus as WaitStatus
from airflow_provider_vapi.waiting.completion import is_settled as is_settled

DEFAULT_FAILURE_OUTCOMES: tuple[str, ...] = (CallOutcome.ERROR.value,)


# -- the outcome policy ------------------------------------------------------------------------------


def normalize_outcomes(outcomes: Collection[str | CallOutcome]) -> frozenset[CallOutcome]:
    """Outcome names from a task parameter, checked: a typo must not silently pass a failed call."""
    result = set()
    for name in outcomes:
        try:
            result.add(CallOutcome(name))
        except ValueError:
            valid = ", ".join(o.value for o in CallOutcome)
            raise ValueError(f"{name!r} is not a call outcome; use some of: {valid}") from None
    return frozenset(result)


def check_outcome(call: Call, failure_outcomes: frozenset[CallOutcome]) -> None:
    """Raise ``VapiCallFailedError`` when the call's outcome is one the task counts as failure."""
    outcome = call.outcome
    if outcome not in failure_outcomes:
        return
    detail = f": {call.ended_message.rstrip('.')}" if call.ended_message else ""
    raise VapiCallFailedError(
        f"Vapi call {call.id} ended with {call.ended_reason!r} (outcome {outcome.value}){detail}. "
        f"Its page: {dashboard_url(call.id)}",
        call_id=call.id,
        ended_reason=call.ended_reason,
        ended_message=call.ended_message,
        outcome=outcome.value,
    )


# -- what to wait for ----------------------------------------------------------------------------


def normalize_call_ids(value: Any) -> str | list[str]:
    """One id, or a list of ids, from whatever a sensor's ``call_id`` resolved to.

    Accepts an id, a list (or lazy sequence) of ids from a mapped upstream, the
    ``{"call_ids": [...], "errors": [...]}`` a batch ``PlaceCallOperator`` returns, and the result
    of a wait (a call's ``{"id": ...}``, or a list of them).
    """
    if isinstance(value, Mapping):
        value = value.get("call_ids", value.get("id"))
    if isinstance(value, str) and value.strip():
        return value.strip()
    if not isinstance(value, str) and isinstance(value, Iterable):
        ids = [str(v.get("id") if isinstance(v, Mapping) else v) for v in value if v]
        if ids:
            return ids
    raise ValueError(
        f"call_id resolved to {value!r}: no call id. Pass what PlaceCallOperator returned, e.g. "
        "call_id=place_call.output, or \"{{ ti.xcom_pull(task_ids='place_call') }}\"."
    )


def trigger_on_kill_supported() -> bool:
    """Whether the triggerer calls a trigger's ``on_kill`` when a user kills its deferred task.

    Airflow 3 added ``BaseTrigger.on_kill``; Airflow 2 has none, and never calls one. The
    capability is looked up, not the version.
    """
    from airflow.triggers.base import BaseTrigger

    return callable(getattr(BaseTrigger, "on_kill", None))


def wait_deadline(timeout: float | None, execution_timeout: timedelta | None) -> float | None:
    """Wall-clock deadline of a wait: ``timeout`` and ``execution_timeout``, the earlier."""
    limits = [t for t in (timeout, execution_timeout and execution_timeout.total_seconds()) if t]
    return time.time() + min(limits) if limits else None


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


# -- how a task waits -----------------------------------------------------------------------------


class CallWaitMixin:
    """Wait for calls to settle: one check, then poke (or poll) or defer to ``CallStatusTrigger``."""

    vapi_conn_id: str
    deferrable: bool
    analysis_grace_period: float
    xcom_detail: XComDetail
    failure_outcomes: frozenset[CallOutcome]
    end_call_on_timeout: bool
    end_call_on_kill: bool
    execution_timeout: timedelta | None
    log: Any
    #: Raised when the wait passes its deadline (the sensor raises AirflowSensorTimeout instead).
    timeout_error: type[Exception] = VapiCallTimeoutError
    #: What every call awaits, when the task knows it (a re-extraction); ``None``: each call's own
    #: configuration says (:func:`airflow_provider_vapi.results.awaited_for`).
    awaited_results: AwaitedResults | None = None

    @cached_property
    def hook(self) -> VapiHook:
        """One hook (one pooled HTTP client) for the whole task."""
        return VapiHook(self.vapi_conn_id)

    def _settled_calls(self, call_ids: Sequence[str]) -> list[Call] | None:
        """The calls when every one is settled, else ``None``."""
        calls = []
        for call_id in call_ids:
            call = self.hook.get_call(call_id)
            if not is_settled(call, self.analysis_grace_period, self._awaited(call)):
                self._note_status(call)
                return None
            calls.append(call)
        return calls

    def _awaited(self, call: Call) -> AwaitedResults | None:
        """What ``call`` awaits; only looked up once it ended (the assistant is read then, once)."""
        if self.awaited_results is not None or not call.is_ended:
            return self.awaited_results
        return awaited_for(self.hook, call)

    def _note_status(self, call: Call) -> None:
        """Log a call's status when it changes, not at every poll: a ten-minute call polled every
        10 s is one line per state, not sixty (and the fewer log writes, the fewer chances for
        Airflow's ``execution_timeout`` alarm, which logs from its signal handler, to land inside
        one and deadlock on the log writer's lock)."""
        seen: dict[str, str] = self.__dict__.setdefault("_statuses_logged", {})
        state = f"{call.status}/{'ended' if call.is_ended else 'live'}"
        if seen.get(call.id) != state:
            seen[call.id] = state
            self.log.info("Vapi call %s is %s; waiting.", call.id, call.status)

    def _finish(self, calls: list[Call], single: bool) -> Any:
        """Apply the outcome policy and build the XCom: the call(s) as Vapi sends them + outcome."""
        for call in calls:
            self.log.info(
                "Vapi call %s ended: %s (%s); analysis %s; structured outputs: %s.",
                call.id,
                call.ended_reason,
                call.outcome.value,
                "present" if call.has_analysis else "absent",
                ", ".join(outputs_by_name(call)) or "none",
            )
        for call in calls:
            check_outcome(call, self.failure_outcomes)
        values = [call_result(call, self.xcom_detail) for call in calls]
        return values[0] if single else values

    def _deadline(self, timeout: float | None) -> float | None:
        return wait_deadline(timeout, self.execution_timeout)

    def _poll_until_settled(
        self, call_ids: list[str], single: bool, poll_interval: float, timeout: float | None
    ) -> Any:
        """Wait in the worker (not deferrable): check every ``poll_interval`` until the deadline."""
        deadline = self._deadline(timeout)
        while True:
            time.sleep(poll_interval)
            settled = self._settled_calls(call_ids)
            if settled is not None:
                return self._finish(settled, single)
            if deadline is not None and time.time() >= deadline:
                event = WaitEvent(WaitStatus.TIMEOUT, call_ids, "deadline passed", pending=call_ids)
                return self._complete(event, single)

    def _defer_wait(self, call_ids: list[str], poll_interval: float, timeout: float | None) -> None:
        """Hand the wait to the triggerer; it ends in ``execute_complete`` with a :class:`WaitEvent`."""
        from airflow_provider_vapi.waiting.trigger import CallStatusTrigger

        self._warn_if_kill_cannot_end()
        self.defer(  # type: ignore[attr-defined]
            trigger=CallStatusTrigger(
                call_ids=call_ids,
                vapi_conn_id=self.vapi_conn_id,
                poll_interval=poll_interval,
                deadline=self._deadline(timeout),
                analysis_grace_period=self.analysis_grace_period,
                end_on_kill=self.end_call_on_kill,
                results=None if self.awaited_results is None else self.awaited_results.to_json(),
            ),
            method_name="execute_complete",
            # The trigger enforces the deadline itself and reports it, so the task can end the
            # call; a defer timeout would skip execute_complete and orphan the live call.
            timeout=None,
        )

    def _complete(self, event: WaitEvent, single: bool) -> Any:
        """The end of a wait: the result, or the error the event stands for."""
        if event.status is WaitStatus.SUCCESS:
            return self._finish([self.hook.get_call(cid) for cid in event.call_ids], single)
        if event.status is WaitStatus.TIMEOUT:
            pending = event.pending or event.call_ids
            self._timed_out(pending)
            ended = " (ended them)" if self.end_call_on_timeout else ""
            raise self.timeout_error(f"Timed out waiting for Vapi call(s) {', '.join(pending)}{ended}.")
        raise VapiError(f"Waiting for Vapi call(s) failed: {event.message}")

    # -- what a wait that stops early does to the calls ------------------------------------------

    def _timed_out(self, call_ids: Sequence[str]) -> None:
        """The wait timed out (in any mode): end the calls, or say that they go on and how to stop
        them. The caller raises the timeout error afterwards."""
        if self.end_call_on_timeout:
            self._end_calls(call_ids)
        else:
            self._warn_left_running(call_ids)

    def _end_calls(self, call_ids: Sequence[str], hook: VapiHook | None = None) -> None:
        """End each call not ended yet: a live one through ``monitor.controlUrl``, a scheduled one
        by ``DELETE`` (:meth:`VapiHook.end_call` decides); an error is logged, the rest still end."""
        hook = hook or self.hook
        for call_id in call_ids:
            try:
                call = hook.get_call(call_id)
                if call.is_ended:
                    continue  # nothing to stop: only its analysis may still be to come
                status = call.status
                call = hook.end_call(call)
                self.log.warning(
                    "Ended Vapi call %s, which was %s (%s).",
                    call_id,
                    status,
                    call.ended_reason or call.status,
                )
            except VapiError as exc:
                self.log.error("Could not end Vapi call %s: %s", call_id, exc)

    def _killed(self, call_ids: Sequence[str]) -> None:
        """A user killed the task while it waited in the worker: end the calls, unless
        ``end_call_on_kill=False``. ``on_kill`` may run in a signal handler while the task's own
        hook is in the middle of a request, so this uses a hook (and HTTP client) of its own."""
        if not (self.end_call_on_kill and call_ids):
            return
        hook = VapiHook(self.vapi_conn_id)
        try:
            self._end_calls(call_ids, hook)
        finally:
            hook.close()

    def _warn_left_running(self, call_ids: Sequence[str]) -> None:
        """One WARNING per call the timed-out wait leaves going (status, and when it is to ring)."""
        for call_id in call_ids:
            try:
                call = self.hook.get_call(call_id)
            except VapiError as exc:
                self.log.warning("Vapi call %s may still go on (could not read it: %s).", call_id, exc)
                continue
            if call.is_ended:
                continue  # over already; only its analysis was still to come
            plan = call.schedule_plan if isinstance(call.schedule_plan, dict) else {}
            when = f", to ring from {plan.get('earliestAt')}" if call.status == "scheduled" else ""
            self.log.warning(
                "Vapi call %s is still %s%s: it goes on although the wait timed out. "
                "end_call_on_timeout=True ends such calls when the wait times out; "
                "VapiHook.end_call(%r) ends it now.",
                call_id,
                call.status,
                when,
                call_id,
            )

    def _warn_if_kill_cannot_end(self) -> None:
        """Before deferring: on an Airflow whose triggers have no ``on_kill`` (2.x) nothing ends the
        calls when a user kills the deferred task, whatever ``end_call_on_kill`` says."""
        if self.end_call_on_kill and not trigger_on_kill_supported():
            self.log.warning(
                "end_call_on_kill=True cannot work while this task is deferred: this Airflow's "
                "triggers have no on_kill, so killing the deferred task (mark failed/success, clear) "
                "leaves its Vapi call(s) going. End them with VapiHook.end_call, or wait in the "
                "worker (deferrable=False; a sensor in poke mode), which ends them on kill."
            )
