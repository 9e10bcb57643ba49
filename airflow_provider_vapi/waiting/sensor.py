"""``CallStatusSensor``: wait until Vapi calls have ended and been analysed, then hand them over.

How it waits (poke, reschedule or deferrable), when a call is settled and which outcomes fail the
task live in :mod:`airflow_provider_vapi.waiting.task`, shared with
``PlaceCallOperator(wait_for_completion=True)``: both wait exactly alike.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.hook.links import XCOM_CALL_URL, LinkUrlsMixin, VapiCallLink, dashboard_url
from airflow_provider_vapi.models import CallOutcome
from airflow_provider_vapi.rendering.gate import RenderingGate
from airflow_provider_vapi.results import XComDetail, check_xcom_detail
from airflow_provider_vapi.waiting.task import (
    DEFAULT_ANALYSIS_GRACE_PERIOD,
    DEFAULT_FAILURE_OUTCOMES,
    CallWaitMixin,
    WaitEvent,
    default_deferrable,
    normalize_call_ids,
    normalize_outcomes,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class CallStatusSensor(LinkUrlsMixin, RenderingGate, CallWaitMixin, BaseSensorOperator):
    """Wait until a Vapi call has ended (and its results arrived), then return what it learned.

    The XCom (and return value) is the call's result, camelCase (:func:`~airflow_provider_vapi.
    results.call_result`): ``result["structuredOutputs"]["<output name>"]``,
    ``result["analysis"]["summary"]``, ``result["endedReason"]``, ``result["outcome"]``, costs and
    times; compact by default (``xcom_detail``). Given a list of ids it waits for all of them and
    returns a list.

    :param call_id: templated; the call id, or a list of ids (e.g. the XCom of a mapped
        ``PlaceCallOperator``): ``"{{ ti.xcom_pull(task_ids='place_call') }}"``.
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param failure_outcomes: outcome classes that fail the task (default ``("error",)``); the
        others (``completed``, ``not_reached``, ``voicemail``, ``canceled``, ``unknown``) succeed,
        because a campaign treats them as data. The failure (``VapiCallFailedError``) names the
        call, its ``endedReason`` and Vapi's ``endedMessage``, and is final: not retried, since
        the call has ended; ``soft_fail``/``never_fail`` skip instead, in every mode.
    :param analysis_grace_period: seconds after ``endedAt`` to wait for the results of a call that
        had a conversation (default 60): the analysis and the structured outputs its assistant
        configures, which Vapi computes after hang-up. The wait settles as soon as they are all
        there; past the grace period it settles without the missing ones.
    :param xcom_detail: ``"compact"`` (default: ids, status, outcome, ended reason and message,
        times, duration, costs, analysis, structured outputs by name, customer, metadata, the
        dashboard URL; about 1.5 KiB a call), ``"transcript"`` (and ``transcript``) or ``"full"``
        (the whole call as Vapi sent it: messages, artifact, recording URLs). XCom lives in
        Airflow's database: land full calls in storage instead (see the README).
    :param deferrable: wait in the triggerer, holding no worker slot (default: Airflow's
        ``[operators] default_deferrable``). The first check happens before deferring; an error
        there ends the task as one after the deferral would (``soft_fail``/``never_fail`` skip).
    :param end_call_on_timeout: when the wait times out, in any mode (``timeout`` or
        ``execution_timeout``), stop the calls still going before the timeout error propagates:
        a live call is ended through ``monitor.controlUrl`` (``manually-canceled``), a scheduled
        one cancelled with ``DELETE /call/{id}`` (``scheduled-call-deleted``). Default ``False``
        (the sensor did not place them): they go on, and a WARNING names each one, its status
        and, scheduled, its ``schedulePlan.earliestAt``.
    :param end_call_on_kill: end the calls when a user kills the wait (marks the task failed or
        success, or clears it): "stop waiting" usually means "stop calling" too (default
        ``True``; set ``False`` to let them go on). Poking, the sensor's ``on_kill`` ends them;
        deferred, the trigger's ``on_kill`` does, which only Airflow 3 calls: on Airflow 2.11
        (no ``BaseTrigger.on_kill``) the calls of a killed deferred wait go on, and the sensor
        says so with a WARNING when it defers. Between two pokes of reschedule mode nothing runs
        to end them. An ``execution_timeout`` is a timeout, not a kill: ``end_call_on_timeout``
        decides.
    :param poke_interval: seconds between checks (also the trigger's poll interval).
    :param timeout: seconds before the wait fails with ``AirflowSensorTimeout`` (with
        ``soft_fail``: is skipped); honoured in deferrable mode through a wall-clock deadline in
        the trigger.
    :param mode: ``poke`` or ``reschedule`` when not deferrable.
    """

    template_fields: Sequence[str] = ("call_id", "vapi_conn_id")
    native_fields = frozenset({"call_id"})
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
        xcom_detail: XComDetail = "compact",
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
        self.xcom_detail = check_xcom_detail(xcom_detail)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.end_call_on_timeout = end_call_on_timeout
        self.end_call_on_kill = end_call_on_kill
        self._waiting_on: list[str] = []

    def after_render(self) -> None:
        """``call_id`` as one id or a list of ids, whatever it resolved to.

        Written as one ``{{ ... }}`` expression it renders natively (``native_fields``):
        ``{{ ti.xcom_pull(task_ids='place_call') }}`` over a mapped task yields a lazy sequence
        whose text form differs across Airflow versions (2.11 prints ``LazySelectSequence([2
        items])``); rendered natively it is the list of ids on every version.
        """
        self.call_id = normalize_call_ids(self.call_id)

    def _ids(self) -> list[str]:
        return [self.call_id] if isinstance(self.call_id, str) else list(self.call_id)

    def _single(self) -> bool:
        return isinstance(self.call_id, str)

    def poke(self, context: Context) -> PokeReturnValue:
        call_ids = self._ids()
        if call_ids:  # the link's target (a batch: its first call, as PlaceCallOperator does)
            self.push_link_url(context["ti"], XCOM_CALL_URL, dashboard_url(call_ids[0]))
        calls = self._settled_calls(call_ids)
        if calls is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(calls, self._single()))

    def execute(self, context: Context) -> Any:
        self._waiting_on = self._ids()
        if not self.deferrable:
            return self._wait_in_worker(context)
        try:
            first = self.poke(context)
        except AirflowException as exc:
            # Airflow's own rule for an error after the deferral (resume_execution), so that the
            # first check, which Airflow does not see, ends the task the same way.
            skip = self._skip_instead(exc)
            if skip is None:
                raise
            raise skip from exc
        if first.is_done:
            return first.xcom_value
        self._defer_wait(self._ids(), self.poke_interval, self.timeout)
        return None

    def _wait_in_worker(self, context: Context) -> Any:
        """Poke or reschedule (``BaseSensorOperator.execute``), and on a timeout end the calls or
        warn that they go on, as a deferred wait does, before Airflow's timeout error propagates."""
        try:
            return super().execute(context)
        except BaseException as exc:  # AirflowTaskTimeout is a BaseException
            if is_timeout(exc):
                pending, self._waiting_on = self._waiting_on, []  # on_kill, called next, is done
                self._timed_out(pending)
            raise

    def _skip_instead(self, exc: BaseException) -> AirflowSkipException | None:
        """The skip Airflow raises instead of ``exc`` when a resumed sensor fails: ``soft_fail`` or
        ``never_fail`` (Airflow 3's rule; 2.11 forgets ``never_fail`` there, see resume_execution)."""
        if isinstance(exc, AirflowSkipException) or not isinstance(exc, AirflowException):
            return None
        if self.soft_fail:
            return AirflowSkipException("Skipping due to soft_fail is set to True.")
        if self.never_fail:
            return AirflowSkipException("Skipping due to never_fail is set to True.")
        return None

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's, plus ``never_fail`` on Airflow 2.11 (whose resume skips for ``soft_fail`` only)."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowException as exc:
            skip = self._skip_instead(exc)
            if skip is None:
                raise
            raise skip from exc

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed from the trigger: read the calls once more and apply the outcome policy."""
        return self._complete(WaitEvent.from_event(event), self._single())

    def on_kill(self) -> None:
        """A user killed the task while it pokes: end the live calls (``end_call_on_kill``).

        A *deferred* wait is ended by the trigger's ``on_kill`` instead, which only Airflow 3
        calls. A timed-out wait is handled by ``end_call_on_timeout`` alone, although Airflow
        calls ``on_kill`` after an ``execution_timeout`` too.
        """
        self._killed(self._waiting_on)


def is_timeout(exc: BaseException) -> bool:
    """Whether an error out of ``BaseSensorOperator.execute`` means the wait ran out of time:
    its ``AirflowSensorTimeout`` (with ``soft_fail``: a skip saying "Sensor has timed out"), or
    ``execution_timeout``'s ``AirflowTaskTimeout`` (which ``soft_fail``/``never_fail`` turn into a
    skip caused by it)."""
    for error in (exc, exc.__cause__):
        if isinstance(error, AirflowSensorTimeout | AirflowTaskTimeout):
            return True
    return isinstance(exc, AirflowSkipException) and str(exc).startswith("Sensor has timed out")


__all__ = ["CallStatusSensor", "is_timeout"]
