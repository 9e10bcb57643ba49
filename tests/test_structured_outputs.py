"""Structured outputs end to end, against the emulator: the wait delivers them, and a re-extraction
over past calls asks for each call once, whatever happens to the task in between."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest

from airflow_provider_vapi.structured_outputs.api import StructuredOutputApi
from airflow_provider_vapi.triggers import CallStatusTrigger
from tests.dag_runner import run_dag, states, tries, xcom

CONFIRMED = {
    "name": "appointment_confirmed",
    "schema": {"type": "boolean", "description": "Did they confirm?"},
}
CALLBACK = {
    "name": "callback",
    "schema": {"type": "object", "properties": {"wanted": {"type": "boolean"}, "day": {"type": "string"}}},
}
RUN = "/structured-output/run"


def _has_state_store() -> bool:
    """Whether tasks get ``context["task_state_store"]`` (Airflow 3.3+), which outlives a try."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return False
    return hasattr(task_runner, "TaskStateStoreAccessor")


STATE_STORE = _has_state_store()


def create_output(emu: Any, definition: dict[str, Any]) -> dict[str, Any]:
    with emu.client() as http:
        answer = http.post("/structured-output", json=definition)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def create_assistant(emu: Any, **fields: Any) -> str:
    with emu.client() as http:
        answer = http.post("/assistant", json={"name": "outputs", "firstMessage": "Hello!", **fields})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def ended_calls(emu: Any, count: int, number: str = "+14155550123") -> list[str]:
    """``count`` finished calls (a conversation's analysis written), oldest first."""
    emu.configure(speed=1000, concurrency_limit=count + 10)
    ids = [emu.create_call(number)["id"] for _ in range(count)]
    talked = number == "+14155550123"
    for call_id in ids:
        emu.wait_for(call_id, analysis=talked, timeout=60)
    return ids


def accepted_runs(emu: Any) -> list[list[str]]:
    """The call ids of every run request the emulator accepted (2xx), in order."""
    bodies = [e["body"] for e in emu.requests("POST", RUN) if 200 <= int(e["status"]) < 300]
    return [(json.loads(b) if isinstance(b, str) else b)["callIds"] for b in bodies]


# -- the wait delivers structured outputs ---------------------------------------------------------


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_a_structured_outputs_assistant_hands_every_result_downstream(
    vapi_emulator: Any, deferrable: bool
) -> None:
    """The outputs arrive well after the analysis and after several polls: the wait still holds
    out for them (on the old code it settled on the analysis and handed down nothing)."""
    emu = vapi_emulator
    confirmed, callback = create_output(emu, CONFIRMED), create_output(emu, CALLBACK)
    assistant = create_assistant(emu, artifactPlan={"structuredOutputIds": [confirmed["id"], callback["id"]]})
    # Emulated seconds at 10x: the analysis 50 ms after the end, the outputs 1.5 s (7 polls) after.
    emu.configure(speed=10, analysis_delay=0.5, structured_output_delay=15)
    dag_run = run_dag(
        f"outputs_{deferrable}",
        f"""
        with DAG("outputs_{deferrable}", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator(
                task_id="call", assistant_id={assistant!r}, phone_number_id={emu.phone_number_id!r},
                customer="+14155550123", wait_for_completion=True, deferrable={deferrable!r},
                poll_interval=0.2, timeout=60,
            )
        """,
    )
    assert states(dag_run) == {("call", -1): "success"}
    result = xcom(dag_run, "call")
    on_vapi = emu.call(result["id"])["artifact"]["structuredOutputs"]
    assert result["structuredOutputs"] == {
        "appointment_confirmed": on_vapi[confirmed["id"]]["result"],
        "callback": on_vapi[callback["id"]]["result"],
    }
    assert set(result["structuredOutputs"]["callback"]) <= {"wanted", "day"}
    assert "summary" in result["analysis"], "the analysis is handed on beside the outputs"


