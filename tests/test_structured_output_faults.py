"""``POST /structured-output/run`` under faults, judged as a call create is (``judge_send``): Vapi's
own 500/503 means nothing ran, so the run is sent again after a short settle instead of waiting the
whole ``results_timeout`` for results that cannot come; a lost answer or a gateway's 502/504 may
have started it, so it is never sent again. Each test runs its own emulator (its faults are its own).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_vapi.emulator.client import EmulatorHandle
from airflow_provider_vapi.structured_outputs.api import StructuredOutputApi
from tests.conftest import vapi_conn_json
from tests.dag_runner import run_dag, states, tries, xcom

RUN = "/structured-output/run"
TALKS = "+14155550123"  # a completed conversation
CONFIRMED = {"name": "appointment_confirmed", "schema": {"type": "boolean"}}
#: Far longer than any test here may take: a test that waits for it has failed.
RESULTS_TIMEOUT = 30.0
#: What "answered within seconds" means: a settle of a second or two, the results' delay, Airflow.
PROMPT = 15.0


@pytest.fixture
def emu(vapi_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    """An emulator of this test's own, ``vapi_default`` pointing at it (short retry waits)."""
    handle: EmulatorHandle = vapi_emulator_factory(speed=1000, concurrency_limit=20)
    conn = vapi_conn_json(
        handle.url,
        handle.api_key,
        timeout=5,
        retry_max_wait=0.2,
        retry_total_seconds=20,
        create_settle_seconds=1,
    )
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", conn)
    yield handle


def ended_calls(emu: EmulatorHandle, count: int) -> list[str]:
    ids = [emu.create_call(TALKS)["id"] for _ in range(count)]
    for call_id in ids:
        emu.wait_for(call_id, analysis=True, timeout=60)
    return ids


def create_output(emu: EmulatorHandle) -> dict[str, Any]:
    output = emu.create_structured_output(CONFIRMED["name"], CONFIRMED["schema"])
    emu.configure(speed=1, structured_output_delay=0.2)
    emu.clear_requests()
    return output


def statuses(emu: EmulatorHandle) -> list[int]:
    return [int(entry["status"]) for entry in emu.requests("POST", RUN)]


def asked_per_call(emu: EmulatorHandle) -> Counter[str]:
    """How many runs the emulator accepted (2xx) for each call, from its request log."""
    bodies = [e["body"] for e in emu.requests("POST", RUN) if 200 <= int(e["status"]) < 300]
    return Counter(cid for b in bodies for cid in (json.loads(b) if isinstance(b, str) else b)["callIds"])


def sent_at(emu: EmulatorHandle) -> list[datetime]:
    """When each run request reached the emulator (its request log, this machine's clock)."""
    return [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in emu.requests("POST", RUN)]


def took(emu: EmulatorHandle, dag_run: Any) -> float:
    """Seconds from the first run request to the end of the task (Airflow's start-up of a try,
    which under load alone can take longer than the whole extraction, not counted)."""
    (ti,) = dag_run.get_task_instances()
    end = ti.end_date or dag_run.end_date
    return float((end - sent_at(emu)[0]).total_seconds())


def extract_dag(dag_id: str, output_id: str, call_ids: list[str], retries: int = 0) -> str:
    return f"""
    with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
        RunStructuredOutputOperator(
            task_id="extract", structured_output_id={output_id!r}, call_ids={call_ids!r},
            poll_interval=0.2, results_timeout={RESULTS_TIMEOUT!r}, deferrable=False,
            retries={retries}, retry_delay=timedelta(seconds=0),
        )
    """


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("status", [503, 500])
def test_vapis_own_error_on_the_run_is_sent_again_at_once(emu: EmulatorHandle, status: int) -> None:
    """On the old code the 503 was taken for a run under way: the task waited the whole
    results_timeout for results that never came, then failed."""
    call_ids = ended_calls(emu, 3)
    output = create_output(emu)
    emu.fault(status, method="POST", path=RUN)
    dag_run = run_dag(f"run_{status}", extract_dag(f"run_{status}", output["id"], call_ids))
    assert states(dag_run) == {("extract", -1): "success"}
    assert took(emu, dag_run) < PROMPT, f"took {took(emu, dag_run):.1f}s: waited for results_timeout"
    assert tries(dag_run)[("extract", -1)] == 1
    assert statuses(emu) == [status, 200], "sent again once, after Vapi's own error"
    assert asked_per_call(emu) == dict.fromkeys(call_ids, 1), "exactly one run per call"
    result = xcom(dag_run, "extract")
    assert result["missing"] == [] and set(result["results"]) == set(call_ids)
    for call_id in call_ids:
        on_vapi = emu.call(call_id)["artifact"]["structuredOutputs"][output["id"]]["result"]
        assert result["results"][call_id] == on_vapi


