"""The example DAG ``vapi_daily_export`` run with ``dag.test()`` against the emulator: the day's
calls, recordings and warehouse rows, and nothing new on a second run of the same day."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.dag_runner import xcom


def test_daily_export_lands_the_days_calls_recordings_and_rows(vapi_emulator, run_dag, tmp_path, monkeypatch):
    """The run covers the last complete UTC day: every call Vapi changed that day (inbound ones
    too) is in the day's file, each recorded call's audio beside it, one row per call in the
    warehouse; a second run of the same day adds no row and downloads nothing."""
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for start in (today - timedelta(days=2), today - timedelta(days=1), today):
        vapi_emulator.seed_calls(60, start, start + timedelta(hours=23), call_type="mixed")
    first = xcom(run_dag("vapi_daily_export", path=str(tmp_path / "bucket")), "export")
    after, before = (datetime.fromisoformat(first[k].replace("Z", "+00:00")) for k in ("updated_after", "updated_before"))
    assert before - after == timedelta(days=1)
    day = {
        c["id"]
        for c in vapi_emulator.calls()
        if after <= datetime.fromisoformat(c["updatedAt"].replace("Z", "+00:00")) < before
    }
    assert first["calls"] == len(day) == 60
    exported = [json.loads(line)["id"] for line in Path(first["path"]).read_text().splitlines()]
    assert set(exported) == day
    assert first["recordings"]["copied"] > 0 and first["recordings"]["failed"] == 0
    vapi_emulator.clear_requests()
    second = xcom(run_dag("vapi_daily_export", path=str(tmp_path / "bucket")), "export")
    assert second["recordings"]["copied"] == 0 and second["recordings"]["present"] == first["recordings"]["copied"]
    assert not [e for e in vapi_emulator.requests("GET") if e["path"].startswith("/_storage/")]
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM vapi_calls").fetchall() == [(60, 60)]
