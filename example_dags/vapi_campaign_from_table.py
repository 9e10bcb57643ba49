"""A Vapi campaign from a database table, every contact's result back into a table.

``load_people`` (stands in for your CRM: copies the shipped sample into ``campaign_people`` when
that table does not exist yet) -> ``select_people`` (SQL: who is to be called today) ->
``campaign`` (``RunCampaignOperator``: one ``POST /v2/campaign``; Vapi paces the calls under
``max_concurrency``, the task waits deferred, holding no worker slot) -> ``load_contacts``
(``LoadCampaignContactsOperator``: one row per person in ``vapi_campaign_contacts``: status, call
id, ended reason, outcome class) -> ``report``.

Why a campaign and not mapped ``PlaceCallOperator`` tasks: for hundreds or thousands of people it
is one request and one waiting task instead of one task per person, Vapi does the pacing and the
retries of blocked calls within its ``schedulePlan``, and ``max_map_length`` does not apply. Mapped
calls stay the right tool for tens of calls with logic per call.

Safe to retry and to clear: the campaign carries a tag naming the task instance, so a retry (even
after Vapi's answer to the create was lost) or a clear days later finds it instead of calling
everyone again. A wait that times out (``timeout``) cancels the campaign: nobody not yet called is
called; live calls finish.

Needs ``vapi_default`` and a SQL connection ``vapi_warehouse`` (e.g.
``AIRFLOW_CONN_VAPI_WAREHOUSE='sqlite:////tmp/vapi_warehouse.db'``; PostgreSQL in production).
Each person's ``appointment`` column becomes the ``{{appointment}}`` variable of their call.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, BaseHook, Param, task
from vapi_example_support import DATA_DIR, DEFAULT_ASSISTANT_ID, DEFAULT_PHONE_NUMBER_ID, POLL_INTERVAL

from airflow_provider_vapi.operators import LoadCampaignContactsOperator, RunCampaignOperator

with DAG(
    dag_id="vapi_campaign_from_table",
    description="Call everyone in a table through one Vapi campaign; land each person's result in a table.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["vapi", "example", "campaign"],
    params={
        "warehouse_conn_id": Param("vapi_warehouse", type="string", description="SQL connection"),
        "people_table": Param("campaign_people", type="string", description="number, name, appointment, opted_out"),
        "contacts_table": Param("vapi_campaign_contacts", type="string", description="results, created if missing"),
        "assistant_id": Param(DEFAULT_ASSISTANT_ID, type="string"),
        "phone_number_id": Param(DEFAULT_PHONE_NUMBER_ID, type="string"),
        "max_concurrency": Param(10, type="integer", minimum=1, description="calls at once"),
    },
) as dag:

    @task
    def load_people(params: dict[str, Any]) -> None:
        """Example only: fill the people table from the shipped CSV if it does not exist yet."""
        db = BaseHook.get_hook(params["warehouse_conn_id"])
        table = params["people_table"]
        db.run(f"CREATE TABLE IF NOT EXISTS {table} (number TEXT PRIMARY KEY, name TEXT, appointment TEXT, opted_out INTEGER)")
        if db.get_first(f"SELECT COUNT(*) FROM {table}")[0]:
            return
        with (DATA_DIR / "campaign_people.csv").open() as rows:
            people = [(r["number"], r["name"], r["appointment"], int(r["opted_out"])) for r in csv.DictReader(rows)]
        db.insert_rows(table, people, target_fields=["number", "name", "appointment", "opted_out"])

    @task
    def select_people(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Who is called: everyone who has not opted out, in a stable order."""
        db = BaseHook.get_hook(params["warehouse_conn_id"])
        sql = f"SELECT number, name, appointment FROM {params['people_table']} WHERE opted_out = 0 ORDER BY number"
        return [{"number": n, "name": name, "appointment": a} for n, name, a in db.get_records(sql)]

    people = select_people()
    load_people() >> people

    campaign = RunCampaignOperator(
        task_id="campaign",
        customers=people,
        customer_variables=["appointment"],
        assistant_id="{{ params.assistant_id }}",
        phone_number_id="{{ params.phone_number_id }}",
        max_concurrency="{{ params.max_concurrency }}",
        name="Appointment reminders {{ ds }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=6).total_seconds(),
        retries=2,  # safe: a retry re-attaches to the campaign, never creates a second one
    )
    contacts = LoadCampaignContactsOperator(
        task_id="load_contacts",
        campaign_id="{{ ti.xcom_pull(task_ids='campaign', key='campaign_id') }}",
        conn_id="{{ params.warehouse_conn_id }}",
        table="{{ params.contacts_table }}",
        retries=2,  # safe: one transaction, an upsert by (campaign_id, contact_id)
    )

    @task
    def report(summary: dict[str, Any], loaded: dict[str, Any]) -> str:
        """One line for the log: how far the campaign got, and where each result went."""
        line = (
            f"campaign {summary['campaign_id']} {summary['status']}: {summary['counters']} "
            f"dialed {summary['call_metrics']['dialed']}, connected {summary['call_metrics']['connected']}; "
            f"{loaded['rows']} contacts into {loaded['table']} by outcome {loaded['by_outcome']}"
        )
        print(line)
        return line

    campaign >> contacts
    report(campaign.output, contacts.output)
