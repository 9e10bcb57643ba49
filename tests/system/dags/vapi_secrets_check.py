"""TEST FIXTURE of the system suite (``tests/system/test_no_secrets.py``), not an example.

Secrets in the places a real DAG puts them, so the test can grep everything Airflow and the
emulator store after a real run for each of them:

* ``twilio_line``: a transient Twilio line whose ``twilioAuthToken`` comes from the Variable
  ``vapi_twilio_token`` (a name Airflow's own masker recognises); ``wait_twilio_line`` waits for
  that call in the triggerer (the call Vapi echoes back carries the line);
* ``inline_assistant``: an inline assistant whose Azure OpenAI ``credentials`` hold a literal
  ``openAIKey`` and an ``ocpApimSubscriptionKey`` from the Variable ``azure_apim_subscription``
  (neither key nor Variable name is one Airflow masks), plus a ``payload`` given as JSON *text*
  whose webhook ``Authorization`` header comes from the Variable ``crm_webhook_credential``;
  it waits for its call deferrably;
* ``batch``: two customers, one of which Vapi refuses (an empty ``sipUri``); the refused one carries
  a webhook secret (Variable ``batch_hook_signature``) and comes back in the XCom's ``errors``.

The test sets the Variables (fresh random values each run) before triggering; no secret is ever
passed through the run's ``conf`` (Airflow stores conf as it is).

Retries: Airflow 3 may fail a deferred task whose trigger fires before the scheduler has processed
the executor's "success" event of the deferring process ("finished with state success, but the task
instance's state attribute is queued": apache/airflow#66374, #72716). A retry re-attaches to the
call already placed (never dials again), and its log is checked like the first try's.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_vapi.emulator.constants import ASSISTANT_ID, PHONE_NUMBER_ID
from airflow_provider_vapi.operators import PlaceCallOperator
from airflow_provider_vapi.sensors import CallStatusSensor

DAG_ID = "vapi_secrets_check"
#: A secret written into the DAG file itself (bad practice, common practice).
LITERAL_OPENAI_KEY = "sekret-literal-openai-5d0c7a41e2b94f0f9a3e6c18b27d4e90"
#: Variable names: one Airflow masks by name ("token"), three it does not.
VAR_TWILIO = "vapi_twilio_token"
VAR_OCP = "azure_apim_subscription"
VAR_WEBHOOK = "crm_webhook_credential"
VAR_BATCH = "batch_hook_signature"
#: Numbers of this DAG alone (the suite tells tests' calls apart by number); default outcome:
#: a completed conversation.
TWILIO_CUSTOMER = "+15554200101"
INLINE_CUSTOMER = "+15554200102"
BATCH_CUSTOMER = "+15554200103"
TWILIO_LINE = "+15554200900"
HOOK_URL = "https://hooks.example.com/vapi"
POLL = 0.5


def _var(name: str) -> str:
    """An Airflow expression reading the Variable ``name`` (rendered when the task runs)."""
    return "{{ var.value." + name + " }}"


_PAYLOAD = json.dumps(
    {
        "assistantOverrides": {
            "server": {
                "url": HOOK_URL,
                "headers": {"Authorization": "Bearer " + _var(VAR_WEBHOOK)},
            }
        }
    }
)

with DAG(
    dag_id=DAG_ID,
    description="Test fixture: secrets in every place a DAG puts them (tests/system/test_no_secrets.py).",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["vapi", "test-fixture"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
) as dag:
    twilio_line = PlaceCallOperator(
        task_id="twilio_line",
        assistant_id=ASSISTANT_ID,
        phone_number={
            "twilioPhoneNumber": TWILIO_LINE,
            "twilioAccountSid": "AC0000000000000000000000000000a042",
            "twilioAuthToken": _var(VAR_TWILIO),
        },
        customer=TWILIO_CUSTOMER,
        metadata={"run": "{{ run_id }}"},
    )
    CallStatusSensor(  # the full call: its echoed secrets must still be redacted in XCom
        task_id="wait_twilio_line",
        call_id=twilio_line.output,
        deferrable=True,
        poke_interval=POLL,
        xcom_detail="full",
    )

    PlaceCallOperator(
        task_id="inline_assistant",
        assistant={
            "name": "Secrets check",
            "firstMessage": "Hi {{name}}, a quick check.",
            "model": {
                "provider": "openai",
                "model": "gpt-4o",
                "messages": [{"role": "system", "content": "Be brief."}],
            },
            "credentials": [
                {
                    "provider": "azure-openai",
                    "region": "eastus",
                    "models": ["gpt-4o"],
                    "openAIKey": LITERAL_OPENAI_KEY,
                    "ocpApimSubscriptionKey": _var(VAR_OCP),
                    "openAIEndpoint": "https://example-resource.openai.azure.com",
                }
            ],
        },
        phone_number_id=PHONE_NUMBER_ID,
        customer={"number": INLINE_CUSTOMER, "name": "Ada"},
        variable_values={"name": "Ada"},
        payload=_PAYLOAD,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL,
        xcom_detail="full",
    )

    PlaceCallOperator(
        task_id="batch",
        assistant_id=ASSISTANT_ID,
        phone_number_id=PHONE_NUMBER_ID,
        customers=[
            {"number": BATCH_CUSTOMER},
            {
                # No line on file: Vapi refuses this customer, the batch goes on without it.
                "sipUri": "",
                "name": "No line on file",
                "assistantOverrides": {
                    "server": {
                        "url": HOOK_URL,
                        "headers": {"X-Vapi-Secret": _var(VAR_BATCH)},
                    }
                },
            },
        ],
        fail_on_batch_errors=False,
    )
