"""TEST FIXTURE of the system suite (``tests/system/test_moved_rows.py``), not an example.

The upstream "query" has no ``ORDER BY``: after a clear it answers the same people in another
order, with one new person on top. Three consumers of its rows: a mapped call per row
(``expand_kwargs``), one batch, and a campaign per chunk (``expand``). Cleared, each must find the
calls and campaigns of the people it already reached, whatever position they moved to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_vapi.emulator.constants import ASSISTANT_ID, PHONE_NUMBER_ID
from airflow_provider_vapi.operators import PlaceCallOperator, RunCampaignOperator

DAG_ID = "vapi_moved_rows"
#: Numbers of this DAG alone (the suite tells tests' calls apart by number).
PEOPLE = ["+15551470001", "+15551470002", "+15551470003"]
NEWCOMER = "+15551470000"
BATCH = ["+15551471001", "+15551471002", "+15551471003"]
BATCH_NEWCOMER = "+15551471000"
CHUNKS = [["+15551472001", "+15551472002"], ["+15551472003", "+15551472004"]]
CHUNK_NEWCOMER = "+15551472000"


def _cleared(dag_run: Any) -> bool:
    return int(getattr(dag_run, "clear_number", 0) or 0) > 0


with DAG(DAG_ID, start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:

    @task
    def rows(dag_run: Any = None) -> list[dict[str, Any]]:
        first = [{"customer": n} for n in PEOPLE]
        return [{"customer": NEWCOMER}, first[1], first[0], first[2]] if _cleared(dag_run) else first

    @task
    def batch_list(dag_run: Any = None) -> list[str]:
        return [BATCH_NEWCOMER, BATCH[2], BATCH[0], BATCH[1]] if _cleared(dag_run) else list(BATCH)

    @task
    def chunks(dag_run: Any = None) -> list[list[str]]:
        # A newcomer on top shifts every chunk by one: chunk 2 is new and holds chunk 1's people.
        return [[CHUNK_NEWCOMER], CHUNKS[0], CHUNKS[1]] if _cleared(dag_run) else [list(c) for c in CHUNKS]

    PlaceCallOperator.partial(
        task_id="call", assistant_id=ASSISTANT_ID, phone_number_id=PHONE_NUMBER_ID
    ).expand_kwargs(rows())
    PlaceCallOperator(
        task_id="batch", assistant_id=ASSISTANT_ID, phone_number_id=PHONE_NUMBER_ID, customers=batch_list()
    )
    RunCampaignOperator.partial(
        task_id="campaign",
        assistant_id=ASSISTANT_ID,
        phone_number_id=PHONE_NUMBER_ID,
        wait_for_completion=False,
    ).expand(customers=chunks())
