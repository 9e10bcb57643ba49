"""Daily: yesterday's Vapi calls to the bucket, their recordings beside them, one row per call in the warehouse.

``export`` (``ExportCallsOperator``) -> ``load`` (``LoadCallsOperator``) -> ``report``.

Every call Vapi changed during the data interval (a UTC day), whoever placed it: this DAG's
neighbours, campaigns, the dashboard, inbound callers. ``export`` writes them to
``<path>/calls_<day>_<next day>.jsonl`` and copies each ended call's mono recording to
``<path>/recordings/<day>/`` before Vapi's links expire; ``load`` upserts one row per call into
the table ``vapi_calls`` of the SQL connection ``vapi_warehouse`` (SQLite locally, PostgreSQL in
production: the same DAG). Rerunning a day, or backfilling a month
(``airflow dags backfill vapi_daily_export -s 2026-11-01 -e 2026-11-30``), rewrites that day's file,
downloads only recordings that are missing, and never doubles a row.

Needs the connections ``vapi_default`` and ``vapi_warehouse`` (e.g.
``AIRFLOW_CONN_VAPI_WAREHOUSE='sqlite:////tmp/vapi_warehouse.db'``) and a ``path``
(``s3://bucket/vapi`` with ``storage_conn_id``, or a local folder: the default is
``$AIRFLOW_HOME/vapi-export``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_vapi.operators import ExportCallsOperator, LoadCallsOperator

DEFAULT_PATH = str(Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "vapi-export")

with DAG(
    dag_id="vapi_daily_export",
    description="Export each day's Vapi calls and recordings to storage and upsert them into a SQL table.",
    # A data interval per UTC day (a cron string would give Airflow 3's empty trigger intervals).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["vapi", "example"],
    params={
        "path": Param(DEFAULT_PATH, type="string", description="folder or URL (s3://, gs://, file://)"),
        "storage_conn_id": Param("", type="string", description="Airflow connection for path (optional)"),
        "warehouse_conn_id": Param("vapi_warehouse", type="string", description="SQL connection"),
        "table": Param("vapi_calls", type="string", description="the table, created if missing"),
    },
) as dag:
    export = ExportCallsOperator(
        task_id="export",
        path="{{ params.path }}",
        storage_conn_id="{{ params.storage_conn_id }}",
        format="jsonl",
        include_recordings=True,
        retries=2,  # safe: the file is replaced whole, recordings already copied are skipped
    )
    load = LoadCallsOperator(
        task_id="load",
        source=export.output,
        conn_id="{{ params.warehouse_conn_id }}",
        table="{{ params.table }}",
        storage_conn_id="{{ params.storage_conn_id }}",
        retries=2,  # safe: one transaction, and an upsert by call id
    )

    @task
    def report(exported: dict[str, Any], loaded: dict[str, Any]) -> str:
        """One line for the log: what the day held and where it went."""
        recordings = exported["recordings"] or {}
        line = (
            f"{exported['calls']} calls of [{exported['updated_after']}, {exported['updated_before']}) "
            f"-> {exported['path']}; recordings: {recordings.get('copied', 0)} copied, "
            f"{recordings.get('present', 0)} already there, {recordings.get('without', 0)} calls without; "
            f"{loaded['rows']} rows into {loaded['table']}"
        )
        print(line)
        return line

    report(export.output, load.output)
