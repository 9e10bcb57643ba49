"""Extract a structured output from every call of a day: the backfill after adding or changing one.

``extract`` (``RunStructuredOutputOperator``, deferrable) -> ``report``.

Each daily run asks Vapi to run the structured output over the calls created in its data interval
(at most 100 per request), waits in the triggerer until the results are on the calls, and hands
``{call id: result}`` on. It is safe to retry: calls that already hold a fresh result are not asked
for again, and a retry waits for results an earlier try asked for instead of asking twice.

Needs a connection ``vapi_default`` and a saved structured output (``POST /structured-output`` or
Vapi's dashboard): ``airflow dags trigger vapi_structured_output_backfill -c
'{"structured_output_id": "<id>"}'``. ``created_after`` / ``created_before`` override the data
interval (ISO 8601); ``assistant_id`` keeps one assistant's calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task
from vapi_example_support import POLL_INTERVAL

from airflow_provider_vapi.operators import RunStructuredOutputOperator

with DAG(
    dag_id="vapi_structured_output_backfill",
    description="Run a structured output over each day's Vapi calls and hand the results on.",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["vapi", "example"],
    params={
        "structured_output_id": Param(
            "", type="string", description="the saved structured output (required)"
        ),
        "assistant_id": Param("", type="string", description="only this assistant's calls (optional)"),
        "created_after": Param("", type="string", description="ISO 8601; default: the data interval's start"),
        "created_before": Param("", type="string", description="ISO 8601; default: the data interval's end"),
    },
) as dag:
    extract = RunStructuredOutputOperator(
        task_id="extract",
        structured_output_id="{{ params.structured_output_id }}",
        created_after="{{ params.created_after or data_interval_start }}",
        created_before="{{ params.created_before or data_interval_end }}",
        assistant_id="{{ params.assistant_id }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        retries=2,  # safe: a retry never asks Vapi twice for the same call
    )

    @task
    def report(extracted: dict[str, Any]) -> dict[str, int]:
        """What the run extracted, as the task's log shows it."""
        counts = {key: len(extracted[key]) for key in ("results", "skipped", "missing")}
        print(
            f"{extracted['name']!r}: {counts['results']} results, {counts['skipped']} calls without a conversation"
        )
        return counts

    report(extract.output)
