"""``CallStatusSensor``: wait until Vapi calls have ended and been analysed, then hand them over.

How it waits (poke, reschedule or deferrable), when a call is settled and which outcomes fail the
task live in :mod:`airflow_provider_vapi.waiting`, shared with
``PlaceCallOperator(wait_for_completion=True)``: both wait exactly alike.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.links import XCOM_CALL_URL, VapiCallLink, dashboard_url
from airflow_provider_vapi.models import CallOutcome
from airflow_provider_vapi.templating import render_native
from airflow_provider_vapi.waiting import (
    DEFAULT_ANALYSIS_GRACE_PERIOD,
    DEFAULT_FAILURE_OUTCOMES,
    CallWaitMixin,
    WaitEvent,
    default_deferrable,
    normalize_call_ids,
    normalize_outcomes,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context


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
        self.deferrable = default_deferrable() if deferrable is None else deferrable
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
            context["ti"].xcom_push(key=XCOM_CALL_URL, value=dashboard_url(call_ids[0]))
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
        return self._complete(WaitEvent.from_event(event), self._single())
