"""The "Vapi call" and "Vapi campaign" extra links, and the one place that knows their dashboard URLs.

A task pushes its link's URL to XCom the moment the call or campaign exists
(:meth:`LinkUrlsMixin.push_link_url`); the link reads it back. Airflow 3 also asks every link of a
task when the task ends, in the task's own process. There, a fresh try knows what it pushed
(Airflow cleared the try's XComs when it started), so the link answers from memory: reading a URL
the try never pushed (bad input, a create that failed) made Airflow log "XCom not found" as an
error beside the task's real one. A try resumed from a trigger, the UI, and Airflow 2 read XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
        if isinstance(operator, LinkUrlsMixin) and not operator.resumed_from_trigger:
            return operator.pushed_link_urls.get(self.xcom_key, "")  # this try's own (module doc)
        url = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return str(url) if url else ""


class LinkUrlsMixin:
    """Mixed into the operators with a Vapi link: push the URL, and remember this try pushed it."""

    #: ``True`` once this operator object resumes from a trigger (a new process: memory is empty).
    resumed_from_trigger = False

    @property
    def pushed_link_urls(self) -> dict[str, str]:
        """The link URLs this operator object pushed, by XCom key."""
        return self.__dict__.setdefault("_vapi_link_urls", {})  # type: ignore[no-any-return]

    def push_link_url(self, ti: Any, key: str, url: str) -> None:
        ti.xcom_push(key=key, value=url)
        self.pushed_link_urls[key] = url

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        """Every resume from a trigger, ``execute_complete`` or a trigger failure, comes here."""
        self.resumed_from_trigger = True
        return super().resume_execution(next_method, next_kwargs, context)  # type: ignore[misc]


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
