"""Whole DAGs with ``dag.test()`` against the emulator: place, wait (poke and deferrable), hand over.

Each scripted outcome of the emulator ends in the right task state with the right XCom, and the
``structuredData`` a downstream task reads is exactly what the emulator produced for that call.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_vapi.idempotency import IDEMPOTENCY_METADATA_KEY
from airflow_provider_vapi.idempotency.persons import identity, token
from tests.dag_runner import run_dag, states, tries, xcom

pytestmark = pytest.mark.usefixtures("airflow_db", "vapi_conn")

# Outcomes the emulator scripts by the number's last four digits, and what the sensor should do.
OUTCOMES = {
    "+14155550001": ("not_reached", "success"),
    "+14155550002": ("not_reached", "success"),
    "+14155550003": ("voicemail", "success"),
    "+14155550004": ("error", "failed"),
    "+14155550005": ("error", "failed"),
    "+14155550007": ("completed", "success"),
    "+14155550123": ("completed", "success"),
}


def _campaign_dag(dag_id: str, emu: Any, mode: str) -> str:
    deferrable = mode == "deferrable"
    sensor_mode = "reschedule" if mode == "reschedule" else "poke"
    return f"""
    with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
        place = PlaceCallOperator.partial(
            task_id="place_call",
            assistant_id={emu.assistant_id!r},
            phone_number_id={emu.phone_number_id!r},
            metadata={{"campaign": "{{{{ dag.dag_id }}}}"}},
        ).expand(customer={list(OUTCOMES)!r})
        wait = CallStatusSensor.partial(
            task_id="wait",
            deferrable={deferrable!r},
            mode={sensor_mode!r},
            poke_interval=0.2,
            timeout=60,
        ).expand(call_id=place.output)
    """


@pytest.mark.parametrize("mode", ["deferrable", "poke", "reschedule"])
def test_every_scripted_outcome_mapped(vapi_emulator: Any, mode: str) -> None:
    dag_run = run_dag(f"outcomes_{mode}", _campaign_dag(f"outcomes_{mode}", vapi_emulator, mode))
    result = states(dag_run)
    calls = {c["customer"]["number"]: c for c in vapi_emulator.calls()}
    assert len(calls) == len(OUTCOMES), "one call per customer, no more"
    for index, (number, (outcome, state)) in enumerate(OUTCOMES.items()):
        assert result[("place_call", index)] == "success"
        call_id = xcom(dag_run, "place_call", map_index=index)
        assert call_id == calls[number]["id"]
        assert xcom(dag_run, "place_call", key="vapi_call_url", map_index=index).endswith(call_id)
        assert result[("wait", index)] == state, f"{number} ({outcome}) should leave the sensor {state}"
        if state != "success":
            continue
        final = xcom(dag_run, "wait", map_index=index)
        emulated = vapi_emulator.call(call_id)
        assert final["outcome"] == outcome
        assert final["endedReason"] == emulated["endedReason"]
        assert final["metadata"]["campaign"] == f"outcomes_{mode}", "the compact result keeps metadata"
        assert "artifact" not in final and "messages" not in final, "compact by default"
        if outcome == "completed" and number != "+14155550007":
            assert final["analysis"]["structuredData"] == emulated["analysis"]["structuredData"]
            assert final["analysis"]["structuredData"], "the seeded assistant has a schema"
        else:
            assert "structuredData" not in (final.get("analysis") or {})


def test_wait_for_completion_returns_the_call_and_downstream_reads_structured_data(
    vapi_emulator: Any,
) -> None:
    dag_run = run_dag(
        "place_and_wait",
        f"""
        from airflow.providers.common.compat.sdk import task

        with DAG("place_and_wait", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            call = PlaceCallOperator(
                task_id="call",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
                customer={{"number": "+14155550999", "name": "Ada"}},
                variable_values={{"name": "Ada"}},
                wait_for_completion=True,
                deferrable=True,
                poll_interval=0.2,
            )

            @task
            def load(final: dict) -> dict:
                return final["analysis"]["structuredData"]

            load(call.output)
        """,
    )
    assert states(dag_run) == {("call", -1): "success", ("load", -1): "success"}
    (emulated,) = vapi_emulator.calls()
    assert xcom(dag_run, "load") == emulated["analysis"]["structuredData"]
    assert xcom(dag_run, "call")["id"] == emulated["id"]


def test_a_batch_of_customers_in_one_request(vapi_emulator: Any) -> None:
    dag_run = run_dag(
        "batch",
        f"""
        with DAG("batch", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator(
                task_id="batch",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
                customers=["+14155550301", {{"number": "+14155550302", "name": "Bo"}}, "+14155550001"],
                wait_for_completion=True,
                poll_interval=0.2,
            )
        """,
    )
    assert states(dag_run) == {("batch", -1): "success"}
    assert len(vapi_emulator.requests(method="POST", path="/call")) == 1
    finals = xcom(dag_run, "batch")
    assert sorted(c["outcome"] for c in finals) == ["completed", "completed", "not_reached"]
    assert sorted(xcom(dag_run, "batch", key="call_id")) == sorted(c["id"] for c in vapi_emulator.calls())


def test_a_retry_after_the_worker_died_finds_its_call(vapi_emulator: Any) -> None:
    """The id never reached XCom (the answer was lost, then the worker died): the retry re-attaches."""
    vapi_emulator.faults(["drop"], method="POST", path="/call")
    dag_run = run_dag(
        "worker_dies",
        f"""
        class DiesAfterPlacing(PlaceCallOperator):
            def _remember(self, context, call_ids, batch):
                if context["ti"].try_number == 1:
                    raise RuntimeError("worker died before the call id was saved")
                super()._remember(context, call_ids, batch)

        with DAG("worker_dies", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            DiesAfterPlacing.partial(
                task_id="call",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
                retries=2,
                retry_delay=timedelta(seconds=0),
            ).expand(customer=["+14155550401", "+14155550402"])
        """,
    )
    assert states(dag_run) == {("call", 0): "success", ("call", 1): "success"}
    assert tries(dag_run) == {("call", 0): 2, ("call", 1): 2}
    calls = vapi_emulator.calls()
    numbers = sorted(c["customer"]["number"] for c in calls)
    assert numbers == ["+14155550401", "+14155550402"], "exactly one call per customer"
    for index in (0, 1):
        call_id = xcom(dag_run, "call", map_index=index)
        (call,) = [c for c in calls if c["id"] == call_id]
        key = call["assistantOverrides"]["metadata"][IDEMPOTENCY_METADATA_KEY]
        person = token(identity({"number": call["customer"]["number"]}))
        assert key == f"worker_dies/{dag_run.run_id}/call|{person}", "the person, not the map index"


def test_redial_on_retry_calls_again_only_when_nobody_was_reached(vapi_emulator: Any) -> None:
    dag_run = run_dag(
        "redial",
        f"""
        from airflow_provider_vapi.waiting.task import check_outcome

        class FailsFirstTry(PlaceCallOperator):
            def execute(self, context):
                result = super().execute(context)
                if context["ti"].try_number == 1:
                    raise RuntimeError("downstream hiccup after the call ended")
                return result

        with DAG("redial", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            FailsFirstTry.partial(
                task_id="call",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
                wait_for_completion=True,
                poll_interval=0.2,
                redial_on_retry=True,
                retries=1,
                retry_delay=timedelta(seconds=0),
            ).expand(customer=["+14155550001", "+14155550501"])
        """,
    )
    assert set(states(dag_run).values()) == {"success"}
    by_number: dict[str, int] = {}
    for call in vapi_emulator.calls():
        by_number[call["customer"]["number"]] = by_number.get(call["customer"]["number"], 0) + 1
    assert by_number == {"+14155550001": 2, "+14155550501": 1}, "busy is redialled, a conversation never"


def test_a_deferred_wait_that_times_out_ends_the_live_call(vapi_emulator: Any) -> None:
    dag_run = run_dag(
        "times_out",
        f"""
        with DAG("times_out", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator(
                task_id="call",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
                customer="+14155550006",
                wait_for_completion=True,
                deferrable=True,
                poll_interval=0.2,
                timeout=1.5,
                retries=2,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("call", -1): "failed"}
    assert tries(dag_run) == {("call", -1): 1}, "a timed-out wait ended the call: retrying cannot help"
    (call,) = vapi_emulator.calls()
    assert call["status"] == "ended" and call["endedReason"] == "manually-canceled"


BAD_INPUTS: dict[str, dict[str, Any]] = {
    "not_e164": {"customer": "555-0100"},
    "two_assistants": {"squad_id": "squad-1"},
    "no_caller_line": {"phone_number_id": None},
    "garbage_payload": {"payload": "{{ 'not json' }}"},
    "payload_not_object": {"payload": "[1, 2]"},
    "undefined_template": {"customer": "{{ params.nobody }}"},
    "name_too_long": {"name": "{{ dag.dag_id * 10 }}"},
    "bad_schedule": {"schedule_plan": {"latestAt": "2026-01-01T00:00:00Z"}},
}


def test_bad_inputs_fail_at_once_and_send_nothing(vapi_emulator: Any) -> None:
    base = {
        "assistant_id": vapi_emulator.assistant_id,
        "phone_number_id": vapi_emulator.phone_number_id,
        "customer": "+14155550100",
    }
    tasks = "\n".join(
        f"    PlaceCallOperator(task_id={name!r}, retries=3, retry_delay=timedelta(seconds=0), **{ {**base, **bad}!r})"
        for name, bad in BAD_INPUTS.items()
    )
    dag_run = run_dag(
        "bad_inputs",
        f"with DAG('bad_inputs', start_date=datetime(2026, 1, 1), schedule=None) as dag:\n{tasks}\n",
    )
    assert states(dag_run) == {(name, -1): "failed" for name in BAD_INPUTS}
    assert tries(dag_run) == {(name, -1): 1 for name in BAD_INPUTS}, "bad input must not be retried"
    assert vapi_emulator.requests() == [], "nothing may reach Vapi"


def test_one_sensor_waits_for_every_call_of_a_mapped_upstream(vapi_emulator: Any) -> None:
    dag_run = run_dag(
        "mapped_upstream",
        f"""
        with DAG("mapped_upstream", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            place = PlaceCallOperator.partial(
                task_id="place_call",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
            ).expand(customer=["+14155550601", "+14155550602"])
            wait = CallStatusSensor(
                task_id="wait",
                call_id="{{{{ ti.xcom_pull(task_ids='place_call') }}}}",
                deferrable=True,
                poke_interval=0.2,
            )
            place >> wait
        """,
    )
    assert states(dag_run)[("wait", -1)] == "success"
    finals = xcom(dag_run, "wait")
    assert sorted(c["id"] for c in finals) == sorted(c["id"] for c in vapi_emulator.calls())
    assert all(c["outcome"] == "completed" and c["analysis"]["structuredData"] for c in finals)


def test_a_sensor_waits_on_what_a_batch_operator_returned(vapi_emulator: Any) -> None:
    """A batch returns {"call_ids": [...], "errors": [...]}: the sensor takes the ids, not the keys."""
    dag_run = run_dag(
        "batch_then_sensor",
        f"""
        with DAG("batch_then_sensor", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            batch = PlaceCallOperator(
                task_id="batch",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
                customers=["+14155550701", "+14155550702"],
            )
            CallStatusSensor(task_id="wait", call_id=batch.output, deferrable=True, poke_interval=0.2)
        """,
    )
    assert states(dag_run) == {("batch", -1): "success", ("wait", -1): "success"}
    finals = xcom(dag_run, "wait")
    assert sorted(c["id"] for c in finals) == sorted(c["id"] for c in vapi_emulator.calls())


def test_a_batch_given_through_payload_resumes_as_a_batch(vapi_emulator: Any) -> None:
    dag_run = run_dag(
        "payload_batch",
        f"""
        with DAG("payload_batch", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator(
                task_id="batch",
                assistant_id={vapi_emulator.assistant_id!r},
                phone_number_id={vapi_emulator.phone_number_id!r},
                payload={{"customers": [{{"number": "+14155550801"}}, {{"number": "+14155550802"}}]}},
                wait_for_completion=True,
                deferrable=True,
                poll_interval=0.2,
            )
        """,
    )
    assert states(dag_run) == {("batch", -1): "success"}
    finals = xcom(dag_run, "batch")
    assert isinstance(finals, list) and len(finals) == 2, "both calls of the batch, not the first one"
