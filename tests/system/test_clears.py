"""Clearing a task long after its run finished re-attaches to its call; it never dials again.

A clear is another try of the same task instance (same key). Airflow resets the run's
``start_date`` and ``queued_at`` when it clears a finished run, and this deployment empties the task
state store on success, so the operator must find the call on Vapi's side over the *whole* run
(``run_after``, the logical date), however long ago that was: the path Airflow 2.11 always takes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .deployment import AirflowApi, AirflowDeployment, Emulator

DAG_ID = "vapi_call_and_wait"
_SHIFTED = ("run_after", "logical_date", "queued_at", "start_date", "end_date", "data_interval_start", "data_interval_end")


def _earlier(value: Any, by: timedelta) -> Any:
    if isinstance(value, datetime):
        return value - by
    if isinstance(value, str):  # SQLite keeps timestamps as text: keep its format
        return (datetime.fromisoformat(value) - by).isoformat(sep=" ")
    return value


def age_the_run(deployment: AirflowDeployment, run_id: str, by: timedelta, dag_id: str = DAG_ID) -> None:
    """Move every timestamp of the run ``by`` into the past: the run happened that long ago."""
    url = deployment.db_url or f"sqlite:///{deployment.home / 'airflow.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as db:
            columns = {c["name"] for c in sa.inspect(db).get_columns("dag_run")}
            names = [n for n in _SHIFTED if n in columns]
            row = db.execute(
                sa.text(f"SELECT {', '.join(names)} FROM dag_run WHERE dag_id = :d AND run_id = :r"),
                {"d": dag_id, "r": run_id},
            ).one()
            values = {n: _earlier(v, by) for n, v in zip(names, row, strict=True)}
            assignments = ", ".join(f"{n} = :{n}" for n in names)
            db.execute(
                sa.text(f"UPDATE dag_run SET {assignments} WHERE dag_id = :d AND run_id = :r"),
                {**values, "d": dag_id, "r": run_id},
            )
    finally:
        engine.dispose()


def test_a_clear_an_hour_later_reattaches_to_the_call(
    deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator
) -> None:
    deployment.wait_for_dags([DAG_ID])
    number = "+15551300123"
    run_id = api.trigger(DAG_ID, {"customer_number": number, "customer_name": "Ada"})
    assert api.wait_for_run(DAG_ID, run_id, 180)["state"] == "success"
    call_id = api.xcom(DAG_ID, run_id, "place_call")

    # An hour passes: the run and its call are an hour old when somebody clears the task.
    hour = timedelta(hours=1)
    emulator.handle.backdate_call(call_id, hour.total_seconds())
    age_the_run(deployment, run_id, hour)
    api.clear(DAG_ID, run_id, ["place_call"])
    run = api.wait_for_run(DAG_ID, run_id, 180)
    assert run["state"] == "success", api.states(DAG_ID, run_id)

    (ti,) = api.task_instances(DAG_ID, run_id, "place_call")
    assert ti["try_number"] == 2, "the clear ran the task again"
    assert api.xcom(DAG_ID, run_id, "place_call") == call_id, "it re-attached to the same call"
    creates = [r for r in emulator.handle.requests("POST", "/call") if r["body"]["customer"]["number"] == number]
    assert len(creates) == 1, f"a clear must not dial again: {len(creates)} creates for {number}"
