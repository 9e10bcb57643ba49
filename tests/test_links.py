"""The "Vapi call" and "Vapi campaign" links on a real task run (``dag.test()``).

Airflow 3 asks every link of a task when the task ends. A try that failed before its call or
campaign existed used to make the link read a URL nobody pushed, and Airflow logged "XCom not
found" as an error beside the task's real one. A try resumed from a trigger must still find the URL
its first half pushed (the link answering "" there would overwrite it: Airflow stores what the link
answers under the same key).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from airflow_provider_vapi.hook.links import campaign_url, dashboard_url
from tests.dag_runner import run_dag, states, xcom

pytestmark = [pytest.mark.usefixtures("airflow_db", "vapi_conn"), pytest.mark.timeout(120)]

IMPORTS = "from airflow_provider_vapi.operators import RunCampaignOperator\n"

# kind -> (the task, the error it must fail with)
BAD_INPUT = {
    "place": (
        'PlaceCallOperator(task_id="task", customer="not-a-number", assistant_id="a", phone_number_id="p")',
        "customer.number: number 'not-a-number' is not E.164",
    ),
    "campaign": (
        'RunCampaignOperator(task_id="task", customers=["not-a-number"], assistant_id="a", phone_number_id="p")',
        "customers[0].number: number 'not-a-number' is not E.164",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUT))
def test_a_try_that_fails_before_its_link_exists_logs_no_xcom_error(
    kind: str, vapi_emulator: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    dag_id = f"link_bad_input_{kind}"
    task, error = BAD_INPUT[kind]
    body = f"""
    {IMPORTS}
    with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
        {task}
    """
    dag_run = run_dag(dag_id, body)
    printed = capsys.readouterr()
    assert states(dag_run) == {("task", -1): "failed"}
    assert vapi_emulator.requests(method="POST") == [], "bad input must fail before any request"
    logs = printed.out + printed.err + caplog.text
    assert error in logs, "the task's own error is in the log"
    assert "XCom not found" not in logs


def end_once_a_trigger_polls(emu: Any, call_id: str) -> threading.Thread:
    """End the call once the shared poll lists calls: only a trigger does, so the task deferred."""

    def run() -> None:
        deadline = time.monotonic() + 60
        while not emu.requests(method="GET", path="/call") and time.monotonic() < deadline:
            time.sleep(0.05)
        emu.end_call(call_id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_wait_resumed_from_its_trigger_keeps_the_call_link(vapi_emulator: Any) -> None:
    call_id = vapi_emulator.create_call("+14155550006")["id"]  # held until ended
    ender = end_once_a_trigger_polls(vapi_emulator, call_id)
    body = f"""
    with DAG("link_after_resume", start_date=datetime(2026, 1, 1), schedule=None) as dag:
        CallStatusSensor(task_id="wait", call_id={call_id!r}, deferrable=True, poke_interval=0.1,
                         analysis_grace_period=0, failure_outcomes=[])
    """
    dag_run = run_dag("link_after_resume", body)
    ender.join(5)
    assert vapi_emulator.requests(method="GET", path="/call"), "the sensor never deferred"
    assert states(dag_run) == {("wait", -1): "success"}
    assert xcom(dag_run, "wait", key="vapi_call_url") == dashboard_url(call_id)


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_campaign_keeps_its_link_whether_it_waited_in_the_worker_or_deferred(
    vapi_emulator: Any, deferrable: bool
) -> None:
    emu = vapi_emulator
    dag_id = f"campaign_link_{deferrable}"
    body = f"""
    {IMPORTS}
    with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
        RunCampaignOperator(
            task_id="campaign", customers=["+15553041001", "+15553041002"], assistant_id={emu.assistant_id!r},
            phone_number_id={emu.phone_number_id!r}, deferrable={deferrable}, poll_interval=0.1,
        )
    """
    dag_run = run_dag(dag_id, body)
    assert states(dag_run) == {("campaign", -1): "success"}
    campaign_id = xcom(dag_run, "campaign", key="campaign_id")
    assert xcom(dag_run, "campaign", key="vapi_campaign_url") == campaign_url(campaign_id)