@pytest.mark.usefixtures("airflow_db")
def test_a_try_that_only_got_vapis_errors_is_followed_by_a_prompt_retry(emu: EmulatorHandle) -> None:
    """Every attempt of the first try gets a 503: it fails at once (nothing ran). The retry asks
    again at once: no wait for results of a run that never started (the task state store forgets
    the calls; on 2.11 the retry settles create_settle_seconds)."""
    from airflow_provider_vapi.hooks import VapiHook

    call_ids = ended_calls(emu, 2)
    output = create_output(emu)
    attempts = VapiHook().settings.policy.max_attempts
    emu.fault(503, method="POST", path=RUN, times=attempts)
    dag_run = run_dag("run_503_all", extract_dag("run_503_all", output["id"], call_ids, retries=1))
    assert states(dag_run) == {("extract", -1): "success"}
    assert tries(dag_run)[("extract", -1)] == 2, "the first try failed on Vapi's errors"
    assert statuses(emu) == [503] * attempts + [200]
    last_error, asked = sent_at(emu)[-2:]
    gap = (asked - last_error).total_seconds()
    assert gap < PROMPT, f"the retry asked {gap:.1f}s after the last 503: waited for results_timeout"
    assert asked_per_call(emu) == dict.fromkeys(call_ids, 1), "exactly one run per call"
    assert len(xcom(dag_run, "extract")["results"]) == 2


@pytest.mark.parametrize("action", ["502", "504", "drop"])
def test_a_run_that_may_be_under_way_is_never_sent_again(emu: EmulatorHandle, action: str) -> None:
    """A gateway's 502/504 or a lost answer: the run may be under way; sent once, and said so."""
    from airflow_provider_vapi.exceptions import VapiRunUnresolvedError
    from airflow_provider_vapi.hooks import VapiHook

    (call_id,) = ended_calls(emu, 1)
    output = create_output(emu)
    emu.fault(action, method="POST", path=RUN)
    hook = VapiHook()
    try:
        with pytest.raises(VapiRunUnresolvedError, match="not sent again"):
            StructuredOutputApi(hook).run({"structuredOutputId": output["id"], "callIds": [call_id]})
    finally:
        hook.close()
    assert len(statuses(emu)) == 1, "sent once"


def test_vapis_errors_beyond_the_retry_budget_fail_as_themselves(emu: EmulatorHandle) -> None:
    """503 every time: resent within the budget, each after a settle, then Vapi's error is raised
    (not "may be under way": nothing ran)."""
    from airflow_provider_vapi.exceptions import VapiError, VapiRunUnresolvedError
    from airflow_provider_vapi.hooks import VapiHook

    (call_id,) = ended_calls(emu, 1)
    output = create_output(emu)
    emu.fault(503, method="POST", path=RUN, rate=1.0)
    hook = VapiHook()
    began = time.monotonic()
    try:
        with pytest.raises(VapiError) as failed:
            StructuredOutputApi(hook).run({"structuredOutputId": output["id"], "callIds": [call_id]})
    finally:
        hook.close()
    assert not isinstance(failed.value, VapiRunUnresolvedError)
    attempts = hook.settings.policy.max_attempts
    assert statuses(emu) == [503] * attempts
    assert time.monotonic() - began >= (attempts - 1) * 0.9, "each resend waited for the settle"
