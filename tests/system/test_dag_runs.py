"""The example DAGs on a real Airflow, driven through the REST API as a user's scheduler would.

Proves: dag runs triggered over ``/api/v2`` succeed end to end against the emulator; every call's
result (``structuredData``) reaches XCom, the results table and the asset event; and deferrable
waits hold no worker slot: while calls are in progress their sensors are ``deferred``, owned by the
triggerer, with no task process alive and no pool slot taken.
"""

from __future__ import annotations

import os
from pathlib import Path

from .campaign import (
    POOL,
    SURVEY,
    assert_nothing_lost_nothing_doubled,
    contacts,
    ensure_pool,
    hang_up,
    start_survey,
)
from .deployment import AirflowApi, AirflowDeployment, Emulator
from .procs import cmdline, descendants, wait_until


def test_call_and_wait_dag(deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator) -> None:
    deployment.wait_for_dags(["vapi_call_and_wait"])
    number = "+15551100123"
    run_id = api.trigger("vapi_call_and_wait", {"customer_number": number, "customer_name": "Grace"})
    run = api.wait_for_run("vapi_call_and_wait", run_id, 180)
    assert run["state"] == "success", api.states("vapi_call_and_wait", run_id)

    call_id = api.xcom("vapi_call_and_wait", run_id, "place_call")
    truth = emulator.handle.call(call_id)
    assert truth["customer"]["number"] == number
    assert truth["assistantOverrides"]["variableValues"]["name"] == "Grace"
    waited = api.xcom("vapi_call_and_wait", run_id, "wait_for_call")
    assert waited["id"] == call_id and waited["status"] == "ended"
    assert waited["analysis"]["structuredData"] == truth["analysis"]["structuredData"]
    report = api.xcom("vapi_call_and_wait", run_id, "report")
    assert report["structured_data"] == truth["analysis"]["structuredData"]
    assert report["outcome"] == waited["outcome"] == "completed"
    # The extra link's source: the dashboard URL of this very call.
    url = api.xcom("vapi_call_and_wait", run_id, "place_call", key="vapi_call_url")
    assert url.endswith(f"/calls/{call_id}")
    creates = [
        r for r in emulator.handle.requests("POST", "/call") if r["body"]["customer"]["number"] == number
    ]
    assert len(creates) == 1


def test_survey_campaign_end_to_end(
    deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator, system_workdir: Path
) -> None:
    deployment.wait_for_dags([SURVEY])
    ensure_pool(api)
    people = contacts(10, 6)
    run = start_survey(api, system_workdir, "survey-e2e", people)
    run.wait(240)
    checked = assert_nothing_lost_nothing_doubled(run, emulator.handle)
    assert {r["outcome"] for r in checked["rows"].values()} == {"completed"}
    assert all(r["answers_valid"] for r in checked["rows"].values()), checked["rows"]


def test_deferred_waits_hold_no_worker_slot(
    deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator, system_workdir: Path
) -> None:
    deployment.wait_for_dags([SURVEY])
    ensure_pool(api)
    # Real-time calls that stay in progress (0006) until the person hangs up.
    emulator.handle.configure(speed=1)
    people = contacts(11, 5, suffix="0006")
    run = start_survey(api, system_workdir, "survey-deferred", people)
    deferred = run.wait_deferred(len(people))
    placed = run.placed_ids()

    for ti in deferred:
        # The triggerer owns the wait: a CallStatusTrigger assigned to a live triggerer job.
        assert ti["trigger"] is not None, ti
        assert ti["trigger"]["classpath"] == "airflow_provider_vapi.triggers.CallStatusTrigger"
        job = ti["triggerer_job"]
        assert job is not None and job["job_type"] == "TriggererJob" and job["state"] == "running", job
        live = emulator.handle.call(placed[ti["map_index"]])["status"]
        assert live in ("queued", "ringing", "in-progress"), f"the call must still be live: {live}"
    # No worker slot: no running task instance, and no process (task runner "airflow worker -- <ti>"
    # or LocalExecutor slot "airflow worker -- LocalExecutor: <ti>") still working for a deferred
    # wait, once the executor has handed the deferral back (a moment after the state flips).
    states = api.states(SURVEY, run.run_id)
    assert "running" not in states.values(), states
    ids = {ti["id"] for ti in deferred}

    def busy_for_deferred() -> list[str]:
        titles = [cmdline(pid) for pid in descendants(os.getpid())]
        return [t for t in titles if any(i in t for i in ids)]

    wait_until(lambda: not busy_for_deferred(), 30, 0.5, "worker processes to let go of deferred waits")
    assert {t["state"] for t in run.tis("wait_for_call")} == {"deferred"}, "still waiting, in the triggerer"
    # ... and no pool slot (the pool does not count deferred tasks).
    pool = api.get(f"/pools/{POOL}")
    assert pool["deferred_slots"] == len(people) and pool["running_slots"] == 0, pool

    for call_id in placed.values():
        hang_up(emulator.handle, call_id)
    emulator.handle.configure(speed=20)
    run.wait(180)
    assert_nothing_lost_nothing_doubled(
        run, emulator.handle, ended_reason="manually-canceled"
    )
