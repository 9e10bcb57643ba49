"""The "Vapi call" and "Vapi campaign" extra links, and the one place that knows their dashboard URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

XCOM_CALL_URL = "vapi_call_url"
XCOM_CALL_ID = "call_id"
DASHBOARD_CALL_URL = "https://dashboard.vapi.ai/calls/{call_id}"
XCOM_CAMPAIGN_URL = "vapi_campaign_url"
XCOM_CAMPAIGN_ID = "campaign_id"
DASHBOARD_CAMPAIGN_URL = "https://dashboard.vapi.ai/campaigns/{campaign_id}"


def dashboard_url(call_id: str) -> str:
    """The call's page in Vapi's dashboard."""
    return DASHBOARD_CALL_URL.format(call_id=call_id)


class _XComUrlLink(BaseOperatorLink):
    """A link to the URL the task pushed under ``xcom_key`` (empty until it pushed one)."""

    xcom_key = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return str(url) if url else ""


class VapiCallLink(_XComUrlLink):
    """Opens ``https://dashboard.vapi.ai/calls/<id>`` for the call the task placed or waited on."""

    name = "Vapi call"
    xcom_key = XCOM_CALL_URL


def campaign_url(campaign_id: str) -> str:
    """The campaign's page in Vapi's dashboard."""
    return DASHBOARD_CAMPAIGN_URL.format(campaign_id=campaign_id)


class VapiCampaignLink(_XComUrlLink):
    """Opens ``https://dashboard.vapi.ai/campaigns/<id>`` for the campaign the task ran or waited on."""

    name = "Vapi campaign"
    xcom_key = XCOM_CAMPAIGN_URL
