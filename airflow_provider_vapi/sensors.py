"""``CallStatusSensor``: wait until Vapi calls have ended and been analysed, then hand them over.

The waiting itself lives in ``CallWaitMixin`` so that ``PlaceCallOperator(wait_for_completion=True)``
waits exactly like the sensor: poke, reschedule or deferrable, the same completion rule, the same
outcome policy, the same XCom.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_vapi.completion import (
    DEFAULT_ANALYSIS_GRACE_PERIOD,
    DEFAULT_FAILURE_OUTCOMES,
    check_outcome,
    is_settled,
    normalize_outcomes,
)
from airflow_provider_vapi.exceptions import VapiCallTimeoutError, VapiError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.links import XCOM_CALL_URL, VapiCallLink
from airflow_provider_vapi.models import Call, CallOutcome
from airflow_provider_vapi.triggers import CallStatusTrigger

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context


def render_native(template: str, context: Context, env: jinja2.Environment) -> Any:
    """Render with the task's filters and globals, keeping the result's Python type."""
    from jinja2.nativetypes import NativeEnvironment

    native = NativeEnvironment(undefined=env.undefined)
    native.filters.update(env.filters)
    native.globals.update(env.globals)
    return native.from_string(template).render(**context)


def normalize_call_ids(value: Any) -> str | list[str]:
    """One id, or a list of ids, from whatever ``call_id`` resolved to.

    Accepts an id, a list (or lazy sequence) of ids from a mapped upstream, and the
    ``{"call_ids": [...], "errors": [...]}`` a batch ``PlaceCallOperator`` returns.
    """
    if isinstance(value, Mapping):
        value = value.get("call_ids")
    if isinstance(value, str) and value.strip():
        return value.strip()
    if not isinstance(value, str) and isinstance(value, Iterable):
        ids = [str(v) for v in value if v]
        if ids:
            return ids
    raise ValueError(
        f"call_id resolved to {value!r}: no call id. Pass what PlaceCallOperator returned, e.g. "
        "call_id=place_call.output, or \"{{ ti.xcom_pull(task_ids='place_call') }}\"."
    )


class CallWaitMixin:
    """Wait for calls to settle: one check, then poke or defer to ``CallStatusTrigger``."""

    vapi_conn_id: str
    deferrable: bool
    analysis_grace_period: float
    failure_outcomes: frozenset[CallOutcome]
    end_call_on_timeout: bool
    end_call_on_kill: bool
    execution_timeout: timedelta | None
    log: Any
    #: Raised when the wait passes its deadline (the sensor raises AirflowSensorTimeout instead).
    timeout_error: type[Exception] = VapiCallTimeoutError

    @cached_property
    def hook(self) -> VapiHook:
        """One hook (one pooled HTTP client) for the whole task."""
        return VapiHook(self.vapi_conn_id)

    def _settled_calls(self, call_ids: Sequence[str]) -> list[Call] | None:
        """The calls when every one is settled, else ``None``."""
        hook = self.hook
        calls = []
        for call_id in call_ids:
            call = hook.get_call(call_id)
            if not is_settled(call, self.analysis_grace_period):
                self.log.info("Vapi call %s is %s; waiting.", call.id, call.status)
                return None
            calls.append(call)
        return calls

    def _finish(self, calls: list[Call], single: bool) -> Any:
        """Apply the outcome policy and build the XCom: the call(s) as Vapi sends them + outcome."""
        for call in calls:
            self.log.info(
                "Vapi call %s ended: %s (%s); analysis %s.",
                call.id,
                call.ended_reason,
                call.outcome.value,
                "present" if call.has_analysis else "absent",
            )
        for call in calls:
            check_outcome(call, self.failure_outcomes)
        values = [call.to_xcom() for call in calls]
        return values[0] if single else values

    def _deadline(self, timeout: float | None) -> float | None:
        """Wall-clock deadline for the trigger: ``timeout`` and ``execution_timeout``, the earlier."""
        limits = [
            t for t in (timeout, self.execution_timeout and self.execution_timeout.total_seconds()) if t
        ]
        return time.time() + min(limits) if limits else None

    def _defer_wait(self, call_ids: list[str], poll_interval: float, timeout: float | None) -> None:
        self.defer(  # type: ignore[attr-defined]
            trigger=CallStatusTrigger(
                call_ids=call_ids,
                vapi_conn_id=self.vapi_conn_id,
                poll_interval=poll_interval,
                deadline=self._deadline(timeout),
                analysis_grace_period=self.analysis_grace_period,
                end_on_kill=self.end_call_on_kill,
            ),
            method_name="execute_complete",
            # The trigger enforces the deadline itself and reports it, so the task can end the
            # call; a defer timeout would skip execute_complete and orphan the live call.
            timeout=None,
        )

    def _complete(self, event: dict[str, Any], single: bool) -> Any:
        status = event.get("status")
        call_ids = list(event.get("call_ids") or [])
        if status == "success":
            hook = self.hook
            return self._finish([hook.get_call(cid) for cid in call_ids], single)
        if status == "timeout":
            pending = list(event.get("pending") or call_ids)
            if self.end_call_on_timeout:
                self._end_calls(pending)
            ended = " (ended them)" if self.end_call_on_timeout else ""
            raise self.timeout_error(f"Timed out waiting for Vapi call(s) {', '.join(pending)}{ended}.")
        raise VapiError(f"Waiting for Vapi call(s) failed: {event.get('message')}")

    def _end_calls(self, call_ids: Sequence[str]) -> None:
        hook = self.hook
        for call_id in call_ids:
            try:
                call = hook.end_call(call_id)
                self.log.warning("Ended Vapi call %s (%s).", call_id, call.ended_reason or call.status)
            except VapiError as exc:
                self.log.error("Could not end Vapi call %s: %s", call_id, exc)


def _default_deferrable() -> bool:
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


class CallStatusSensor(CallWaitMixin, BaseSensorOperator):
    """Wait until a Vapi call has ended (and its analysis arrived), then return the call.

    The XCom (and return value) is the call as Vapi sends it, camelCase, plus ``outcome``:
    ``call["analysis"]["structuredData"]``, ``call["endedReason"]``, ``call["outcome"]``. Given a
    list of ids it waits for all of them and returns a list.

    :param call_id: templated; the call id, or a list of ids (e.g. the XCom of a mapped
        ``PlaceCallOperator``): ``"{{ ti.xcom_pull(task_ids='place_call') }}"``.
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param failure_outcomes: outcome classes that fail the task (default ``("error",)``); the
        others (``completed``, ``not_reached``, ``voicemail``, ``canceled``, ``unknown``) succeed,
        because a campaign treats them as data. The failure names the call, its ``endedReason``
        and Vapi's ``endedMessage``.
    :param analysis_grace_period: seconds after ``endedAt`` to wait for the analysis of a call
        that had a conversation (default 60); Vapi computes it after hang-up.
    :param deferrable: wait in the triggerer, holding no worker slot (default: Airflow's
        ``[operators] default_deferrable``). The first check happens before deferring.
    :param end_call_on_timeout: end the call through ``monitor.controlUrl`` when the wait times
        out (default ``False``: the sensor did not place it).
    :param end_call_on_kill: end the live call when a user kills the wait (marks the deferred task
        failed or success, or clears it): "stop waiting" usually means "stop calling" too
        (default ``True``; set ``False`` to let the call go on).
    :param poke_interval: seconds between checks (also the trigger's poll interval).
    :param timeout: seconds before the wait fails with ``AirflowSensorTimeout``; honoured in
        deferrable mode through a wall-clock deadline in the trigger.
    :param mode: ``poke`` or ``reschedule`` when not deferrable.
    """

    template_fields: Sequence[str] = ("call_id", "vapi_conn_id")
    timeout_error = AirflowSensorTimeout
    operator_extra_links = (VapiCallLink(),)
    ui_color = "#d9f0ff"

    def __init__(
        self,
        *,
        call_id: str | list[str],
        vapi_conn_id: str = VapiHook.default_conn_name,
        failure_outcomes: Collection[str | CallOutcome] = DEFAULT_FAILURE_OUTCOMES,
        analysis_grace_period: float = DEFAULT_ANALYSIS_GRACE_PERIOD,
        deferrable: bool | None = None,
        end_call_on_timeout: bool = False,
        end_call_on_kill: bool = True,
        poke_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.call_id = call_id
        self.vapi_conn_id = vapi_conn_id
        self.failure_outcomes = normalize_outcomes(failure_outcomes)
        self.analysis_grace_period = analysis_grace_period
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.end_call_on_timeout = end_call_on_timeout
        self.end_call_on_kill = end_call_on_kill

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render ``call_id`` as a native value, so the ids of a mapped upstream stay a list.

        ``{{ ti.xcom_pull(task_ids='place_call') }}`` over a mapped task yields a lazy sequence
        whose text form differs across Airflow versions (2.11 prints ``LazySelectSequence([2
        items])``); rendered natively it is the list of ids on every version.
        """
        if isinstance(self.call_id, str) and "{{" in self.call_id:
            self.call_id = render_native(self.call_id, context, jinja_env or self.get_template_env())
        super().render_template_fields(context, jinja_env)
        self.call_id = normalize_call_ids(self.call_id)

    def _ids(self) -> list[str]:
        return [self.call_id] if isinstance(self.call_id, str) else list(self.call_id)

    def _single(self) -> bool:
        return isinstance(self.call_id, str)

    def poke(self, context: Context) -> PokeReturnValue:
        call_ids = self._ids()
        if self._single():
            context["ti"].xcom_push(key=XCOM_CALL_URL, value=VapiHook.dashboard_url(call_ids[0]))
        calls = self._settled_calls(call_ids)
        if calls is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(calls, self._single()))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self._defer_wait(self._ids(), self.poke_interval, self.timeout)
        return None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed from the trigger: read the calls once more and apply the outcome policy."""
        return self._complete(event, self._single())
