"""Test-only DAG of the distributed suite: a campaign of many people, placed and awaited in chunks.

``read_chunks`` reads the campaign's people from a PostgreSQL table (connection ``campaign_db``,
given to every component as ``AIRFLOW_CONN_CAMPAIGN_DB``) and splits them into chunks of
``chunk_size`` -> ``place_calls`` (mapped over the chunks, one batch ``POST /call`` each, in the
``vapi`` pool, retried without dialling twice) -> ``wait_for_calls`` (mapped, deferrable: one
trigger waits on one chunk's calls) -> ``load_results`` (one row per call, upserted by call id into
``campaign_call_results``).

Chunks, not one task per person: a mapped task run costs seconds of a worker slot on a 2-core
machine (starting the task process, parsing this file, talking to the API server). Measured with
``tests/distributed/measure_chunking.py`` (one core kept busy by stress-ng): 100 people took 179 s
with ``chunk_size=1`` (202 task instances, 302 worker runs: a deferrable wait runs twice; 3.8 s per
run, about 0.6 s of wall time each on the 8 slots) and 13 s warm (37 s cold) with ``chunk_size=20``
(12 task instances, 17 runs). A thousand people one by one would be about 3,000 runs, half an hour;
in chunks of 20 they are about 150.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_vapi.emulator.constants import ASSISTANT_ID, PHONE_NUMBER_ID
from airflow_provider_vapi.operators import PlaceCallOperator
from airflow_provider_vapi.sensors import CallStatusSensor

CONN_ID = "campaign_db"
PEOPLE_TABLE = "campaign_people"
RESULTS_TABLE = "campaign_call_results"
POOL = "vapi"
#: Seconds between the waits' status checks (the shared poll of each triggerer).
POLL_INTERVAL = float(os.environ.get("VAPI_DISTRIBUTED_POLL_INTERVAL", "5"))
#: Seconds after a call ended to wait for its analysis (the emulator writes it within seconds).
ANALYSIS_GRACE = float(os.environ.get("VAPI_DISTRIBUTED_ANALYSIS_GRACE", "30"))

CREATE_RESULTS = f"""
CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} (
    call_id TEXT PRIMARY KEY,
    customer_number TEXT NOT NULL,
    person_id TEXT,
    status TEXT NOT NULL,
    ended_reason TEXT,
    run_id TEXT NOT NULL
)
"""


def call_ids(placed: dict[str, Any]) -> list[str]:
    """The ids of one chunk's calls, from ``place_calls``' return value."""
    return list(placed["call_ids"])


with DAG(
    dag_id="vapi_distributed_campaign",
    description="A campaign of many people in chunks, on the distributed (Celery) deployment.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=64,
    tags=["vapi", "test"],
    params={
        "campaign": Param("default", type="string", description="campaign_people.campaign to call"),
        "chunk_size": Param(20, type="integer", minimum=1, description="people per place/wait task"),
    },
) as dag:

    @task
    def read_chunks(**context: Any) -> list[list[dict[str, Any]]]:
        """The campaign's people as chunks of PlaceCallOperator ``customers``."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        params = context["params"]
        rows = PostgresHook(postgres_conn_id=CONN_ID).get_records(
            f"SELECT person_id, name, number FROM {PEOPLE_TABLE} WHERE campaign = %s ORDER BY person_id",
            parameters=(params["campaign"],),
        )
        if not rows:
            raise ValueError(f"campaign {params['campaign']!r} has nobody to call")
        people = [{"number": number, "name": name, "externalId": pid} for pid, name, number in rows]
        size = int(params["chunk_size"])
        return [people[i : i + size] for i in range(0, len(people), size)]

    place_calls = PlaceCallOperator.partial(
        task_id="place_calls",
        assistant_id=ASSISTANT_ID,
        phone_number_id=PHONE_NUMBER_ID,
        name="Distributed campaign",
        pool=POOL,
        retries=3,  # safe: a retry re-attaches to the calls its earlier try placed
        retry_delay=timedelta(seconds=1),
    ).expand(customers=read_chunks())

    wait_for_calls = CallStatusSensor.partial(
        task_id="wait_for_calls",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        analysis_grace_period=ANALYSIS_GRACE,
        timeout=30 * 60,
        retries=2,
        retry_delay=timedelta(seconds=1),
    ).expand(call_id=place_calls.output.map(call_ids))

    @task
    def load_results(waits: Any, **context: Any) -> int:
        """One row per call (id, number, person, status, ended reason), upserted by call id."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        run_id = context["dag_run"].run_id
        rows = []
        # Index rather than iterate: mapped XComs are fetched one by one.
        for calls in (waits[i] for i in range(len(waits))):
            for call in calls:
                customer = call.get("customer") or {}
                rows.append(
                    (
                        call["id"],
                        customer.get("number"),
                        customer.get("externalId"),
                        call.get("status"),
                        call.get("endedReason"),
                        run_id,
                    )
                )
        hook = PostgresHook(postgres_conn_id=CONN_ID)
        hook.run(CREATE_RESULTS)
        fields = ["call_id", "customer_number", "person_id", "status", "ended_reason", "run_id"]
        hook.insert_rows(
            RESULTS_TABLE, rows, target_fields=fields, replace=True, replace_index="call_id", commit_every=500
        )
        print(f"Upserted {len(rows)} rows into {RESULTS_TABLE}")
        return len(rows)

    load_results(wait_for_calls.output)
