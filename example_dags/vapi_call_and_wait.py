"""The smallest complete Vapi DAG: place one call, wait for it without holding a worker, use the result.

1. ``PlaceCallOperator`` places the call and pushes its id (and its dashboard link) to XCom.
2. ``CallStatusSensor(deferrable=True)`` waits in the triggerer until the call has ended and its
   analysis has arrived; its XCom is the call's compact result (outcome, analysis, structured
   outputs by name, costs, times).
3. A task prints the outcome and the ``structuredData`` the assistant extracted.

Needs a connection ``vapi_default`` (API key as password); the params default to the bundled
emulator's seeded assistant and phone number. Trigger with your own:
``airflow dags trigger vapi_call_and_wait -c '{"customer_number": "+14155550123", ...}'``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task
from vapi_example_support import DEFAULT_ASSISTANT_ID, DEFAULT_PHONE_NUMBER_ID, POLL_INTERVAL

from airflow_provider_vapi.operators import PlaceCallOperator
from airflow_provider_vapi.sensors import CallStatusSensor

with DAG(
    dag_id="vapi_call_and_wait",
    description="Place one Vapi call, wait for it deferrably, print what it learned.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["vapi", "example"],
    params={
        "customer_number": Param("+15550104242", type="string", description="E.164 number to call"),
        "customer_name": Param("Ada", type="string"),
        "assistant_id": Param(DEFAULT_ASSISTANT_ID, type="string"),
        "phone_number_id": Param(DEFAULT_PHONE_NUMBER_ID, type="string"),
    },
) as dag:
    place_call = PlaceCallOperator(
        task_id="place_call",
        assistant_id="{{ params.assistant_id }}",
        phone_number_id="{{ params.phone_number_id }}",
        customer={"number": "{{ params.customer_number }}", "name": "{{ params.customer_name }}"},
        # Fills {{name}} in the saved assistant's prompt and first message, at call time.
        variable_values={"name": "{{ params.customer_name }}"},
        metadata={"source": "vapi_call_and_wait", "run": "{{ run_id }}"},
    )

    wait_for_call = CallStatusSensor(
        task_id="wait_for_call",
        call_id=place_call.output,  # the id PlaceCallOperator returned
        deferrable=True,  # waits in the triggerer: no worker slot while the phone rings
        poke_interval=POLL_INTERVAL,
        timeout=30 * 60,  # a wall-clock deadline, honoured while deferred too
    )

    @task
    def report(call: dict[str, Any]) -> dict[str, Any]:
        """Print the outcome and what the assistant extracted; hand the structured data on."""
        analysis = call.get("analysis") or {}
        print(f"Call {call['id']}: outcome={call['outcome']} endedReason={call.get('endedReason')}")
        print(f"Summary: {analysis.get('summary')}")
        print(f"structuredData: {analysis.get('structuredData')}")
        return {"outcome": call["outcome"], "structured_data": analysis.get("structuredData")}

    report(wait_for_call.output)
