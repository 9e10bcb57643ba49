"""The "Vapi call" extra link: from a task to its call in Vapi's dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

XCOM_CALL_URL = "vapi_call_url"
XCOM_CALL_ID = "call_id"


class VapiCallLink(BaseOperatorLink):
    """Opens ``https://dashboard.vapi.ai/calls/<id>`` for the call the task placed or waited on."""

    name = "Vapi call"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=XCOM_CALL_URL, ti_key=ti_key)
        return str(url) if url else ""
