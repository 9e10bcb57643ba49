"""``CampaignStatusSensor``: wait for a campaign created elsewhere (another task, the dashboard)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.waiting import CampaignWaitMixin
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.hook.links import XCOM_CAMPAIGN_URL, LinkUrlsMixin, VapiCampaignLink, campaign_url
from airflow_provider_vapi.rendering.gate import RenderingGate
from airflow_provider_vapi.waiting.sensor import is_timeout
from airflow_provider_vapi.waiting.task import default_deferrable, wait_deadline

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class CampaignStatusSensor(LinkUrlsMixin, RenderingGate, CampaignWaitMixin, BaseSensorOperator):
    """Wait until a Vapi campaign is over (ended, cancelled or archived); return its summary.

    :param campaign_id: templated; the campaign (e.g. ``"{{ ti.xcom_pull(task_ids='run',
        key='campaign_id') }}"`` of a ``RunCampaignOperator(wait_for_completion=False)``).
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param cancel_on_timeout: cancel the campaign when the wait times out (default ``False``: the
        sensor did not create it).
    :param cancel_on_kill: cancel it when the task is killed while waiting (default ``False``).
    :param fail_if_cancelled: a campaign cancelled before it ended fails the task (default ``True``).
    :param poke_interval: seconds between reads (also the trigger's; default 30).
    :param timeout: seconds before the wait fails (``AirflowSensorTimeout``, or a
        ``VapiCampaignTimeoutError`` when deferred).
    :param mode: ``poke`` or ``reschedule`` when not deferrable.

    Returns the campaign's summary (``status``, ``counters``, ``call_metrics``), as
    ``RunCampaignOperator`` does.
    """

    template_fields: Sequence[str] = ("campaign_id", "vapi_conn_id")
    operator_extra_links = (VapiCampaignLink(),)
    ui_color = "#d9ecf7"

    def __init__(
        self,
        *,
        campaign_id: str,
        vapi_conn_id: str = VapiHook.default_conn_name,
        deferrable: bool | None = None,
        cancel_on_timeout: bool = False,
        cancel_on_kill: bool = False,
        fail_if_cancelled: bool = True,
        poke_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.campaign_id = campaign_id
        self.vapi_conn_id = vapi_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self.fail_if_cancelled = fail_if_cancelled

    def poke(self, context: Context) -> PokeReturnValue:
        self._campaign_id = str(self.campaign_id).strip()
        self.push_link_url(context["ti"], XCOM_CAMPAIGN_URL, campaign_url(self._campaign_id))
        campaign = CampaignApi(self.hook).get(self._campaign_id)
        if not campaign.is_over:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(campaign))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return self._wait_in_worker(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self._defer(str(self._campaign_id), self.poke_interval, self._deferred_deadline())
        return None

    def _deferred_deadline(self) -> float | None:
        return wait_deadline(self.timeout, self.execution_timeout)

    def _wait_in_worker(self, context: Context) -> Any:
        """Poke or reschedule; on a timeout cancel the campaign (``cancel_on_timeout``) or say it
        goes on, before Airflow's timeout error propagates."""
        try:
            return super().execute(context)
        except BaseException as exc:  # AirflowTaskTimeout is a BaseException
            if is_timeout(exc) and self._campaign_id:
                campaign_id, self._campaign_id = self._campaign_id, None  # on_kill, called next, is done
                try:
                    self._timed_out(campaign_id)
                except Exception as report:
                    self.log.warning("%s", report)
            raise

    def on_kill(self) -> None:
        """Killed while poking: cancel the campaign when ``cancel_on_kill``."""
        self._killed()
