""" "Never dial twice", tried against the faults a production account meets (issue #11, holes 1-5).

Each test breaks the promise the way a real fault would: a Vapi slower than the client's timeout,
an upstream list that changed between tries, a batch answer lost with the refusals in it, an
``execution_timeout`` that hung up the call. All of them speak HTTP to the emulator; the task-level
ones run real task retries with ``dag.test()``. (A clear an hour later: tests/system/test_faults.py.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import pytest
from airflow import __version__ as airflow_version

from airflow_provider_vapi.exceptions import VapiCreateUnresolvedError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import CallBatchResponse
from tests.conftest import vapi_conn_json
from tests.dag_runner import run_dag, states, tries, xcom

AIRFLOW_2 = airflow_version.startswith("2.")


def body(emu: Any, number: str) -> dict[str, Any]:
    return {
        "assistantId": emu.assistant_id,
        "phoneNumberId": emu.phone_number_id,
        "customer": {"number": number},
    }


def per_number(emu: Any) -> Counter[str]:
    return Counter(c["customer"]["number"] for c in emu.calls() if c.get("customer"))


# -- 1. a create slower than the client's timeout ----------------------------------------------------


@pytest.mark.parametrize("factor", [1, 2, 5])
async def test_a_create_slower_than_the_timeout_is_waited_for_not_sent_again(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch, factor: int
) -> None:
    """The server finishes 1x, 2x, 5x the client's timeout after the client gave up: 100 people,
    100 POSTs, 100 calls. (Before: one listing found nothing yet, and the create was sent again.)"""
    emu, timeout = vapi_emulator, 0.3
    late = factor * timeout
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_SLOW",
        vapi_conn_json(
            emu.url, emu.api_key, timeout=timeout, retry_max_wait=0.2, create_settle_seconds=late + 3
        ),
    )
    emu.fault(f"late:{late:g}", method="POST", path="/call", rate=1.0)
    numbers = [f"+1555{factor:02d}004{i:03d}" for i in range(100)]
    hook = VapiHook("vapi_slow")
    try:
        calls = await asyncio.gather(
            *(
                hook.acreate_call(body(emu, n), idempotency_key=f"slow-{factor}-{i}")
                for i, n in enumerate(numbers)
            )
        )
    finally:
        await hook.aclose()
    assert len(emu.requests(method="POST", path="/call")) == 100, "every create was sent exactly once"
    assert per_number(emu) == Counter(numbers), "exactly one call per person"
    assert [c.customer["number"] for c in calls] == numbers  # type: ignore[index]


def test_a_create_that_cannot_be_resolved_fails_instead_of_dialling_again(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer, and Vapi cannot be asked whether the call was made: fail with a clear message."""
    emu = vapi_emulator
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_SLOW",
        vapi_conn_json(emu.url, emu.api_key, timeout=0.3, retry_max_wait=0.1, retry_total_seconds=2),
    )
    emu.fault("late:1", method="POST", path="/call", times=1)
    emu.fault(503, method="GET", path="/call", query={"createdAtGe": "*"}, rate=1.0)
    with pytest.raises(VapiCreateUnresolvedError, match="Not sending it again"):
        VapiHook("vapi_slow").create_call(body(emu, "+14155550421"), idempotency_key="unresolved")
    assert len(emu.requests(method="POST", path="/call")) == 1


# -- 2. an earlier call of the same key that went to someone else ---------------------------------


