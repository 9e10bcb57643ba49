"""The example DAG ``vapi_appointment_reminders`` (tomorrow's appointments, called inside the
clinic's business hours) and ``make demo`` (the survey example on its own, from a fresh home)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.example_dags_support import (
    EXAMPLES,
    dag_bag,
    example_csv,
    get_call,
    post_bodies,
    results_rows,
    scripted_outcome,
)


def test_appointment_reminders_call_tomorrows_appointments(vapi_emulator, run_dag, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'results.db'}"

    dag_run = run_dag("vapi_appointment_reminders", results_db=db_url, call_window="now", timezone="UTC")

    tomorrow = (dag_run.data_interval_end.astimezone(UTC).date() + timedelta(days=1)).isoformat()
    due = [a for a in example_csv("appointments.csv") if a["days_ahead"] == "1"]
    bodies = post_bodies(vapi_emulator)
    assert sorted(b["customer"]["number"] for b in bodies) == sorted(a["number"] for a in due)
    for body in bodies:
        plan = body["schedulePlan"]
        earliest, latest = (datetime.fromisoformat(plan[k]) for k in ("earliestAt", "latestAt"))
        assert latest - earliest == timedelta(hours=1)
        assert body["assistantOverrides"]["firstMessage"].startswith(
            "Hello {{name}}, this is the clinic calling about your appointment tomorrow, {{appointmentDate}}"
        )
        assert body["assistantOverrides"]["variableValues"]["appointmentDate"] == tomorrow

    rows = results_rows(db_url, dag_run.run_id)
    assert sorted(r["person_id"] for r in rows) == sorted(a["patient_id"] for a in due)
    party = {a["patient_id"]: int(a["party_size"]) for a in due}
    for row in rows:
        call = get_call(vapi_emulator, row["call_id"])
        assert row["campaign"] == "reminders"
        assert row["outcome"] == scripted_outcome(call["customer"]["number"])
        assert row["structured_data"] == (call.get("analysis") or {}).get("structuredData")
        if row["structured_data"] is not None:
            # The emulator's assistant "hears" the values the DAG sent; the answers validate.
            assert row["answers_valid"] is True
            assert row["structured_data"]["appointmentDate"] == tomorrow
            assert row["structured_data"]["partySize"] == party[row["person_id"]]
    assert Counter(r["outcome"] for r in rows) == {"completed": 2, "not_reached": 1}


def _call_window(run_day: date, **params: Any) -> dict[str, str]:
    bag = dag_bag()
    task = bag.dags["vapi_appointment_reminders"].get_task("call_window")
    defaults = {"call_window": "business_hours", "timezone": "America/New_York"}
    defaults |= {"business_hours_start": "09:00", "business_hours_end": "17:00"}
    moment = datetime(run_day.year, run_day.month, run_day.day, 12, 0, tzinfo=UTC)
    return task.python_callable(params={**defaults, **params}, data_interval_end=moment)  # type: ignore[no-any-return]


def test_call_window_is_the_business_hours_of_the_run_day_in_the_clinics_timezone():
    from zoneinfo import ZoneInfo

    day = datetime.now(UTC).date() + timedelta(days=3)
    clinic = ZoneInfo("America/New_York")
    opens = datetime(day.year, day.month, day.day, 9, 0, tzinfo=clinic)
    closes = datetime(day.year, day.month, day.day, 17, 0, tzinfo=clinic)
    window = _call_window(day)
    assert window == {"earliestAt": opens.isoformat(), "latestAt": closes.isoformat()}
    assert window["earliestAt"].startswith(f"{day}T09:00:00-0")  # local time with its UTC offset


def test_call_window_skips_when_business_hours_are_over():
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="Too late to call today"):
        _call_window(datetime.now(UTC).date() - timedelta(days=2))


# -- make demo ----------------------------------------------------------------------------------


@pytest.mark.system
def test_make_demo_runs_the_survey_end_to_end(tmp_path):
    """``python -m example_dags.demo`` on its own: emulator subprocess, fresh Airflow home, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VAPI_EXAMPLES"))}
    env["VAPI_DEMO_DIR"] = str(tmp_path / "demo")
    done = subprocess.run(
        [sys.executable, "-m", "example_dags.demo"],
        cwd=EXAMPLES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Outcomes:   completed 7, not_reached 2, voicemail 1  (10 calls)" in done.stdout
    assert (tmp_path / "demo" / "vapi_call_results.db").exists()
