"""How a task waits for a campaign: one read, then poll in the worker or defer to
:class:`~.trigger.CampaignStatusTrigger`; and what a wait that stops early does (cancel the
campaign, and say how many people were reached). Shared by ``RunCampaignOperator`` and
``CampaignStatusSensor``."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import Any, NoReturn

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.models import Campaign
from airflow_provider_vapi.exceptions import VapiCampaignCancelledError, VapiCampaignTimeoutError, VapiError
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.waiting.task import trigger_on_kill_supported, wait_deadline


def reach(campaign: Campaign) -> str:
    """How far the campaign got, for logs and errors: people reached, dialed, left."""
    counters, metrics = campaign.counters, campaign.metrics
    return (
        f"{counters.reached} of {counters.total} contacts reached (dialed {metrics.dialed}, "
        f"connected {metrics.connected}; completed {counters.completed}, failed {counters.failed}, "
        f"skipped {counters.skipped}, still pending {counters.pending})"
    )


class CampaignWaitMixin:
    """Wait until a campaign is over (ended, cancelled, archived), within ``timeout``."""

    vapi_conn_id: str
    deferrable: bool
    cancel_on_timeout: bool
    cancel_on_kill: bool
    execution_timeout: timedelta | None
    log: Any
    #: The campaign being waited for (``on_kill`` cancels it).
    _campaign_id: str | None = None
    #: Whether a campaign cancelled by someone else fails the task.
    fail_if_cancelled: bool = True

    @cached_property
    def hook(self) -> VapiHook:
        return VapiHook(self.vapi_conn_id)

    def _wait_for(self, campaign: Campaign, poll_interval: float, timeout: float | None) -> Any:
        """The campaign's summary once it is over; polls or defers until then."""
        self._campaign_id = campaign.id
        if campaign.is_over:
            return self._finish(campaign)
        deadline = wait_deadline(timeout, self.execution_timeout)
        if self.deferrable:
            self._defer(campaign.id, poll_interval, deadline)
        while deadline is None or time.time() < deadline:
            left = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.time()))
            time.sleep(left)
            campaign = CampaignApi(self.hook).get(campaign.id)
            if campaign.is_over:
                return self._finish(campaign)
        self._timed_out(campaign.id)

    def _defer(self, campaign_id: str, poll_interval: float, deadline: float | None) -> None:
        from airflow_provider_vapi.campaigns.trigger import CampaignStatusTrigger

        if self.cancel_on_kill and not trigger_on_kill_supported():
            self.log.warning(
                "cancel_on_kill=True cannot work while this task is deferred on this Airflow (its "
                "triggers have no on_kill): killing it leaves campaign %s running. Cancel it with "
                "CampaignApi(VapiHook()).cancel(%r), or wait in the worker (deferrable=False).",
                campaign_id,
                campaign_id,
            )
        self.defer(  # type: ignore[attr-defined]
            trigger=CampaignStatusTrigger(
                campaign_id=campaign_id,
                vapi_conn_id=self.vapi_conn_id,
                poll_interval=poll_interval,
                deadline=deadline,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=None,  # the trigger sends the deadline as an event, so the task can cancel
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resumed from the trigger: read the campaign once more and finish, or cancel on timeout."""
        campaign_id = str(event.get("campaign_id") or self._campaign_id)
        self._campaign_id = campaign_id
        status = event.get("status")
        if status == "ended":
            return self._finish(CampaignApi(self.hook).get(campaign_id))
        if status == "timeout":
            self._timed_out(campaign_id)
        raise VapiError(f"Waiting for Vapi campaign {campaign_id} failed: {event.get('message')}")

    def _finish(self, campaign: Campaign) -> dict[str, Any]:
        self.log.info(
            "Vapi campaign %s is %s (%s): %s.",
            campaign.id,
            campaign.status,
            campaign.ended_reason,
            reach(campaign),
        )
        if campaign.status == "cancelled" and self.fail_if_cancelled:
            raise VapiCampaignCancelledError(
                f"Vapi campaign {campaign.id} was cancelled ({campaign.ended_reason}) before it ended: "
                f"{reach(campaign)}. Not reporting it as finished; trigger a new run to call the rest."
            )
        return campaign.summary()

    def _timed_out(self, campaign_id: str) -> NoReturn:
        """The deadline passed: cancel the campaign (``cancel_on_timeout``) or say that it goes on."""
        if self.cancel_on_timeout:
            campaign = CampaignApi(self.hook).cancel(campaign_id)
            self.log.warning(
                "Timed out: cancelled Vapi campaign %s; live calls finish. %s.", campaign_id, reach(campaign)
            )
            done = "cancelled it"
        else:
            campaign = CampaignApi(self.hook).get(campaign_id)
            self.log.warning(
                "Timed out: Vapi campaign %s goes on (%s); CampaignApi(VapiHook()).cancel(%r) stops it.",
                campaign_id,
                reach(campaign),
                campaign_id,
            )
            done = "left it running"
        raise VapiCampaignTimeoutError(
            f"Timed out waiting for Vapi campaign {campaign_id} ({done}): {reach(campaign)}."
        )

    def _killed(self) -> None:
        """The task was killed while it waited in the worker: cancel, on a hook of its own (the
        task's may be mid-request when ``on_kill`` runs)."""
        if not (self.cancel_on_kill and self._campaign_id):
            return
        hook = VapiHook(self.vapi_conn_id)
        try:
            campaign = CampaignApi(hook).cancel(self._campaign_id)
            self.log.warning("Killed: cancelled Vapi campaign %s. %s.", campaign.id, reach(campaign))
        except VapiError as exc:
            self.log.error("Could not cancel Vapi campaign %s: %s", self._campaign_id, exc)
        finally:
            hook.close()
