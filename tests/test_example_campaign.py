"""The example DAG ``vapi_campaign_from_table`` with 2,000 people: one call per person, the
operator's counters equal to the emulator's, and every contact's result loaded into the table."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from typing import Any

from airflow_provider_vapi.emulator.outcomes import outcome_for
from airflow_provider_vapi.models import classify_ended_reason
from tests.dag_runner import xcom

PEOPLE = 2000


def _people(path: Any) -> list[str]:
    scripted = [f"+155530{suffix}" for suffix in ("00001", "00002", "00003", "00004", "00005", "00007")]
    numbers = scripted + [f"+1555{3001000 + i:07d}" for i in range(PEOPLE - len(scripted))]  # the rest: conversations
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (number TEXT PRIMARY KEY, name TEXT, appointment TEXT, opted_out INTEGER)")
        rows = [(n, f"P{i}", f"slot {i % 9}", 1 if i % 100 == 99 else 0) for i, n in enumerate(numbers)]
        db.executemany("INSERT INTO people VALUES (?, ?, ?, ?)", rows)
    return [n for i, n in enumerate(numbers) if i % 100 != 99]


def test_a_2000_person_campaign_calls_each_once_and_loads_every_result(vapi_emulator, run_dag, tmp_path, monkeypatch):
    warehouse = tmp_path / "w.db"
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))
    wanted = _people(warehouse)
    vapi_emulator.configure(concurrency_limit=250)  # the account's limit, as a big account's would be
    dag_run = run_dag("vapi_campaign_from_table", people_table="people", max_concurrency=250)
    summary = xcom(dag_run, "campaign")
    campaign_id = summary["campaign_id"]

    calls = [c for c in vapi_emulator.calls() if c.get("campaignId") == campaign_id]
    assert Counter(c["customer"]["number"] for c in calls) == Counter(wanted), "one call per person, nobody else"
    (post,) = vapi_emulator.requests(method="POST", path="/v2/campaign")
    assert post["body"]["customers"][0]["assistantOverrides"] == {"variableValues": {"appointment": "slot 0"}}

    with vapi_emulator.client() as http:
        vapi = http.get(f"/v2/campaign/{campaign_id}", params={"includeCounters": "true"}).json()
    assert summary["status"] == vapi["status"] == "ended"
    assert summary["counters"] == {
        "pending": vapi["contactCounters"]["pending"],
        "dispatched": vapi["contactCounters"]["dispatched"],
        "completed": vapi["contactCounters"]["completed"],
        "failed": vapi["contactCounters"]["failed"],
        "skipped": vapi["contactCounters"]["skipped"],
        "predial_failed": vapi["contactCounters"]["predialFailed"],
    }
    assert summary["call_metrics"] == vapi["callMetrics"]
    assert summary["contacts"] == len(wanted)

    by_call = {c["id"]: c for c in calls}
    with sqlite3.connect(warehouse) as db:
        rows = db.execute("SELECT number, call_id, status, ended_reason, outcome, position FROM vapi_campaign_contacts").fetchall()
    assert len(rows) == len(wanted)
    assert sorted(r[5] for r in rows) == list(range(len(wanted)))
    for number, call_id, status, ended_reason, outcome, _ in rows:
        call = by_call[call_id]
        assert call["customer"]["number"] == number
        assert ended_reason == call["endedReason"]
        assert outcome == classify_ended_reason(call["endedReason"]).value
        assert status == ("contact.completed" if outcome_for(number).dials else "contact.failed")
    loaded = xcom(dag_run, "load_contacts")
    assert loaded["rows"] == len(wanted) and sum(loaded["by_outcome"].values()) == len(wanted)