def test_the_lookup_never_returns_another_persons_call(vapi_conn: str, vapi_emulator: Any) -> None:
    """Alice's call carries the key; Bob's create with the same key gets a 503: the lookup must not
    hand back Alice's call (Bob would never be called)."""
    emu = vapi_emulator
    hook = VapiHook(vapi_conn)
    alice = hook.create_call(body(emu, "+14155550431"), idempotency_key="dag/run/task/3")
    emu.faults([503], method="POST", path="/call")
    bob = hook.create_call(body(emu, "+14155550432"), idempotency_key="dag/run/task/3")
    assert bob.id != alice.id and bob.customer == {"number": "+14155550432"}  # type: ignore[union-attr]
    assert per_number(emu) == Counter({"+14155550431": 1, "+14155550432": 1})


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_retry_calls_the_person_the_input_now_names(vapi_emulator: Any) -> None:
    """Map index 0 was Alice on try 1 and is Bob on try 2 (the upstream list changed): the retry
    calls Bob, and Alice is not called again."""
    emu = vapi_emulator
    dag_run = run_dag(
        "input_changed",
        f"""
        class FailsFirstTry(PlaceCallOperator):
            def execute(self, context):
                result = super().execute(context)
                if context["ti"].try_number == 1:
                    raise RuntimeError("the worker died after placing the call")
                return result

        with DAG("input_changed", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            FailsFirstTry(
                task_id="call",
                assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r},
                customer="{{{{ ti.try_number == 1 and '+14155550441' or '+14155550442' }}}}",
                retries=1,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("call", -1): "success"}
    calls = {c["customer"]["number"]: c for c in emu.calls()}
    assert sorted(calls) == ["+14155550441", "+14155550442"], "Alice once (try 1), Bob once (try 2)"
    assert xcom(dag_run, "call") == calls["+14155550442"]["id"], "the result is Bob's call"


# -- 4. a lost batch answer ------------------------------------------------------------------------


def test_a_lost_batch_answer_accounts_for_every_customer(vapi_conn: str, vapi_emulator: Any) -> None:
    """The answer (with its list of refusals) is lost and one customer has no call: that customer is
    reported in ``errors``, not silently left out."""
    emu = vapi_emulator
    numbers = ["+14155550451", "+14155550452", "+14155550453"]
    emu.faults(["drop"], method="POST", path="/call")
    emu.faults(["delay:3"], method="GET", path="/call", query={"createdAtGe": "*"})

    def delete_one() -> None:  # Vapi made two of the three calls: the third is made to vanish
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            made = [c for c in emu.calls() if c["customer"]["number"] == numbers[1]]
            if made:
                with emu.client() as http:
                    http.delete(f"/call/{made[0]['id']}").raise_for_status()
                return
            time.sleep(0.01)

    deleter = threading.Thread(target=delete_one)
    deleter.start()
    request = {**body(emu, numbers[0]), "customers": [{"number": n} for n in numbers]}
    del request["customer"]
    result = VapiHook(vapi_conn).create_call(request, idempotency_key="lost-batch")
    deleter.join()
    assert isinstance(result, CallBatchResponse)
    assert sorted(c.customer["number"] for c in result.results) == [numbers[0], numbers[2]]  # type: ignore[index]
    assert [e.customer["number"] for e in result.errors] == [numbers[1]]
    assert "no call was found" in result.errors[0].error
    assert len(emu.requests(method="POST", path="/call")) == 1, "nobody was called twice"


# -- 5. execution_timeout ----------------------------------------------------------------------------


@pytest.mark.skipif(
    AIRFLOW_2,
    reason="Airflow 2.11's dag.test() lets AirflowTaskTimeout escape and runs no retry after it; "
    "the rule is covered there by test_a_retry_refuses_a_call_an_earlier_try_cancelled",
)
@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_an_execution_timeout_is_not_turned_into_success_by_the_retry(vapi_emulator: Any) -> None:
    """The timeout hangs the call up; the retry must not re-attach to the cancelled call and pass."""
    emu = vapi_emulator
    dag_run = run_dag(
        "exec_timeout",
        f"""
        with DAG("exec_timeout", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator(
                task_id="call",
                assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r},
                customer="+14155550006",
                wait_for_completion=True,
                deferrable=False,
                poll_interval=0.2,
                execution_timeout=timedelta(seconds=2),
                retries=1,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("call", -1): "failed"}
    assert tries(dag_run) == {("call", -1): 2}
    (call,) = emu.calls()
    assert call["endedReason"] == "manually-canceled", "the first try's timeout hung it up"


# -- 7. a create answered 2xx with a body that cannot be read ---------------------------------------


@pytest.mark.parametrize(
    ("kind", "number"), [("html", "+14155550461"), ("null", "+14155550462"), ("truncated", "+14155550463")]
)
def test_a_create_answered_with_garbage_is_found_not_sent_again(
    vapi_conn: str, vapi_emulator: Any, kind: str, number: str
) -> None:
    """A 2xx made the call, whatever its body says: find it by its key, never send it again."""
    emu = vapi_emulator
    emu.faults([f"garbage:{kind}"], method="POST", path="/call")
    call = VapiHook(vapi_conn).create_call(body(emu, number), idempotency_key=f"garbage-{kind}")
    assert call.customer == {"number": number}  # type: ignore[union-attr]
    assert len(emu.requests(method="POST", path="/call")) == 1
    assert per_number(emu) == Counter({number: 1})


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_retry_refuses_a_call_an_earlier_try_cancelled(vapi_emulator: Any) -> None:
    """What a kill or timeout leaves behind, on every Airflow: try 1 hung up its call and died; the
    retry must neither report that call as finished nor dial again."""
    emu = vapi_emulator
    dag_run = run_dag(
        "cancelled_before",
        f"""
        from airflow_provider_vapi.hooks import VapiHook

        class KilledWhileWaiting(PlaceCallOperator):
            def _settled_calls(self, call_ids):
                if self._try == 1:
                    VapiHook().end_call(call_ids[0])  # what on_kill does
                    raise RuntimeError("killed while waiting")
                return super()._settled_calls(call_ids)

            def execute(self, context):
                self._try = context["ti"].try_number
                return super().execute(context)

        with DAG("cancelled_before", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            KilledWhileWaiting(
                task_id="call",
                assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r},
                customer="+14155550006",
                wait_for_completion=True,
                deferrable=False,
                poll_interval=0.2,
                retries=2,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("call", -1): "failed"}
    assert tries(dag_run) == {("call", -1): 2}, "the refusal is final: no third try"
    (call,) = emu.calls()
    assert call["endedReason"] == "manually-canceled"


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_redial_on_retry_still_redials_a_failed_not_reached_outcome(vapi_emulator: Any) -> None:
    """Outcome failures are final, except the ones redial_on_retry exists for."""
    emu = vapi_emulator
    dag_run = run_dag(
        "redial_failed",
        f"""
        with DAG("redial_failed", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            PlaceCallOperator(
                task_id="call",
                assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r},
                customer="+14155550001",
                wait_for_completion=True,
                deferrable=False,
                poll_interval=0.2,
                failure_outcomes=("error", "not_reached"),
                redial_on_retry=True,
                retries=2,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("call", -1): "failed"}
    assert tries(dag_run) == {("call", -1): 3}
    assert len(emu.calls()) == 3, "busy every time: one call per try"


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_retry_waits_out_the_create_its_dead_earlier_try_left_in_flight(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill at the worst moment: try 1 sends its create and dies before any answer; Vapi makes
    the call 2 s later. The retry starts at once and finds nothing yet: it must wait until that
    create can no longer appear (create_settle_seconds), find the call, and not dial again."""
    emu = vapi_emulator
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_DEFAULT",
        vapi_conn_json(emu.url, emu.api_key, timeout=5, retry_max_wait=0.2, create_settle_seconds=4),
    )
    emu.fault("late:2", method="POST", path="/call", times=1)
    dag_run = run_dag(
        "dies_mid_create",
        f"""
        import httpx
        from airflow_provider_vapi import idempotency
        from airflow_provider_vapi.placing import retry

        class DiesMidCreate(PlaceCallOperator):
            def execute(self, context):
                if context["ti"].try_number > 1:
                    return super().execute(context)
                request = self.build_request()
                retry.note_sending(context)  # as the operator does before every create
                body = idempotency.keyed_body(request, idempotency.task_key(context))
                try:  # the worker is gone 0.2 s after sending: no answer was ever read
                    httpx.post({emu.url + "/call"!r}, json=body, timeout=0.2,
                               headers={{"Authorization": "Bearer {emu.api_key}"}})
                except httpx.TimeoutException:
                    pass
                raise RuntimeError("the worker died with its create in flight")

        with DAG("dies_mid_create", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            DiesMidCreate(
                task_id="call",
                assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r},
                customer="+14155550471",
                retries=1,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("call", -1): "success"}
    assert tries(dag_run) == {("call", -1): 2}
    assert len(emu.requests(method="POST", path="/call")) == 1, "the retry did not send a create"
    (call,) = emu.calls()
    assert xcom(dag_run, "call") == call["id"], "the retry re-attached to the late call"
