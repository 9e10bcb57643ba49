"""The rendering gate (``airflow_provider_vapi/rendering/gate.py``) on the paths that broke before it:
``expand_kwargs`` rows were rendered as Jinja (the API key reached Vapi), sensors rendered an
upstream value twice, and mapped tasks skipped the masking and the bad-template rule. Each test
runs a real ``dag.test()`` against the emulator and reads what reached Vapi from its request log
and what Airflow stored from the Rendered tab. The whole matrix (every operator, every way in,
every template form) is ``tests/test_rendering_matrix.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.dag_runner import reset_log_masker, run_dag, states, tries

pytestmark = pytest.mark.usefixtures("airflow_db", "vapi_conn")


@pytest.fixture(autouse=True)
def _fresh_masker() -> None:
    """What the Rendered tab shows is judged against this test's own secrets only."""
    reset_log_masker()


CAMPAIGN = "        from airflow_provider_vapi.operators import RunCampaignOperator\n"


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Variable's value that must never reach Vapi or the Rendered tab."""
    value = "var-canary-3b7f1e"
    monkeypatch.setenv("AIRFLOW_VAR_GATE_CANARY", value)
    return value


def hostile(emu: Any) -> list[str]:
    return [
        "Hi {{ conn.vapi_default.password }}!",
        "{{ var.value.gate_canary }}",
        "{% for x in [1] %}",  # cut off: rendering it raised TemplateSyntaxError
        "{{- ds -}} and {{ (ds) }}",
    ]


