"""A campaign's customers are data: template syntax typed into a CRM field reaches Vapi literally,
whichever way the rows arrive (an XComArg, or ``"{{ ti.xcom_pull(...) }}"`` rendered as a native
list); and the Rendered tab never shows a secret of the campaign's parameters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.dag_runner import load_dag, run_dag, states
from tests.test_campaigns import HEADER
from tests.test_injection import HOSTILE
from tests.test_rendered_secrets import _rendered_fields

pytestmark = pytest.mark.usefixtures("airflow_db", "vapi_conn")


def test_template_syntax_in_crm_rows_reaches_vapi_literally(vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu, token = vapi_emulator, "crm-token-51ab"
    monkeypatch.setenv("AIRFLOW_VAR_CRM_TOKEN", token)
    dag_run = run_dag(
        "campaign_hostile_rows",
        HEADER
        + f"""
        from airflow.providers.common.compat.sdk import task

        with DAG("campaign_hostile_rows", start_date=datetime(2026, 1, 1), schedule=None) as dag:

            @task
            def rows():
                return [{{"number": "+1415555031" + str(i), "name": text[:40], "note": text}}
                        for i, text in enumerate({list(HOSTILE)!r})]

            people = rows()
            common = dict(assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
                          customer_variables=["note"], wait_for_completion=False)
            RunCampaignOperator(task_id="from_xcomarg", customers=people, **common)
            people >> RunCampaignOperator(
                task_id="from_pull", customers="{{{{ ti.xcom_pull(task_ids='rows') }}}}", **common
            )
        """,
    )
    assert set(states(dag_run).values()) == {"success"}, states(dag_run)
    bodies = [r["body"] for r in emu.requests(method="POST", path="/v2/campaign")]
    assert len(bodies) == 2
    text = repr(bodies)
    assert emu.api_key not in text, "the connection's API key was sent to Vapi"
    assert token not in text, "an Airflow Variable was sent to Vapi"
    for sent in bodies:
        assert [c["name"] for c in sent["customers"]] == [h[:40] for h in HOSTILE]
        notes = [c["assistantOverrides"]["variableValues"]["note"] for c in sent["customers"]]
        assert notes == list(HOSTILE)


SECRET = "gcp-private-key-campaign-31c"


def test_no_secret_of_a_campaign_reaches_the_rendered_tab(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    overrides = {
        "firstMessage": "Hi {{name}}",
        "credentials": [{"provider": "gcp", "gcpKey": {"type": "service_account", "privateKey": SECRET}}],
    }
    body = (
        HEADER
        + f"""
        with DAG("campaign_rendered_secrets", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunCampaignOperator(
                task_id="campaign", customers=["+14155550320"], assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r}, assistant_overrides={overrides!r},
                name="campaign of {{{{ ds }}}}", wait_for_completion=False,
            )
        """
    )
    dag_run = load_dag("campaign_rendered_secrets", body).test()
    rendered = json.dumps(_rendered_fields(dag_run, "campaign"))
    assert "Hi {{name}}" in rendered and "campaign of 20" in rendered, rendered
    assert SECRET not in rendered, "the Rendered tab shows the campaign's private key"
