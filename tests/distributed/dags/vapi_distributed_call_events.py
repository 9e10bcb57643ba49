"""Test-only DAG of the distributed suite: a call-event watcher beside the campaign, on a
deployment with two triggerers (``test_campaign.py`` checks that each campaign call is one asset
event, whichever triggerer runs the watcher and after triggerer A is SIGKILLed)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_vapi.triggers import VapiCallEventTrigger

POLL_INTERVAL = float(os.environ.get("VAPI_DISTRIBUTED_POLL_INTERVAL", "5"))
ASSET = "vapi_distributed_ended_calls"
DAG_ID = "vapi_distributed_on_call"

ENDED = Asset(
    ASSET,
    watchers=[
        AssetWatcher(
            name="vapi_distributed_watcher",
            trigger=VapiCallEventTrigger(direction="outbound", poll_interval=POLL_INTERVAL, analysis_grace_period=30),
        )
    ],
)

with DAG(DAG_ID, start_date=datetime(2026, 1, 1), schedule=[ENDED], catchup=False, max_active_runs=16):

    @task
    def count(triggering_asset_events: Any = None) -> int:
        return sum(len(events) for events in triggering_asset_events.values())

    count()
