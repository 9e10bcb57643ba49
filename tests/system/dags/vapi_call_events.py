"""TEST FIXTURE of the system suite (``tests/system/test_call_events.py``), not an example.

Two watchers with different filters, each on its own asset and DAG. Only calls that carry this
suite's metadata match (the suite's emulator serves every system test).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_vapi.emulator.constants import ASSISTANT_ID
from airflow_provider_vapi.triggers import VapiCallEventTrigger

TAG = {"suite": "call-events"}
INBOUND = Asset(
    "vapi_sys_inbound_calls",
    watchers=[
        AssetWatcher(
            name="vapi_sys_inbound",
            trigger=VapiCallEventTrigger(
                direction="inbound", metadata=TAG, poll_interval=1.0, analysis_grace_period=5
            ),
        )
    ],
)
TALKED = Asset(
    "vapi_sys_talked_calls",
    watchers=[
        AssetWatcher(
            name="vapi_sys_talked",
            trigger=VapiCallEventTrigger(
                assistant_id=ASSISTANT_ID,
                outcomes=["completed", "voicemail"],
                metadata=TAG,
                poll_interval=1.0,
                analysis_grace_period=5,
            ),
        )
    ],
)


def _consumer(dag_id: str, asset: Asset) -> DAG:
    with DAG(
        dag_id, start_date=datetime(2026, 1, 1), schedule=[asset], catchup=False, max_active_runs=64
    ) as dag:

        @task
        def calls(triggering_asset_events: Any = None) -> list[str]:
            """The ids of the calls that started this run."""
            return [e.extra["payload"]["id"] for events in triggering_asset_events.values() for e in events]

        calls()
    return dag


inbound_dag = _consumer("vapi_sys_on_inbound_call", INBOUND)
talked_dag = _consumer("vapi_sys_on_talked_call", TALKED)
