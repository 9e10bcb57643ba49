"""The campaign example on a real Airflow: a clear an hour after the run finished re-attaches to
the campaign; nobody is called twice. The deployment empties the task state store on success, so
the clear must find the campaign on Vapi's side by its tag, over the whole run."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import timedelta

from .deployment import AirflowApi, AirflowDeployment, Emulator
from .test_clears import age_the_run

DAG_ID = "vapi_campaign_from_table"


def test_a_clear_an_hour_later_creates_no_second_campaign(
    deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator
) -> None:
    deployment.wait_for_dags([DAG_ID])
    table = "people_clear_test"
    run_id = api.trigger(DAG_ID, {"people_table": table, "contacts_table": "contacts_clear_test"})
    assert api.wait_for_run(DAG_ID, run_id, 240)["state"] == "success", api.states(DAG_ID, run_id)
    campaign_id = api.xcom(DAG_ID, run_id, "campaign", key="campaign_id")

    age_the_run(deployment, run_id, timedelta(hours=1), DAG_ID)
    api.clear(DAG_ID, run_id, ["campaign"])
    run = api.wait_for_run(DAG_ID, run_id, 240)
    assert run["state"] == "success", api.states(DAG_ID, run_id)
    (ti,) = api.task_instances(DAG_ID, run_id, "campaign")
    assert ti["try_number"] == 2, "the clear ran the task again"
    assert api.xcom(DAG_ID, run_id, "campaign", key="campaign_id") == campaign_id

    creates = emulator.handle.requests("POST", "/v2/campaign")
    ours = [r for r in creates if r["body"]["name"].startswith("Appointment reminders")]
    assert len(ours) == 1, f"a clear must not create a second campaign: {len(ours)} creates"
    calls = [c for c in emulator.handle.calls() if c.get("campaignId") == campaign_id]
    per_person = Counter(c["customer"]["number"] for c in calls)
    assert len(per_person) == 19 and set(per_person.values()) == {1}, "19 people (one opted out), once each"
    with sqlite3.connect(deployment.home / "warehouse.db") as db:
        rows = db.execute("SELECT COUNT(*), COUNT(call_id) FROM contacts_clear_test WHERE campaign_id = ?", (campaign_id,)).fetchall()
    assert rows == [(19, 19)], "every contact loaded, twice over without doubling"