@pytest.mark.usefixtures("vapi_conn")
def test_the_trigger_waits_for_outputs_that_lag_the_analysis(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    output = create_output(emu, CONFIRMED)
    inline = {"name": "mood", "schema": {"type": "string", "enum": ["good", "bad"]}}
    assistant = create_assistant(
        emu, artifactPlan={"structuredOutputIds": [output["id"]], "structuredOutputs": [inline]}
    )
    emu.configure(speed=10, analysis_delay=0.5, structured_output_delay=10)  # 50 ms, then 1 s
    call_id = emu.create_call(assistantId=assistant)["id"]

    async def wait() -> list[dict[str, Any]]:
        trigger = CallStatusTrigger(call_id, "vapi_default", poll_interval=0.1, analysis_grace_period=60)
        return [dict(event.payload) async for event in trigger.run()]

    events = asyncio.run(wait())
    assert events[0]["status"] == "success"
    names = {entry["name"] for entry in emu.call(call_id)["artifact"]["structuredOutputs"].values()}
    assert names == {"appointment_confirmed", "mood"}, "the event came only once both were written"


@pytest.mark.usefixtures("vapi_conn")
def test_a_wait_whose_assistant_cannot_be_read_still_ends(
    vapi_emulator: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Vapi refuses to show the assistant (404 here): the wait falls back to the analysis rule,
    says so, and ends with the call's result; it neither hangs nor fails."""
    emu = vapi_emulator
    output = create_output(emu, CONFIRMED)
    assistant = create_assistant(emu, artifactPlan={"structuredOutputIds": [output["id"]]})
    emu.configure(speed=10, analysis_delay=0.5, structured_output_delay=600)  # outputs after a minute
    emu.faults([404] * 20, method="GET", path=f"/assistant/{assistant}")
    call_id = emu.create_call(assistantId=assistant)["id"]

    async def wait() -> list[dict[str, Any]]:
        trigger = CallStatusTrigger(call_id, "vapi_default", poll_interval=0.1, analysis_grace_period=60)
        return [dict(event.payload) async for event in trigger.run()]

    started = time.monotonic()
    events = asyncio.run(wait())
    assert events[0]["status"] == "success"
    assert time.monotonic() - started < 30, "settled on the analysis, not held for the outputs"
    out = capsys.readouterr()
    logged = out.out + out.err + caplog.text  # Airflow 3 logs through structlog, 2.11 through logging
    assert f"Could not read assistant {assistant}" in logged


# -- re-extraction ---------------------------------------------------------------------------------


def _extract_dag(dag_id: str, output_id: str, call_ids: list[str], cls: str = "RunStructuredOutputOperator",
                 **params: Any) -> str:  # fmt: skip
    extra = "".join(f", {k}={v!r}" for k, v in params.items())
    return f"""
    with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
        {cls}(
            task_id="extract", structured_output_id={output_id!r}, call_ids={call_ids!r},
            poll_interval=0.2, retries=1, retry_delay=timedelta(seconds=0){extra},
        )
    """


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_reextraction_over_250_calls_asks_for_each_call_once_across_a_retry(vapi_emulator: Any) -> None:
    """Three chunks (100, 100, 50); a gateway loses the third (502: it may have run, so it is not
    sent again), so the first try ends without 50 results. The retry asks for exactly those 50: no
    call is in two accepted run requests. (Vapi's own 500 is sent again at once:
    ``tests/test_structured_output_faults.py``.)"""
    emu = vapi_emulator
    call_ids = ended_calls(emu, 250)
    output = create_output(emu, CONFIRMED)
    emu.configure(structured_output_delay=0.2)
    emu.faults(["ok", "ok", 502], method="POST", path=RUN)
    emu.clear_requests()
    dag_run = run_dag(
        "reextract_250", _extract_dag("reextract_250", output["id"], call_ids, results_timeout=3)
    )
    assert states(dag_run) == {("extract", -1): "success"}
    assert tries(dag_run)[("extract", -1)] == 2, "the first try failed on the lost chunk"
    runs = accepted_runs(emu)
    asked = Counter(call_id for run in runs for call_id in run)
    assert sorted(asked) == sorted(call_ids) and set(asked.values()) == {1}, "every call asked for once"
    assert [len(run) for run in runs] == [100, 100, 50]
    result = xcom(dag_run, "extract")
    assert len(result["results"]) == 250 and result["missing"] == [] and result["name"] == CONFIRMED["name"]
    for call_id in call_ids[:3]:
        assert (
            result["results"][call_id]
            == emu.call(call_id)["artifact"]["structuredOutputs"][output["id"]]["result"]
        )


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
@pytest.mark.parametrize(
    "delay",
    [
        pytest.param(0.8, id="within-settle"),
        pytest.param(
            6.0,
            id="past-settle",
            marks=pytest.mark.skipif(not STATE_STORE, reason="the task state store is Airflow 3.3+"),
        ),
    ],
)
def test_a_try_killed_after_asking_is_not_followed_by_a_second_ask(vapi_emulator: Any, delay: float) -> None:
    """The worst moment: every chunk accepted, the results not written yet, and the try dies. The
    retry finds no fresh results but must not ask again: it waits for them. Results slower than
    the connection's create_settle_seconds (1 s here) are only waited for through the task state
    store (Airflow 3.3+); on 2.11 the retry waits create_settle_seconds, then asks again."""
    emu = vapi_emulator
    call_ids = ended_calls(emu, 120)
    output = create_output(emu, CONFIRMED)
    emu.configure(speed=1, structured_output_delay=delay)  # the delay is in emulated seconds
    emu.clear_requests()
    subclass = """
    class DiesAfterAsking(RunStructuredOutputOperator):
        def _submit(self, context, ref, since, todo):
            asked = super()._submit(context, ref, since, todo)
            if context["ti"].try_number == 1:
                raise RuntimeError("the worker died right after asking")
            return asked
    """
    body = subclass + _extract_dag("killed_after_asking", output["id"], call_ids, cls="DiesAfterAsking")
    dag_run = run_dag("killed_after_asking", body)
    assert states(dag_run) == {("extract", -1): "success"}
    assert tries(dag_run)[("extract", -1)] == 2
    assert [len(run) for run in accepted_runs(emu)] == [100, 20], "asked once, by the first try only"
    assert len(xcom(dag_run, "extract")["results"]) == 120


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_run_whose_answer_is_lost_is_not_sent_again(vapi_emulator: Any) -> None:
    """Vapi takes longer than the request timeout (5 s) to answer, but runs the extraction: the
    operator does not resend, and the results it waits for arrive."""
    emu = vapi_emulator
    call_ids = ended_calls(emu, 3)
    output = create_output(emu, CONFIRMED)
    emu.configure(structured_output_delay=0.1)
    emu.faults(["late:6"], method="POST", path=RUN)
    emu.clear_requests()
    dag_run = run_dag(
        "lost_run_answer", _extract_dag("lost_run_answer", output["id"], call_ids, results_timeout=30)
    )
    assert states(dag_run) == {("extract", -1): "success"}
    assert tries(dag_run)[("extract", -1)] == 1
    assert len(emu.requests("POST", RUN)) == 1, "sent once"
    assert len(xcom(dag_run, "extract")["results"]) == 3


@pytest.mark.usefixtures("vapi_conn")
def test_a_refused_run_is_sent_again_and_a_bad_one_is_not(vapi_emulator: Any) -> None:
    """429, a connection that never opened and Vapi's own 500 mean nothing ran: sent again (the
    500 after a settle). A 400 is final, and carries Vapi's reason. A gateway's 502 may have
    started the run: not sent again, and said so."""
    from airflow_provider_vapi.exceptions import VapiBadRequestError, VapiRunUnresolvedError
    from airflow_provider_vapi.hooks import VapiHook

    emu = vapi_emulator
    (call_id,) = ended_calls(emu, 1)
    output = create_output(emu, CONFIRMED)
    hook = VapiHook()
    emu.faults([429], method="POST", path=RUN)
    emu.clear_requests()
    assert StructuredOutputApi(hook).run({"structuredOutputId": output["id"], "callIds": [call_id]})["workflowId"]
    assert [r["status"] for r in emu.requests("POST", RUN)] == [429, 200]
    emu.clear_requests()
    with pytest.raises(VapiBadRequestError, match="not-a-call"):
        StructuredOutputApi(hook).run({"structuredOutputId": output["id"], "callIds": ["not-a-call"]})
    assert len(emu.requests("POST", RUN)) == 1
    emu.faults([500], method="POST", path=RUN)
    emu.clear_requests()
    body = {"structuredOutputId": output["id"], "callIds": [call_id]}
    assert StructuredOutputApi(hook).run(body)["workflowId"]
    assert [r["status"] for r in emu.requests("POST", RUN)] == [500, 200]
    emu.faults([502], method="POST", path=RUN)
    emu.clear_requests()
    with pytest.raises(VapiRunUnresolvedError, match="not sent again"):
        StructuredOutputApi(hook).run({"structuredOutputId": output["id"], "callIds": [call_id]})
    assert len(emu.requests("POST", RUN)) == 1


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_an_inline_output_over_a_window_skips_silent_calls_and_leaves_out_live_ones(
    vapi_emulator: Any,
) -> None:
    """Deferred: the trigger waits for the results of exactly the calls asked for."""
    emu = vapi_emulator
    talked = ended_calls(emu, 2)
    silent = ended_calls(emu, 1, number="+14155550002")  # not answered: nobody spoke
    emu.configure(speed=1, structured_output_delay=0.1)
    live = emu.create_call("+14155550123")["id"]
    started = time.time()
    inline = {"name": "mood", "schema": {"type": "string", "enum": ["good", "bad"]}}
    dag_run = run_dag(
        "window",
        f"""
        with DAG("window", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunStructuredOutputOperator(
                task_id="extract", structured_output={inline!r}, poll_interval=0.2, deferrable=True,
                created_after="2000-01-01T00:00:00Z", created_before="2999-01-01T00:00:00Z",
            )
        """,
    )
    assert states(dag_run) == {("extract", -1): "success"}
    result = xcom(dag_run, "extract")
    assert set(result["results"]) == set(talked) and set(result["results"].values()) <= {"good", "bad"}
    assert set(result["skipped"]) == set(silent)
    assert live not in result["results"] and live not in result["skipped"]
    assert [sorted(run) for run in accepted_runs(emu)] == [sorted(talked)], "silent calls are not asked for"
    assert time.time() - started < 60


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_an_inline_outputs_liquid_placeholders_reach_vapi_untouched(vapi_emulator: Any) -> None:
    """``{{transcript}}`` in the output's prompt is Vapi's (Liquid), ``{{ ds }}`` is Airflow's: the
    run request carries the first as written and the second rendered (the task does not fail on
    an undefined ``transcript``)."""
    emu = vapi_emulator
    (call_id,) = ended_calls(emu, 1)
    emu.configure(structured_output_delay=0.1)
    inline = {
        "name": "mood",
        "description": "Calls of {{ ds }}",
        "schema": {"type": "string", "enum": ["good", "bad"]},
        "model": {
            "provider": "openai",
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "Read {{transcript}} and say how {{ customer.name }} felt."}],
        },
    }
    dag_run = run_dag(
        "liquid",
        f"""
        with DAG("liquid", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunStructuredOutputOperator(
                task_id="extract", structured_output={inline!r}, call_ids=[{call_id!r}], poll_interval=0.2,
            )
        """,
    )
    assert states(dag_run) == {("extract", -1): "success"}
    (sent,) = [e["body"] for e in emu.requests("POST", RUN)]
    output = (json.loads(sent) if isinstance(sent, str) else sent)["structuredOutput"]
    assert output["model"]["messages"][0]["content"] == "Read {{transcript}} and say how {{ customer.name }} felt."
    assert output["description"] == f"Calls of {dag_run.logical_date:%Y-%m-%d}"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"call_ids": ["c"]}, "exactly one of structured_output_id"),
        ({"structured_output_id": "o", "structured_output": CONFIRMED, "call_ids": ["c"]}, "exactly one of"),
        ({"structured_output_id": "o"}, "exactly one of call_ids or created_after"),
    ],
)
def test_bad_parameters_are_refused_when_the_dag_is_parsed(params: dict[str, Any], message: str) -> None:
    from airflow_provider_vapi.operators import RunStructuredOutputOperator

    with pytest.raises(ValueError, match=message):
        RunStructuredOutputOperator(task_id="t", **params)


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"name": "x"}, "structured_output.schema must be"),
        ({"schema": {"type": "string"}}, "structured_output.name"),
    ],
)
def test_a_bad_inline_output_fails_before_any_request(
    vapi_emulator: Any, definition: dict[str, Any], message: str
) -> None:
    emu = vapi_emulator
    emu.clear_requests()
    dag_run = run_dag(
        "bad_inline",
        f"""
        with DAG("bad_inline", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunStructuredOutputOperator(task_id="extract", structured_output={definition!r}, call_ids=["c1"])
        """,
    )
    assert states(dag_run) == {("extract", -1): "failed"}
    assert emu.requests() == [], "nothing was sent"
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_vapi.operators import RunStructuredOutputOperator

    operator = RunStructuredOutputOperator(task_id="t", structured_output=definition, call_ids=["c1"])
    with pytest.raises(AirflowFailException, match=message):
        operator._prepare({})  # type: ignore[arg-type]
