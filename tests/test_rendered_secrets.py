"""The Rendered tab never shows a secret: the operator tells the masker every secret of its
rendered parameters before Airflow stores them, including keys Airflow's own name rules miss
(``gcpKey``, ``ocpApimSubscriptionKey``, ``hmacAccessKey``, ``privateKey``) and a
``twilioAuthToken`` inside a ``payload`` given as JSON text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.dag_runner import load_dag

pytestmark = pytest.mark.usefixtures("airflow_db", "vapi_conn")

SECRETS = {
    "twilio": "twilio-token-4c1d9e",
    "gcp": "gcp-private-key-88aa",
    "ocp": "ocp-subscription-key-5f5f",
    "hmac": "hmac-access-key-0b0b",
    "private": "private-key-pem-7777",
}


def _rendered_fields(dag_run: Any, task_id: str) -> dict[str, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session)
        fields = RenderedTaskInstanceFields.get_templated_fields(ti, session=session)
    assert fields, "Airflow stored no rendered fields for the task"
    return dict(fields)


def test_no_secret_reaches_the_rendered_tab(vapi_emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    payload = json.dumps(
        {
            "phoneNumber": {
                "twilioPhoneNumber": "+14155550100",
                "twilioAccountSid": "AC123",
                "twilioAuthToken": SECRETS["twilio"],
                "name": "line of {{ ds }}",
            }
        }
    )
    assistant = {
        "model": {"provider": "openai", "model": "gpt-4o"},
        "firstMessage": "Hi {{pet_name_q7}}",
        "credentials": [
            {"provider": "gcp", "gcpKey": {"type": "service_account", "privateKey": SECRETS["gcp"]}},
            {"provider": "azure-openai", "ocpApimSubscriptionKey": SECRETS["ocp"]},
            {"provider": "s3", "hmacAccessKey": SECRETS["hmac"]},
            {"provider": "custom", "privateKey": SECRETS["private"]},
        ],
    }
    body = f"""
    with DAG("rendered_secrets", start_date=datetime(2026, 1, 1), schedule=None) as dag:
        PlaceCallOperator(
            task_id="place", customer="+14155550195", assistant={assistant!r},
            payload={payload!r},
        )
    """
    dag_run = load_dag("rendered_secrets", body).test()
    rendered = json.dumps(_rendered_fields(dag_run, "place"))
    # Other tests register secrets with the same (process-wide) masker: check only values of our own.
    assert "Hi {{pet_name_q7}}" in rendered and "line of 2026" in rendered, rendered
    leaked = {name: value for name, value in SECRETS.items() if value in rendered}
    assert not leaked, f"the Rendered tab shows {sorted(leaked)}"
    logged = {name: value for name, value in SECRETS.items() if value in caplog.text}
    assert not logged, f"the task log shows {sorted(logged)}"
