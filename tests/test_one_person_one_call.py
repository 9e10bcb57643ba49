"""One person, one call, one result: the holes of issue #23, each shown with real HTTP against the
emulator (and ``dag.test()`` where the behaviour is a task's), counting calls and campaigns from
the emulator's own records.

Each test fails on the code before the person rule (commit af0c154), or guards a margin that no
test guarded before (setting :data:`~airflow_provider_vapi.wire.skew.CLOCK_SKEW` to zero fails it).
A moved row after a real clear: tests/system/test_moved_rows.py; every combination of faults:
tests/test_fault_simulation.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import CallBatchResponse

from .conftest import vapi_conn_json
from .dag_runner import run_dag, states, tries, xcom

#: Vapi's clock five minutes behind Airflow's: inside the ten-minute margin, far outside none.
BEHIND = -300.0


def per_number(emu: Any) -> Counter[str]:
    return Counter(c["customer"]["number"] for c in emu.calls())


def body(emu: Any, numbers: list[str]) -> dict[str, Any]:
    return {
        "assistantId": emu.assistant_id,
        "phoneNumberId": emu.phone_number_id,
        "customers": [{"number": n} for n in numbers],
    }


def run_dying_once(dag_id: str, task_id: str, emu: Any, params: str) -> Any:
    """``dag.test()`` a PlaceCallOperator (``params``: its extra arguments, source text) whose try 1
    dies after placing, before the ids are saved or anything is reported; it has one retry."""
    return run_dag(
        dag_id,
        f"""
        class DiesAfterPlacing(PlaceCallOperator):
            def _remember(self, context, call_ids, batch):
                if context["ti"].try_number == 1:
                    raise RuntimeError("worker died before the call ids were saved")
                super()._remember(context, call_ids, batch)

        with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
            DiesAfterPlacing(
                task_id={task_id!r},
                assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r},
                {params},
                retries=1,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )


