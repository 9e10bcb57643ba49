"""``CampaignStatusTrigger``: wait in the triggerer until a campaign is over, or its deadline.

One ``GET /v2/campaign/{id}?includeCounters=true`` per interval. The shared poll of call waits
(:mod:`airflow_provider_vapi.waiting.watcher`) is not used: a campaign is one object however many people
it calls, so a wait costs one read per interval already, and Vapi's call list cannot be filtered by
campaign. Side-effect free and re-creatable from its kwargs (a triggerer restart resumes it), it
yields one small event, ``{"status": "ended" | "timeout" | "error", "campaign_id", "message"}``;
the task reads the campaign again in ``execute_complete``. A read failing with what the hook would
retry keeps the wait going for up to ``MAX_CONSECUTIVE_FAILURE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.exceptions import VapiError, is_transient
from airflow_provider_vapi.hook.core import VapiHook

MAX_CONSECUTIVE_FAILURE_SECONDS: Final = 600.0


class CampaignStatusTrigger(BaseTrigger):
    """Wait until the campaign ``campaign_id`` is ended, cancelled or archived.

    :param campaign_id: the campaign.
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param poll_interval: seconds between reads.
    :param deadline: ``time.time()`` after which a ``timeout`` event is sent (``None``: none).
    :param cancel_on_kill: cancel the campaign when a user kills the deferred task (Airflow 3
        calls ``on_kill``; Airflow 2 never does, and the task warns when it defers).
    """

    def __init__(
        self,
        campaign_id: str,
        vapi_conn_id: str = VapiHook.default_conn_name,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.campaign_id = campaign_id
        self.vapi_conn_id = vapi_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "campaign_id": self.campaign_id,
                "vapi_conn_id": self.vapi_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _event(self, status: str, message: str) -> TriggerEvent:
        payload = {"status": status, "campaign_id": self.campaign_id, "message": message}
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = VapiHook(self.vapi_conn_id)
        failing_since: float | None = None
        try:
            while True:
                try:
                    campaign = await CampaignApi(hook).aget(self.campaign_id)
                    failing_since = None
                    if campaign.is_over:
                        yield self._event("ended", f"campaign {campaign.status}")
                        return
                except VapiError as exc:
                    failing_since = failing_since or time.time()
                    if not is_transient(exc) or time.time() - failing_since > MAX_CONSECUTIVE_FAILURE_SECONDS:
                        yield self._event("error", str(exc))
                        return
                    self.log.warning("Reading campaign %s failed (%s); trying again.", self.campaign_id, exc)
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event("timeout", "the campaign was still running at the deadline")
                    return
                await asyncio.sleep(self._pause())
        finally:
            await hook.aclose()

    def _pause(self) -> float:
        if self.deadline is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, self.deadline - time.time()))

    async def on_kill(self) -> None:
        """A user killed the deferred task (Airflow 3 only): cancel the campaign."""
        if not self.cancel_on_kill:
            return
        hook = VapiHook(self.vapi_conn_id)
        try:
            campaign = await asyncio.wait_for(CampaignApi(hook).acancel(self.campaign_id), timeout=30)
            self.log.warning("Cancelled Vapi campaign %s: %s", self.campaign_id, campaign.status)
        except (VapiError, TimeoutError) as exc:
            self.log.warning("Could not cancel Vapi campaign %s: %s", self.campaign_id, exc)
        finally:
            await hook.aclose()
