"""The "Vapi call" extra link, and the one place that knows a call's dashboard URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

XCOM_CALL_URL = "vapi_call_url"
XCOM_CALL_ID = "call_id"
DASHBOARD_CALL_URL = "https://dashboard.vapi.ai/calls/{call_id}"


def dashboard_url(call_id: str) -> str:
    """The call's page in Vapi's dashboard."""
    return DASHBOARD_CALL_URL.format(call_id=call_id)


class VapiCallLink(BaseOperatorLink):
    """Opens ``https://dashboard.vapi.ai/calls/<id>`` for the call the task placed or waited on."""

    name = "Vapi call"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=XCOM_CALL_URL, ti_key=ti_key)
        return str(url) if url else ""