@pytest.fixture
def conn(vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """``vapi_default`` with a short settle, so that a lost answer is resolved in seconds."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_DEFAULT",
        vapi_conn_json(
            vapi_emulator.url, vapi_emulator.api_key, timeout=5, retry_max_wait=0.2, create_settle_seconds=2
        ),
    )
    return "vapi_default"


# -- hole 4: a batch too large to look up ------------------------------------------------------------


def test_a_lost_answer_to_a_batch_of_more_than_1000_is_resolved(conn: str, vapi_emulator: Any) -> None:
    """1,001 customers, every answer lost: before the split, the lookup met more than 1,000 calls
    stamped with one ``createdAt`` and raised ``PagingError`` with the calls live and no ids."""
    emu = vapi_emulator
    numbers = [f"+1415600{i:04d}" for i in range(1001)]
    emu.faults(["drop"] * 3, method="POST", path="/call")
    result = VapiHook(conn).create_call(body(emu, numbers), idempotency_key="big-batch")
    assert isinstance(result, CallBatchResponse)
    assert result.errors == []
    assert sorted(c.customer["number"] for c in result.results) == numbers  # type: ignore[index]
    posts = emu.requests(method="POST", path="/call")
    assert [len(p["body"]["customers"]) for p in posts] == [500, 500, 1], "at most half a page a request"
    assert set(per_number(emu).values()) == {1}, "nobody called twice"


# -- the margin: Vapi's clock behind Airflow's --------------------------------------------------------


def test_a_lost_create_answer_is_found_when_vapis_clock_is_behind(conn: str, vapi_emulator: Any) -> None:
    """The call is stamped five minutes before the worker's "now": a lookup from "now" misses it and
    would send the create again."""
    emu = vapi_emulator
    emu.set_clock_offset(BEHIND)
    emu.faults(["drop"], method="POST", path="/call")
    request = {**body(emu, []), "customer": {"number": "+14156000001"}}
    del request["customers"]
    call = VapiHook(conn).create_call(request, idempotency_key="skewed")
    assert per_number(emu) == Counter({"+14156000001": 1})
    assert call.id == emu.calls()[0]["id"]  # type: ignore[union-attr]


@pytest.mark.usefixtures("airflow_db")
def test_a_retry_finds_its_call_when_vapis_clock_is_behind(conn: str, vapi_emulator: Any) -> None:
    """Try 1 places the call and dies before saving its id; Vapi stamped the call five minutes
    before the dag run began (by Airflow's clock). The retry must still find it."""
    emu = vapi_emulator
    emu.set_clock_offset(BEHIND)
    dag_run = run_dying_once("skewed_retry", "call", emu, 'customer="+14156000002"')
    assert states(dag_run) == {("call", -1): "success"}
    assert tries(dag_run) == {("call", -1): 2}
    assert per_number(emu) == Counter({"+14156000002": 1}), "the retry re-attached, it did not dial again"


# -- hole 2: a second campaign ---------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
def test_a_campaign_killed_after_its_create_is_not_created_again_when_vapis_clock_is_behind(
    conn: str, vapi_emulator: Any
) -> None:
    """Try 1 creates the campaign and dies before saving its id; Vapi's clock is 60 s behind, so the
    campaign is stamped before the dag run began. Before the margin, the retry's lookup started at
    the run's start, missed it, and made a second campaign: the same people dialled twice."""
    emu = vapi_emulator
    emu.set_clock_offset(-60.0)
    dag_run = run_dag(
        "skewed_campaign",
        f"""
        from airflow_provider_vapi.operators import RunCampaignOperator

        class DiesAfterCreating(RunCampaignOperator):
            def _publish(self, context, campaign):
                if context["ti"].try_number == 1:
                    raise RuntimeError("worker died right after the create")
                super()._publish(context, campaign)

        with DAG("skewed_campaign", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            DiesAfterCreating(
                task_id="campaign",
                assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r},
                customers=["+14156000011", "+14156000012"],
                wait_for_completion=False,
                retries=1,
                retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("campaign", -1): "success"}
    assert tries(dag_run) == {("campaign", -1): 2}
    assert len(emu.campaigns()) == 1, "one campaign per task"


# -- hole 3: a refusal that vanished on a retry ------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
def test_a_refused_customer_keeps_failing_the_task_after_a_retry(conn: str, vapi_emulator: Any) -> None:
    """Vapi refuses one customer of the batch (an empty ``sipUri``); the worker dies before the task
    reports it. Before, the retry found the earlier calls, returned them with ``errors=[]`` and
    turned green: the refused person was silently never called. Now the retry asks Vapi again for
    every person without a call: the refusal stands, so the task fails again, naming who."""
    emu = vapi_emulator
    dag_run = run_dying_once(
        "refusal_retried", "batch", emu, 'customers=["+14156000021", {"sipUri": "", "name": "Refused"}]'
    )
    assert states(dag_run) == {("batch", -1): "failed"}, "the refusal still stands: the task fails"
    assert tries(dag_run) == {("batch", -1): 2}
    assert per_number(emu) == Counter({"+14156000021": 1}), "the placed person was not called again"
    posts = emu.requests(method="POST", path="/call")
    assert [len(p["body"]["customers"]) for p in posts] == [2, 1], "the retry asked only for the refused one"


# -- hole 1, in one task: a batch whose list moved, grew and shrank between tries ------------------------


@pytest.mark.usefixtures("airflow_db")
def test_a_retried_batch_whose_list_changed_calls_each_person_once_and_reports_who_left(
    conn: str, vapi_emulator: Any
) -> None:
    """Try 1 calls A and B and dies; try 2's list is C, A (A moved, B left, C is new). Before, the
    key was the batch position: the retry saw that the earlier calls went to other customers than
    its list and sent the whole batch again, calling A a second time. Now A is not called again, C
    is, and B's call is reported as left."""
    emu = vapi_emulator
    a, b, c = "+14156000031", "+14156000032", "+14156000033"
    dag_run = run_dying_once(
        "batch_moved",
        "batch",
        emu,
        f'customers="{{{{ (ti.try_number == 1 and [{a!r}, {b!r}] or [{c!r}, {a!r}]) | tojson }}}}"',
    )
    assert states(dag_run) == {("batch", -1): "success"}
    assert per_number(emu) == Counter({a: 1, b: 1, c: 1}), "each person once"
    result = xcom(dag_run, "batch")
    by_number = {call["customer"]["number"]: call["id"] for call in emu.calls()}
    assert result["call_ids"] == [by_number[c], by_number[a]], "in the list's order, person by person"
    assert result["left"] == [by_number[b]] and result["errors"] == []
