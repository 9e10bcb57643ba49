"""``CampaignStatusTrigger`` and ``CampaignStatusSensor`` against the emulator's ``/v2/campaign``:
the wait always ends (over, deadline, or a clear error), survives transient failures, and cancels
on kill."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.trigger import CampaignStatusTrigger
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.waiting.task import trigger_on_kill_supported
from tests.dag_runner import run_dag, states, xcom
from tests.test_campaigns import HEADER, body, calls_of


def create(emu: Any, numbers: list[str], key: str, **extra: Any) -> str:
    return CampaignApi(VapiHook("vapi_default")).create(body(emu, numbers, **extra), key=key).id


async def events(trigger: CampaignStatusTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def finish_held_calls(emu: Any) -> None:
    for call in emu.calls():
        if call.get("status") != "ended":
            emu.end_call(call["id"])


@pytest.mark.usefixtures("vapi_conn")
async def test_the_trigger_sends_one_small_event_when_the_campaign_is_over(vapi_emulator: Any) -> None:
    campaign_id = create(vapi_emulator, ["+15552000001", "+15552000002"], "trigger-ended")
    trigger = CampaignStatusTrigger(campaign_id, poll_interval=0.05, deadline=time.time() + 60)
    got = await events(trigger)
    assert got == [{"status": "ended", "campaign_id": campaign_id, "message": "campaign ended"}]
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_vapi.campaigns.trigger.CampaignStatusTrigger"
    assert CampaignStatusTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.usefixtures("vapi_conn")
async def test_the_trigger_ends_at_its_deadline(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    campaign_id = create(emu, ["+15552001110006"], "trigger-deadline")
    started = time.monotonic()
    got = await events(CampaignStatusTrigger(campaign_id, poll_interval=5, deadline=time.time() + 0.5))
    assert [e["status"] for e in got] == ["timeout"]
    assert time.monotonic() - started < 4, "the deadline cuts the poll interval short"
    finish_held_calls(emu)


@pytest.mark.usefixtures("vapi_conn")
async def test_transient_failures_keep_the_wait_and_a_missing_campaign_ends_it(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    campaign_id = create(emu, ["+15552002001"], "trigger-flaky")
    emu.faults([503] * 12, method="GET", path=f"/v2/campaign/{campaign_id}")
    got = await events(CampaignStatusTrigger(campaign_id, poll_interval=0.05, deadline=time.time() + 60))
    assert [e["status"] for e in got] == ["ended"]
    missing = "00000000-0000-4000-8000-00000000dead"
    got = await events(CampaignStatusTrigger(missing, poll_interval=0.05, deadline=time.time() + 60))
    assert [e["status"] for e in got] == ["error"]
    assert "404" in got[0]["message"]


@pytest.mark.skipif(not trigger_on_kill_supported(), reason="Airflow 2's triggers have no on_kill")
@pytest.mark.usefixtures("vapi_conn")
async def test_killing_the_deferred_task_cancels_the_campaign(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    campaign_id = create(emu, [f"+155520030{i}0006" for i in range(3)], "trigger-kill", maxConcurrency=1)
    await CampaignStatusTrigger(campaign_id, cancel_on_kill=True).on_kill()
    assert CampaignApi(VapiHook("vapi_default")).get(campaign_id).status == "cancelled"
    finish_held_calls(emu)
    assert len(calls_of(emu, campaign_id)) == 1


@pytest.mark.parametrize("mode", ["deferrable", "poke", "reschedule"])
@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_the_sensor_waits_for_a_campaign_created_elsewhere(vapi_emulator: Any, mode: str) -> None:
    emu = vapi_emulator
    people = [f"+155520{len(mode):02d}1{i:03d}" for i in range(6)]
    sensor_args = "deferrable=True" if mode == "deferrable" else f"deferrable=False, mode={mode!r}"
    dag_run = run_dag(
        f"campaign_sensor_{mode}",
        HEADER
        + f"""
        from airflow_provider_vapi.sensors import CampaignStatusSensor

        with DAG("campaign_sensor_{mode}", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            run = RunCampaignOperator(task_id="run", customers={people!r}, assistant_id={emu.assistant_id!r},
                                      phone_number_id={emu.phone_number_id!r}, wait_for_completion=False)
            run >> CampaignStatusSensor(
                task_id="wait", campaign_id="{{{{ ti.xcom_pull(task_ids='run', key='campaign_id') }}}}",
                poke_interval=0.1, timeout=60, {sensor_args},
            )
        """,
    )
    assert states(dag_run) == {("run", -1): "success", ("wait", -1): "success"}
    started, waited = xcom(dag_run, "run"), xcom(dag_run, "wait")
    assert started["status"] in ("scheduled", "in-progress", "ended")
    assert waited["campaign_id"] == started["campaign_id"] and waited["status"] == "ended"
    assert waited["counters"]["completed"] == len(people)
