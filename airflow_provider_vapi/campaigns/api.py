"""``CampaignApi(hook)``: Vapi's campaign routes (``/v2/campaign``), wrapping a hook, as operations of the hook's
generator protocol (:mod:`airflow_provider_vapi.wire.transport`), with sync and ``a``-prefixed async
twins. The create that never makes a second campaign is :mod:`airflow_provider_vapi.campaigns.once`'s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_vapi.campaigns import once as keyed
from airflow_provider_vapi.campaigns.models import Campaign, CampaignContact, ContactPage
from airflow_provider_vapi.exceptions import VapiBadRequestError
from airflow_provider_vapi.wire.ids import path_segment
from airflow_provider_vapi.wire.skew import looking_back
from airflow_provider_vapi.wire.transport import Op, Send

if TYPE_CHECKING:
    from airflow_provider_vapi.hook.core import VapiHook

#: Contacts per page read (Vapi's maximum).
CONTACTS_PAGE: Final = 1000
_CANCEL: Final = {"status": "cancelled"}


def _path(campaign_id: str) -> str:
    """``/v2/campaign/{id}``, the id checked as a Vapi campaign id (a UUID) first."""
    return f"/v2/campaign/{path_segment(campaign_id, 'campaign_id')}"


class CampaignApi:
    """Create, read, cancel a campaign and page through its contacts (``VapiHook.campaigns``)."""

    def __init__(self, hook: VapiHook) -> None:
        self.hook = hook

    def _get_op(self, campaign_id: str) -> Op[Campaign]:
        # Checked before anything is sent: never a path, a query, or a template's "None" (ids.py).
        step = Send("GET", _path(campaign_id), params={"includeCounters": "true"})
        return (yield from self.hook._read_op(step, Campaign))

    def get(self, campaign_id: str) -> Campaign:
        """The campaign with its ``contactCounters`` and ``callMetrics``."""
        return self.hook._run(self._get_op(campaign_id))

    async def aget(self, campaign_id: str) -> Campaign:
        return await self.hook._arun(self._get_op(campaign_id))

    def create(self, body: dict[str, Any], key: str) -> Campaign:
        """``POST /v2/campaign`` (a checked body, see :mod:`.request`), tagged with ``key`` and
        never sent twice (:func:`~airflow_provider_vapi.campaigns.once.create_campaign_op`)."""
        return self.hook._run(keyed.create_campaign_op(self.hook, body, key))

    def find(self, key: str, since: datetime, *, whole_task: bool = False) -> list[Campaign]:
        """The campaigns created since ``since`` (an Airflow time: the lookup starts
        :data:`~airflow_provider_vapi.wire.skew.CLOCK_SKEW` earlier) whose name carries ``key`` (with
        ``whole_task``: any map index of its dag run's task), oldest first."""
        return self.hook._run(
            keyed.find_campaigns_op(self.hook, key, looking_back(since), whole_task=whole_task)
        )

    def _cancel_op(self, campaign_id: str) -> Op[Campaign]:
        """``PATCH status: cancelled``: contacts not yet called are dropped, live calls finish. Safe to
        repeat; a campaign that ended meanwhile (Vapi may answer 400) is read back instead."""
        step = Send("PATCH", _path(campaign_id), json=_CANCEL)
        try:
            yield from self.hook._request_op(step, expect=dict)
        except VapiBadRequestError:
            campaign = yield from self._get_op(campaign_id)
            if not campaign.is_over:
                raise
        return (yield from self._get_op(campaign_id))

    def cancel(self, campaign_id: str) -> Campaign:
        """Cancel the campaign and return it as it is then (with its counters)."""
        return self.hook._run(self._cancel_op(campaign_id))

    async def acancel(self, campaign_id: str) -> Campaign:
        return await self.hook._arun(self._cancel_op(campaign_id))

    def _contacts_op(self, campaign_id: str, page: int, size: int) -> Op[ContactPage]:
        params = {"page": page, "limit": size, "sortBy": "position"}
        step = Send("GET", f"{_path(campaign_id)}/contacts", params=params)
        return (yield from self.hook._read_op(step, ContactPage))

    def iter_contact_pages(
        self, campaign_id: str, page_size: int = CONTACTS_PAGE
    ) -> Iterator[list[CampaignContact]]:
        """Every contact, a page at a time, in upload (dial) order: 10,000 contacts are 10 requests
        and never all in memory. Use it in a downstream task; XCom holds only the counters."""
        page = 1
        while True:
            got = self.hook._run(self._contacts_op(campaign_id, page, page_size))
            if got.results:
                yield got.results
            if not got.results or not got.has_next:
                return
            page += 1
