"""Every contact's result, landed in a table: ``LoadCampaignContactsOperator``.

The contacts are paged from Vapi (``GET /v2/campaign/{id}/contacts``, 1,000 a request) straight into
any ``common.sql`` database, one row per contact keyed by ``(campaign_id, contact_id)``, in one
transaction, so 10,000 contacts never pass through XCom and a load run again (a retry, a clear)
rewrites the same rows. Join ``call_id`` with the calls table of ``LoadCallsOperator`` for what
each call learned (transcript, structured outputs, cost). The table name and the campaign id are
checked before the database is reached; text is stored as :func:`.rows.storable` keeps it
(NUL characters removed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from airflow.providers.common.compat.sdk import BaseHook, BaseOperator

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.models import CampaignContact
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.landing.rows import Column, as_text_times
from airflow_provider_vapi.landing.warehouse import (
    UPSERT_DIALECTS,
    check_table,
    create_table_sql,
    dialect_of,
    replace_rows,
    upsert_rows,
    upsert_sql,
)
from airflow_provider_vapi.rendering.gate import RenderingGate
from airflow_provider_vapi.wire.ids import checked_id

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

DEFAULT_CONTACTS_TABLE: Final = "vapi_campaign_contacts"
CONTACT_COLUMNS: Final[tuple[Column, ...]] = (
    Column("campaign_id", "text", "The campaign (primary key with contact_id)."),
    Column("contact_id", "text", "Vapi's id of the contact within the campaign."),
    Column("position", "number", "The contact's place in the uploaded list (0-based), which is dial order."),
    Column("number", "text", "The customer's phone number."),
    Column("name", "text", "The customer's name, when given."),
    Column("status", "text", "contact.pending, dispatched, completed, failed, skipped or predial-failed."),
    Column("call_id", "text", "The call placed for the contact (join with vapi_calls.id)."),
    Column("dispatched_at", "time", "When the call was placed (UTC)."),
    Column("ended_reason", "text", "The call's endedReason, or why the contact got no call."),
    Column(
        "outcome", "text", "The outcome class: completed, not_reached, voicemail, canceled, error, unknown."
    ),
)
CONTACT_NAMES: Final = tuple(c.name for c in CONTACT_COLUMNS)
_KEY: Final = ("campaign_id", "contact_id")


def contact_row(campaign_id: str, position: int, contact: CampaignContact) -> dict[str, Any]:
    """One table row of a contact."""
    return {
        "campaign_id": campaign_id,
        "contact_id": contact.id,
        "position": position,
        "number": contact.number,
        "name": contact.name,
        "status": contact.status,
        "call_id": contact.call_id,
        "dispatched_at": contact.dispatched_at,
        "ended_reason": contact.ended_reason,
        "outcome": contact.outcome.value,
    }


class LoadCampaignContactsOperator(RenderingGate, BaseOperator):
    """Upsert every contact of a campaign (status, call id, ended reason, outcome class) into a SQL
    table of any ``common.sql`` connection.

    :param campaign_id: templated; e.g. ``"{{ ti.xcom_pull(task_ids='campaign', key='campaign_id') }}"``.
    :param conn_id: the Airflow connection of the database (``postgres``, ``sqlite`` ...).
    :param table: the table (templated), created if missing when ``create_table``.
    :param create_table: ``CREATE TABLE IF NOT EXISTS`` with the documented columns first.
    :param vapi_conn_id: the Airflow connection of the Vapi account.

    Returns ``{"table", "rows", "by_status", "by_outcome"}``: counts only.
    """

    template_fields: Sequence[str] = ("campaign_id", "conn_id", "table", "vapi_conn_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        campaign_id: str,
        conn_id: str,
        table: str = DEFAULT_CONTACTS_TABLE,
        create_table: bool = True,
        vapi_conn_id: str = VapiHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.campaign_id = campaign_id
        self.conn_id = conn_id
        self.table = table
        self.create_table = create_table
        self.vapi_conn_id = vapi_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        table = check_table(self.table)
        campaign_id = checked_id(self.campaign_id, "campaign_id")  # before the database is reached
        by_status: dict[str, int] = {}
        by_outcome: dict[str, int] = {}

        def rows() -> Iterator[dict[str, Any]]:
            position = 0
            for page in CampaignApi(VapiHook(self.vapi_conn_id)).iter_contact_pages(campaign_id):
                for contact in page:
                    row = contact_row(campaign_id, position, contact)
                    by_status[contact.status] = by_status.get(contact.status, 0) + 1
                    by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + 1
                    position += 1
                    yield as_text_times(row) if dialect == "sqlite" else row

        db = BaseHook.get_hook(self.conn_id)
        dialect = dialect_of(db)
        if dialect not in UPSERT_DIALECTS:
            read = replace_rows(db, table, rows(), CONTACT_NAMES, _KEY)
        else:
            sql = upsert_sql(table, db.placeholder, CONTACT_NAMES, _KEY, newest_wins=False)
            create = create_table_sql(table, dialect, CONTACT_COLUMNS, _KEY) if self.create_table else None
            read, _ = upsert_rows(db, sql, rows(), CONTACT_NAMES, create)
        self.log.info("Loaded %d contacts of campaign %s into %s: %s", read, campaign_id, table, by_outcome)
        return {"table": table, "rows": read, "by_status": by_status, "by_outcome": by_outcome}