def rendered(dag_run: Any, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """The task's Rendered tab, as Airflow stored it."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, map_index=map_index, session=session)
        fields = RenderedTaskInstanceFields.get_templated_fields(ti, session=session)
    assert fields, f"Airflow stored no rendered fields for {task_id}[{map_index}]"
    return dict(fields)


def leaks(emu: Any, *secrets: str) -> list[str]:
    """Which secrets appear in any request the emulator logged (paths, queries and bodies)."""
    text = json.dumps(emu.requests(), default=str)
    return [s[:6] + "..." for s in secrets if s in text]


def test_expand_kwargs_rows_are_data_for_calls_and_campaigns(vapi_emulator: Any, canary: str) -> None:
    emu, texts = vapi_emulator, hostile(vapi_emulator)
    dag_run = run_dag(
        "gate_expand_kwargs",
        CAMPAIGN
        + f"""
        from airflow.providers.common.compat.sdk import task
        TEXTS = {texts!r}

        with DAG("gate_expand_kwargs", start_date=datetime(2026, 1, 1), schedule=None) as dag:

            @task
            def call_rows():
                return [{{"customer": "+1415555041" + str(i), "variable_values": {{"note": t}},
                          "metadata": {{"crm": [t]}}}} for i, t in enumerate(TEXTS)]

            @task
            def campaign_rows():
                return [{{"name": t[:40], "customers": [{{"number": "+1415555042" + str(i)}}]}}
                        for i, t in enumerate(TEXTS)]

            PlaceCallOperator.partial(
                task_id="calls", assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
            ).expand_kwargs(call_rows())
            RunCampaignOperator.partial(
                task_id="campaigns", assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r}, wait_for_completion=False,
            ).expand_kwargs(campaign_rows())
        """,
    )
    assert set(states(dag_run).values()) == {"success"}, states(dag_run)
    assert not leaks(emu, emu.api_key, canary), "a secret rendered from upstream data reached Vapi"
    calls = [r["body"]["assistantOverrides"] for r in emu.requests(method="POST", path="/call")]
    assert sorted(c["variableValues"]["note"] for c in calls) == sorted(texts)
    assert sorted(c["metadata"]["crm"][0] for c in calls) == sorted(texts)
    names = sorted(
        r["body"]["name"].split(" [af:")[0] for r in emu.requests(method="POST", path="/v2/campaign")
    )
    assert names == sorted(t[:40] for t in texts)


def test_sensors_render_an_upstream_id_once(vapi_emulator: Any, canary: str) -> None:
    emu = vapi_emulator
    dag = """
        from airflow.providers.common.compat.sdk import task

        with DAG("gate_sensor_once", start_date=datetime(2026, 1, 1), schedule=None) as dag:

            @task
            def up():
                return "k-{{ conn.vapi_default.password }}"

            up() >> [
                CallStatusSensor(task_id="sensor", call_id="{{ ti.xcom_pull(task_ids='up') }}",
                                 poke_interval=1, timeout=30),
                CallStatusSensor(task_id="from_conf", call_id="{{ dag_run.conf['id'] }}",
                                 poke_interval=1, timeout=30),
                RunStructuredOutputOperator(
                    task_id="outputs", structured_output={"name": "gate", "schema": {"type": "string"}},
                    call_ids="{{ ti.xcom_pull(task_ids='up') }}",
                ),
            ]
    """
    from tests.dag_runner import load_dag

    dag_run = load_dag("gate_sensor_once", dag).test(run_conf={"id": "c-{{ var.value.gate_canary }}"})
    assert not leaks(emu, emu.api_key, canary), "an upstream id was rendered a second time"
    # The ids are no Vapi ids: each task fails on them, saying so, but never with a secret inside.
    assert states(dag_run)[("sensor", -1)] == "failed"
    shown = json.dumps([rendered(dag_run, t) for t in ("sensor", "from_conf", "outputs")])
    assert canary not in shown and emu.api_key not in shown, "the Rendered tab shows a secret"
    assert rendered(dag_run, "from_conf")["call_id"] == "c-{{ var.value.gate_canary }}"


SECRETS = {"openai": "openai-key-mapped-9d1c", "gcp": "gcp-private-key-mapped-52e0"}


def test_mapped_tasks_mask_secrets_before_the_rendered_tab(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    assistant = {
        "model": {"provider": "openai", "model": "gpt-4o"},
        "firstMessage": "Hi {{gate_person_7c}}",
        "credentials": [
            {
                "provider": "azure-openai",
                "region": "eastus",
                "models": ["gpt-4o"],
                "openAIKey": SECRETS["openai"],
                "openAIEndpoint": "https://example-resource.openai.azure.com",
            }
        ],
    }
    overrides = {
        "firstMessage": "Hi {{gate_person_7c}} on {{ ds }}",
        "credentials": [
            {"provider": "gcp", "gcpKey": {"type": "service_account", "privateKey": SECRETS["gcp"]}}
        ],
    }
    dag_run = run_dag(
        "gate_mapped_masking",
        CAMPAIGN
        + f"""
        with DAG("gate_mapped_masking", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator.partial(
                task_id="calls", assistant={assistant!r}, phone_number_id={emu.phone_number_id!r},
            ).expand(customer=["+14155550431", "+14155550432"])
            RunCampaignOperator.partial(
                task_id="campaigns", assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
                assistant_overrides={overrides!r}, wait_for_completion=False,
            ).expand(customers=[["+14155550433"]])
        """,
    )
    assert set(states(dag_run).values()) == {"success"}, states(dag_run)
    for task_id, index in (("calls", 0), ("calls", 1), ("campaigns", 0)):
        shown = json.dumps(rendered(dag_run, task_id, index))
        assert not [k for k, v in SECRETS.items() if v in shown], f"{task_id}[{index}] shows a secret"
        # The tab holds the task's values, secrets masked (a placeholder no other test uses: the
        # masker is process-wide, and another test's secret may be a common word).
        assert "Hi {{gate_person_7c}}" in shown, shown
    campaign = json.dumps(rendered(dag_run, "campaigns", 0))
    assert "on 2026-" in campaign, "partial()'s Airflow expression was not rendered in a mapped task"


def test_a_bad_template_in_a_mapped_task_fails_at_once(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    dag_run = run_dag(
        "gate_mapped_bad_template",
        f"""
        with DAG("gate_mapped_bad_template", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator.partial(
                task_id="calls", assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
                name="{{% for x in", retries=2, retry_delay=timedelta(seconds=1),
            ).expand(customer=["+14155550441"])
        """,
    )
    assert states(dag_run) == {("calls", 0): "failed"}
    assert tries(dag_run) == {("calls", 0): 1}, "bad input was retried"
    assert emu.requests(method="POST", path="/call") == [], "a call was placed from a bad template"


def test_a_mapped_task_group_passes_its_arguments_as_data(vapi_emulator: Any, canary: str) -> None:
    emu, texts = vapi_emulator, hostile(vapi_emulator)
    dag_run = run_dag(
        "gate_task_group",
        f"""
        from airflow.providers.common.compat.sdk import task_group
        TEXTS = {texts!r}

        with DAG("gate_task_group", start_date=datetime(2026, 1, 1), schedule=None) as dag:

            @task_group
            def person(number, note):
                PlaceCallOperator(
                    task_id="call", assistant_id={emu.assistant_id!r},
                    phone_number_id={emu.phone_number_id!r}, customer=number,
                    variable_values={{"note": note, "day": "{{{{ ds }}}}"}},
                )

            person.expand_kwargs([{{"number": "+1415555045" + str(i), "note": t}} for i, t in enumerate(TEXTS)])
        """,
    )
    assert set(states(dag_run).values()) == {"success"}, states(dag_run)
    assert not leaks(emu, emu.api_key, canary), "a task group's mapped argument was rendered"
    values = [
        r["body"]["assistantOverrides"]["variableValues"] for r in emu.requests(method="POST", path="/call")
    ]
    assert sorted(v["note"] for v in values) == sorted(texts)
    assert all(v["day"].startswith("20") for v in values), values  # the author's expression rendered
