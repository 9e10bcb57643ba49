"""Data is never rendered: template syntax that arrives through XCom, conf or params reaches Vapi
literally, while every form of Airflow expression the DAG author wrote is rendered.

The holes these close: a CRM field holding ``{{ conn.vapi_default.password }}`` sent the API key to
Vapi (the operator rendered resolved XCom values a second time), and Airflow expressions that do
not start with a context name (``{{ (ds) }}``, ``{{- ds -}}``) reached Vapi unrendered.
"""

from __future__ import annotations

import inspect
from datetime import UTC
from typing import Any

import pytest

from tests.dag_runner import run_dag, states

pytestmark = pytest.mark.usefixtures("airflow_db", "vapi_conn")

#: Template syntax a customer could type into a CRM field; rendered, each would leak or run code.
HOSTILE = (
    "Hi {{ conn.vapi_default.password }}!",
    "{{ var.value.crm_token }} ok",
    "{{ macros.datetime.utcnow() }}",
    "x{{ conn.vapi_default.get_uri() }}",
)


@pytest.fixture
def crm_token(monkeypatch: pytest.MonkeyPatch) -> str:
    token = "crm-token-7f3a9"
    monkeypatch.setenv("AIRFLOW_VAR_CRM_TOKEN", token)
    return token


def _sent(emu: Any) -> list[dict[str, Any]]:
    return [r["body"] for r in emu.requests("POST", "/call")]


def _hostile_dag(dag_id: str, emu: Any) -> str:
    return f"""
    from airflow.providers.common.compat.sdk import task

    HOSTILE = {list(HOSTILE)!r}

    with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None,
             params={{"note": HOSTILE[1]}}) as dag:

        @task
        def crm_rows():
            return [{{"number": "+1415555010" + str(i), "name": "Row " + str(i),
                      "externalId": text[:40]}} for i, text in enumerate(HOSTILE)]

        @task
        def crm_note():
            return HOSTILE[0]

        @task
        def crm_names():
            return [HOSTILE[0]]

        rows = crm_rows()
        note = crm_note()
        # Mapped over upstream data: each customer dict is data.
        PlaceCallOperator.partial(
            task_id="mapped", assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
            variable_values={{"note": "{{{{ ti.xcom_pull(task_ids='crm_note') }}}}"}},
        ).expand(customer=rows)
        # Mapped over plain strings of upstream data: a resolved string is data too.
        PlaceCallOperator.partial(
            task_id="mapped_names", assistant_id={emu.assistant_id!r},
            phone_number_id={emu.phone_number_id!r}, customer="+14155550199",
        ).expand(name=crm_names())
        # An XComArg as a whole parameter, conf and params through the author's own templates.
        PlaceCallOperator(
            task_id="direct", assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
            customer="+14155550198", metadata={{"crm": note}},
            variable_values={{
                "param": "{{{{ params.note }}}}",
                "xcom": "{{{{ ti.xcom_pull(task_ids='crm_note') }}}}",
            }},
        )
    """


def test_template_syntax_in_upstream_data_reaches_vapi_literally(vapi_emulator: Any, crm_token: str) -> None:
    dag = run_dag("hostile_data", _hostile_dag("hostile_data", vapi_emulator))
    assert set(states(dag).values()) == {"success"}, states(dag)
    bodies = _sent(vapi_emulator)
    text = repr(bodies)
    assert vapi_emulator.api_key not in text, "the connection's API key was sent to Vapi"
    assert crm_token not in text, "an Airflow Variable was sent to Vapi"
    external = sorted(b["customer"]["externalId"] for b in bodies if "externalId" in b["customer"])
    assert external == sorted(h[:40] for h in HOSTILE)
    named = [b["name"] for b in bodies if b.get("name")]
    assert named == [HOSTILE[0]]
    direct = next(b for b in bodies if b["customer"]["number"] == "+14155550198")
    overrides = direct["assistantOverrides"]
    assert overrides["metadata"]["crm"] == HOSTILE[0]
    assert overrides["variableValues"] == {"param": HOSTILE[1], "xcom": HOSTILE[0]}


def test_conf_values_are_data(vapi_emulator: Any, crm_token: str) -> None:
    from tests.dag_runner import load_dag

    body = f"""
    with DAG("hostile_conf", start_date=datetime(2026, 1, 1), schedule=None) as dag:
        PlaceCallOperator(
            task_id="direct", assistant_id={vapi_emulator.assistant_id!r},
            phone_number_id={vapi_emulator.phone_number_id!r}, customer="+14155550197",
            variable_values={{"conf": "{{{{ dag_run.conf['note'] }}}}"}},
        )
    """
    dag_run = load_dag("hostile_conf", body).test(run_conf={"note": HOSTILE[0] + " " + HOSTILE[1]})
    assert set(states(dag_run).values()) == {"success"}
    (sent,) = _sent(vapi_emulator)
    assert sent["assistantOverrides"]["variableValues"]["conf"] == HOSTILE[0] + " " + HOSTILE[1]


#: Airflow expressions in every form a DAG author writes, and what they render to on 2026-01-01.
AIRFLOW_FORMS = {
    "{{ (ds) }}": "2026-01-01",
    "{{- ds -}}": "2026-01-01",
    "{{ 'x' ~ ds }}": "x2026-01-01",
    "{{ 'yes' if params.n > 1 else 'no' }}": "yes",
    "{{ ['a', 'b'][ti.try_number - 1] }}": "a",
    "{{ (macros.datetime(2026, 1, 1) + macros.timedelta(seconds=30)).isoformat() }}": "2026-01-01T00:00:30",
    "{{ ds | replace('-', '') }}": "20260101",
    "{{ dag_run.conf.get('missing', 'dflt') }}": "dflt",
}
#: Vapi's placeholders (LiquidJS), which must arrive untouched.
VAPI_FORMS = (
    "{{name}}",
    "{{ customer.number }}",
    '{{"now" | date: "%H:%M", "America/New_York"}}',
    "{{ name | upcase }}",
    "{{ transcript }}",
)


def test_every_airflow_form_renders_and_vapi_placeholders_pass(vapi_emulator: Any) -> None:
    values = {f"a{i}": form for i, form in enumerate(AIRFLOW_FORMS)}
    values |= {f"v{i}": form for i, form in enumerate(VAPI_FORMS)}
    body = f"""
    with DAG("forms", start_date=datetime(2026, 1, 1), schedule=None, params={{"n": 2}}) as dag:
        PlaceCallOperator(
            task_id="place", assistant_id={vapi_emulator.assistant_id!r},
            phone_number_id={vapi_emulator.phone_number_id!r}, customer="+14155550196",
            variable_values={values!r},
        )
    """
    from tests.dag_runner import load_dag

    dag = load_dag("forms", body)
    # Airflow 2.11 calls the date execution_date.
    name = "logical_date" if "logical_date" in inspect.signature(dag.test).parameters else "execution_date"
    dag_run = dag.test(**{name: _logical_date()})
    assert set(states(dag_run).values()) == {"success"}
    (sent,) = _sent(vapi_emulator)
    got = sent["assistantOverrides"]["variableValues"]
    for i, (form, expected) in enumerate(AIRFLOW_FORMS.items()):
        assert got[f"a{i}"] == expected, f"{form} was not rendered as Airflow's"
    for i, form in enumerate(VAPI_FORMS):
        assert got[f"v{i}"] == form, f"{form} should reach Vapi untouched"


def _logical_date() -> Any:
    from datetime import datetime

    return datetime(2026, 1, 1, tzinfo=UTC)
