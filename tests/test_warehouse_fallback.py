"""The loaders' path for databases without our upsert SQL (MySQL, SQL Server ...):
``warehouse.replace_rows``, the hook's own ``insert_rows(replace=True)`` into an existing table.

Run for real on SQLite and PostgreSQL, whose hooks implement ``replace=True`` too, with the dialect
reported as one we have no upsert for. A second load after a row went stale must rewrite it, count
every row, and leave one row per key (a plain insert would duplicate or fail; a no-op would keep the
stale value).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_vapi.campaigns import contacts
from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.landing import warehouse as warehouse_module
from airflow_provider_vapi.operators import LoadCampaignContactsOperator
from tests.test_campaigns import body, numbers, wait_until_over
from tests.test_warehouse import DAY, export, load, query, warehouse  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("vapi_conn", "warehouse")  # warehouse: SQLite, then PostgreSQL


def report_another_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on both loaders see a database they have no upsert for."""
    for module in (warehouse_module, contacts):
        monkeypatch.setattr(module, "dialect_of", lambda hook: "otherdb")


def test_calls_are_replaced_by_id_on_a_database_without_our_upsert(vapi_emulator, tmp_path, monkeypatch):
    vapi_emulator.seed_calls(40, DAY, DAY + timedelta(days=1))
    summary = export(tmp_path, DAY, DAY + timedelta(days=1))
    assert load(summary)["rows"] == 40  # our upsert, which creates the table
    BaseHook.get_hook("warehouse").run("UPDATE vapi_calls SET ended_reason = 'stale'")
    report_another_dialect(monkeypatch)
    result = load(summary)
    assert result["rows"] == 40 and result["changed"] is None
    assert query("SELECT COUNT(*), COUNT(DISTINCT id) FROM vapi_calls") == [(40, 40)]
    assert query("SELECT COUNT(*) FROM vapi_calls WHERE ended_reason = 'stale'") == [(0,)]


def test_contacts_are_replaced_by_campaign_and_contact_on_a_database_without_our_upsert(
    vapi_emulator, monkeypatch
):
    emu, people = vapi_emulator, numbers("310", 12)
    hook = VapiHook()
    campaign = CampaignApi(hook).create(body(emu, people, maxConcurrency=6), "fallback-load")
    wait_until_over(hook, campaign.id)

    def load_contacts() -> dict[str, Any]:
        op = LoadCampaignContactsOperator(task_id="load", campaign_id=campaign.id, conn_id="warehouse")
        result: dict[str, Any] = op.execute({})
        return result

    assert load_contacts()["rows"] == len(people)  # our upsert, which creates the table
    BaseHook.get_hook("warehouse").run("UPDATE vapi_campaign_contacts SET status = 'stale'")
    report_another_dialect(monkeypatch)
    assert load_contacts()["rows"] == len(people)
    assert query(
        "SELECT COUNT(*), COUNT(DISTINCT contact_id) FROM vapi_campaign_contacts"
    ) == [(len(people), len(people))]
    assert query("SELECT COUNT(*) FROM vapi_campaign_contacts WHERE status = 'stale'") == [(0,)]
