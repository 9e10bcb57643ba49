"""Campaigns, tried against the faults a production account meets: the create answered late, lost,
or with garbage; a task that dies with its create in flight; a retry whose upstream list changed; a
wait that runs out of time; a kill. Each test speaks HTTP to the emulator's ``/v2/campaign``; the
task-level ones run real retries with ``dag.test()``. (A clear days later: tests/system.)"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from airflow.exceptions import AirflowTaskTimeout

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.models import Campaign
from airflow_provider_vapi.campaigns.once import keyed_name, marker
from airflow_provider_vapi.campaigns.operator import RunCampaignOperator
from airflow_provider_vapi.exceptions import VapiCampaignTimeoutError, VapiCreateUnresolvedError
from airflow_provider_vapi.hooks import VapiHook
from tests.conftest import vapi_conn_json
from tests.dag_runner import run_dag, states, tries, xcom

HEADER = "        from airflow_provider_vapi.operators import RunCampaignOperator\n"  # indented as the DAG bodies


def body(emu: Any, numbers: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "test campaign",
        "assistantId": emu.assistant_id,
        "phoneNumberId": emu.phone_number_id,
        "customers": [{"number": n} for n in numbers],
        **extra,
    }


def campaigns(emu: Any) -> list[dict[str, Any]]:
    with emu.client() as http:
        answer = http.get("/v2/campaign", params={"limit": 1000})
        answer.raise_for_status()
        return answer.json()["results"]  # type: ignore[no-any-return]


def calls_of(emu: Any, campaign_id: str) -> list[dict[str, Any]]:
    return [c for c in emu.calls() if c.get("campaignId") == campaign_id]


def wait_until_over(hook: VapiHook, campaign_id: str, seconds: float = 60) -> Campaign:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        campaign = CampaignApi(hook).get(campaign_id)
        if campaign.is_over and campaign.counters.dispatched == 0:
            return campaign
        time.sleep(0.05)
    raise AssertionError(f"campaign {campaign_id} still running after {seconds}s")


def numbers(prefix: str, count: int) -> list[str]:
    """Numbers whose scripted outcome is a completed conversation (suffixes 1000 and up)."""
    return [f"+1555{prefix}{1000 + i:04d}" for i in range(count)]


# -- the create ----------------------------------------------------------------------------------


def test_a_campaign_runs_each_person_once_and_its_counters_are_vapis(vapi_conn: str, vapi_emulator: Any) -> None:
    emu = vapi_emulator
    scripted = ["+15551010001", "+15551010002", "+15551010003", "+15551010005"]  # busy, no answer, voicemail, start error
    people = numbers("101", 36) + scripted
    hook = VapiHook(vapi_conn)
    created = CampaignApi(hook).create(body(emu, people, maxConcurrency=7), key="dag/run/task/-1")
    assert created.name == f"test campaign {marker('dag/run/task/-1')}"
    done = wait_until_over(hook, created.id)
    assert done.status == "ended" and done.ended_reason == "campaign.ended.success"
    assert Counter(c["customer"]["number"] for c in calls_of(emu, created.id)) == Counter(people)
    contacts = [c for page in CampaignApi(hook).iter_contact_pages(created.id, page_size=15) for c in page]
    assert [c.number for c in contacts] == people, "every contact, in upload order, across pages"
    assert (done.counters.completed, done.counters.failed) == (39, 1), "the start error never got going"
    assert (done.metrics.dialed, done.metrics.connected) == (39, 36), "busy, no answer, voicemail: not connected"
    outcomes = {c.number: c.outcome.value for c in contacts}
    assert [outcomes[n] for n in scripted] == ["not_reached", "not_reached", "voicemail", "error"]
    by_call = {c["id"]: c for c in calls_of(emu, created.id)}
    assert {c.call_id for c in contacts} == set(by_call)
    assert all(c.ended_reason == by_call[c.call_id or ""]["endedReason"] for c in contacts)


@pytest.mark.parametrize("fault", ["drop", "garbage:html", "garbage:truncated", "502"])
def test_a_create_without_a_readable_answer_is_found_not_sent_again(
    vapi_conn: str, vapi_emulator: Any, fault: str
) -> None:
    """The campaign was made (or may have been); the hook finds it by its tag, never sends again."""
    emu = vapi_emulator
    emu.faults([fault], method="POST", path="/v2/campaign")
    hook = VapiHook(vapi_conn)
    got = CampaignApi(hook).create(body(emu, numbers("102", 3)), key=f"lost/{fault}")
    made = [c for c in campaigns(emu) if c["name"].endswith(marker(f"lost/{fault}"))]
    posts = emu.requests(method="POST", path="/v2/campaign")
    if fault == "502":  # a gateway's 502: the request may never have reached Vapi; after the settle it is resent once
        assert len(posts) == 2
    else:
        assert len(posts) == 1, "never sent twice"
    assert [c["id"] for c in made] == [got.id]


@pytest.mark.parametrize("factor", [1, 2, 5])
def test_a_create_slower_than_the_timeout_is_waited_for_not_sent_again(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch, factor: int
) -> None:
    """Vapi makes the campaign 1x, 2x, 5x the client's timeout after the client gave up."""
    emu, timeout = vapi_emulator, 0.3
    late = factor * timeout
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_SLOW",
        vapi_conn_json(emu.url, emu.api_key, timeout=timeout, retry_max_wait=0.2, create_settle_seconds=late + 3),
    )
    emu.faults([f"late:{late:g}"], method="POST", path="/v2/campaign")
    got = CampaignApi(VapiHook("vapi_slow")).create(body(emu, numbers("103", 5)), key=f"slow/{factor}")
    assert len(emu.requests(method="POST", path="/v2/campaign")) == 1
    assert [c["id"] for c in campaigns(emu) if c["name"].endswith(marker(f"slow/{factor}"))] == [got.id]
    assert Counter(c["customer"]["number"] for c in calls_of(emu, got.id)).most_common(1)[0][1] <= 1


def test_a_refused_create_is_sent_again(vapi_conn: str, vapi_emulator: Any) -> None:
    """A 429 made nothing: sending again is safe, and makes exactly one campaign."""
    emu = vapi_emulator
    emu.faults([429], method="POST", path="/v2/campaign")
    got = CampaignApi(VapiHook(vapi_conn)).create(body(emu, numbers("104", 2)), key="refused")
    assert len(emu.requests(method="POST", path="/v2/campaign")) == 2
    assert [c["id"] for c in campaigns(emu) if c["name"].endswith(marker("refused"))] == [got.id]


def test_a_create_that_cannot_be_resolved_fails_instead_of_creating_again(vapi_conn: str, vapi_emulator: Any) -> None:
    emu = vapi_emulator
    emu.faults(["drop"], method="POST", path="/v2/campaign")
    emu.faults([500] * 10, method="GET", path="/v2/campaign")
    with pytest.raises(VapiCreateUnresolvedError, match=r"Not sending it again.*\[af:"):
        CampaignApi(VapiHook(vapi_conn)).create(body(emu, numbers("105", 2)), key="unresolved")
    assert len(emu.requests(method="POST", path="/v2/campaign")) == 1


def test_the_tag_is_added_once() -> None:
    assert keyed_name(keyed_name("x", "k"), "k") == f"x {marker('k')}"
    assert marker("a/b/c/-1") != marker("a/b/c/0"), "each mapped instance has its own campaign"


# -- retries of the task -------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_retry_after_a_lost_create_answer_creates_no_second_campaign(vapi_emulator: Any) -> None:
    """Try 1's create is made but its answer lost, and Vapi cannot be asked: the try fails. The
    retry finds the campaign by its tag and waits for it: one POST, one call per person."""
    emu, people = vapi_emulator, numbers("106", 12)
    emu.faults(["drop"], method="POST", path="/v2/campaign")
    emu.faults([500] * 5, method="GET", path="/v2/campaign")  # the connection's 5 attempts of try 1's lookup
    dag_run = run_dag(
        "campaign_lost_answer",
        HEADER
        + f"""
        with DAG("campaign_lost_answer", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunCampaignOperator(
                task_id="campaign", customers={people!r}, assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r}, max_concurrency=5, deferrable=False,
                poll_interval=0.1, retries=1, retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("campaign", -1): "success"}
    assert tries(dag_run) == {("campaign", -1): 2}
    assert len(emu.requests(method="POST", path="/v2/campaign")) == 1
    (made,) = campaigns(emu)
    summary = xcom(dag_run, "campaign")
    assert summary["campaign_id"] == made["id"] == xcom(dag_run, "campaign", key="campaign_id")
    assert summary["counters"]["completed"] == len(people)
    assert Counter(c["customer"]["number"] for c in calls_of(emu, made["id"])) == Counter(people)


@pytest.mark.usefixtures("airflow_db")
def test_a_retry_waits_out_the_create_its_dead_earlier_try_left_in_flight(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try 1 sends its create and dies before any answer; Vapi makes the campaign 2 s later. The
    retry finds nothing at first: it waits until that create can no longer appear, then re-attaches."""
    emu, people = vapi_emulator, numbers("107", 4)
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_DEFAULT",
        vapi_conn_json(emu.url, emu.api_key, timeout=5, retry_max_wait=0.2, create_settle_seconds=4),
    )
    emu.faults(["late:2"], method="POST", path="/v2/campaign")
    dag_run = run_dag(
        "campaign_dies_mid_create",
        HEADER
        + f"""
        import httpx
        from airflow_provider_vapi import idempotency
        from airflow_provider_vapi.placing import retry
        from airflow_provider_vapi.campaigns.once import keyed_name

        class DiesMidCreate(RunCampaignOperator):
            def execute(self, context):
                if context["ti"].try_number > 1:
                    return super().execute(context)
                body = self.build_body(context)
                retry.note_sending(context)
                body["name"] = keyed_name(body["name"], idempotency.task_key(context))
                try:
                    httpx.post({emu.url + "/v2/campaign"!r}, json=body, timeout=0.2,
                               headers={{"Authorization": "Bearer {emu.api_key}"}})
                except httpx.TimeoutException:
                    pass
                raise RuntimeError("the worker died with its create in flight")

        with DAG("campaign_dies_mid_create", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            DiesMidCreate(
                task_id="campaign", customers={people!r}, assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r}, deferrable=False, poll_interval=0.1,
                retries=1, retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("campaign", -1): "success"}
    assert len(emu.requests(method="POST", path="/v2/campaign")) == 1, "the retry did not create again"
    (made,) = campaigns(emu)
    assert xcom(dag_run, "campaign")["campaign_id"] == made["id"]


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_retry_whose_list_changed_reattaches_and_calls_nobody_twice(vapi_emulator: Any) -> None:
    """The upstream list changed between tries: the retry re-attaches (a second campaign could call
    the people of the first twice) and says that the lists differ."""
    emu = vapi_emulator
    first, second = numbers("108", 6), numbers("108", 9)
    dag_run = run_dag(
        "campaign_list_changed",
        HEADER
        + f"""
        class FailsAfterCreate(RunCampaignOperator):
            def execute(self, context):
                if context["ti"].try_number == 1:
                    self.customers = {first!r}
                    self.wait_for_completion = False
                    super().execute(context)
                    raise RuntimeError("the worker died after the create")
                self.customers = {second!r}
                return super().execute(context)

        with DAG("campaign_list_changed", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            FailsAfterCreate(
                task_id="campaign", assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
                deferrable=False, poll_interval=0.1, retries=1, retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("campaign", -1): "success"}
    (made,) = campaigns(emu)
    assert Counter(c["customer"]["number"] for c in calls_of(emu, made["id"])) == Counter(first)


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_retry_refuses_a_campaign_that_was_cancelled(vapi_emulator: Any) -> None:
    """Try 1's campaign was cancelled (its kill, or a person in the dashboard) and the try died: the
    retry must neither report it as finished nor create another."""
    emu = vapi_emulator
    people = [f"+155511200{i}0006" for i in range(4)]
    dag_run = run_dag(
        "campaign_cancelled_before",
        HEADER
        + f"""
        from airflow_provider_vapi.campaigns.api import CampaignApi
        from airflow_provider_vapi.hooks import VapiHook

        class CancelledThenDies(RunCampaignOperator):
            def execute(self, context):
                if context["ti"].try_number == 1:
                    self.wait_for_completion = False
                    summary = super().execute(context)
                    CampaignApi(VapiHook()).cancel(summary["campaign_id"])
                    raise RuntimeError("killed")
                return super().execute(context)

        with DAG("campaign_cancelled_before", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            CancelledThenDies(
                task_id="campaign", customers={people!r}, assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r}, max_concurrency=1, deferrable=False,
                poll_interval=0.1, retries=2, retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("campaign", -1): "failed"}
    assert tries(dag_run) == {("campaign", -1): 2}, "the refusal is final"
    assert len(emu.requests(method="POST", path="/v2/campaign")) == 1
    for call in emu.calls():
        if call.get("status") != "ended":
            emu.end_call(call["id"])


# -- waits that end early ---------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_a_timed_out_wait_cancels_and_no_call_is_placed_after_the_cancel(
    vapi_emulator: Any, deferrable: bool
) -> None:
    """Calls to ...0006 stay in progress: the campaign cannot end before the timeout. The wait
    cancels it: the two live calls go on, the 18 people not yet called never are."""
    emu = vapi_emulator
    people = [f"+155510{deferrable:d}{i:02d}0006" for i in range(20)]
    dag_run = run_dag(
        f"campaign_timeout_{deferrable:d}",
        HEADER
        + f"""
        with DAG("campaign_timeout_{deferrable:d}", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunCampaignOperator(
                task_id="campaign", customers={people!r}, assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r}, max_concurrency=2, deferrable={deferrable},
                poll_interval=0.1, timeout=1.5, retries=1, retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("campaign", -1): "failed"}
    assert tries(dag_run) == {("campaign", -1): 1}, "a timeout is final: a retry would re-attach to a cancelled campaign"
    (made,) = campaigns(emu)
    (cancel,) = emu.requests(method="PATCH", path=f"/v2/campaign/{made['id']}")
    assert cancel["body"] == {"status": "cancelled"}
    live = calls_of(emu, made["id"])
    assert len(live) == 2
    for call in live:  # the live calls end: the moment a running campaign would dial the next ones
        emu.end_call(call["id"])
    hook = VapiHook("vapi_default")
    over = wait_until_over(hook, made["id"])
    assert over.status == "cancelled"
    assert over.counters.skipped == 18 and over.counters.completed == 2
    assert len(calls_of(emu, made["id"])) == 2, "no call was placed after the cancel"
    assert len(emu.requests(method="POST", path="/call")) == 0


@pytest.mark.usefixtures("vapi_conn")
def test_the_timeout_error_says_how_many_people_were_reached(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    hook = VapiHook("vapi_default")
    made = CampaignApi(hook).create(body(emu, [f"+15551090{i:02d}0006" for i in range(5)], maxConcurrency=2), key="reach")
    wait_for = time.monotonic() + 30
    while CampaignApi(hook).get(made.id).counters.dispatched < 2 and time.monotonic() < wait_for:
        time.sleep(0.05)
    operator = RunCampaignOperator(task_id="t", customers=["+14155550100"], assistant_id="a", phone_number_id="p")
    with pytest.raises(VapiCampaignTimeoutError, match=r"cancelled it\): 2 of 5 contacts reached .*still pending 0"):
        operator._timed_out(made.id)
    for call in calls_of(emu, made.id):
        emu.end_call(call["id"])


@pytest.mark.usefixtures("vapi_conn")
def test_a_kill_cancels_the_campaign(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    hook = VapiHook("vapi_default")
    made = CampaignApi(hook).create(body(emu, [f"+15551100{i:02d}0006" for i in range(4)], maxConcurrency=1), key="kill")
    operator = RunCampaignOperator(task_id="t", customers=["+14155550100"], assistant_id="a", phone_number_id="p")
    operator._campaign_id = made.id
    operator.on_kill()
    assert CampaignApi(hook).get(made.id).status == "cancelled"
    keep = RunCampaignOperator(task_id="t", customers=["+1"], assistant_id="a", phone_number_id="p", cancel_on_kill=False)
    other = CampaignApi(hook).create(body(emu, ["+15551101000006"]), key="kept")
    keep._campaign_id = other.id
    keep.on_kill()
    assert CampaignApi(hook).get(other.id).status != "cancelled", "cancel_on_kill=False leaves it running"
    for call in emu.calls():
        if call.get("status") != "ended":
            emu.end_call(call["id"])


# -- input ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_bad_input_fails_at_once_and_sends_nothing(vapi_emulator: Any) -> None:
    emu = vapi_emulator
    dag_run = run_dag(
        "campaign_bad_input",
        HEADER
        + f"""
        with DAG("campaign_bad_input", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunCampaignOperator(
                task_id="campaign", customers=["+14155550100", "4155550101", "+14155550100"],
                assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r},
                retries=3, retry_delay=timedelta(seconds=0),
            )
        """,
    )
    assert states(dag_run) == {("campaign", -1): "failed"}
    assert tries(dag_run) == {("campaign", -1): 1}, "bad input is final"
    assert emu.requests(path="/v2/campaign") == []


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_an_empty_list_skips_and_a_csv_file_is_read(vapi_emulator: Any, tmp_path: Any) -> None:
    emu = vapi_emulator
    people = numbers("111", 3)
    (tmp_path / "people.csv").write_text("number,name,slot\n" + "".join(f"{n},P{i},{i}pm\n" for i, n in enumerate(people)))
    dag_run = run_dag(
        "campaign_inputs",
        HEADER
        + f"""
        with DAG("campaign_inputs", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunCampaignOperator(task_id="empty", customers=[], assistant_id={emu.assistant_id!r},
                                phone_number_id={emu.phone_number_id!r})
            RunCampaignOperator(task_id="file", customers_path={str(tmp_path / "people.csv")!r},
                                customer_variables=["slot"], assistant_id={emu.assistant_id!r},
                                phone_number_id={emu.phone_number_id!r}, deferrable=True, poll_interval=0.1)
        """,
    )
    assert states(dag_run) == {("empty", -1): "skipped", ("file", -1): "success"}
    (post,) = emu.requests(method="POST", path="/v2/campaign")
    assert post["body"]["customers"] == [
        {"number": n, "name": f"P{i}", "assistantOverrides": {"variableValues": {"slot": f"{i}pm"}}}
        for i, n in enumerate(people)
    ]
    made = xcom(dag_run, "file")
    assert made["status"] == "ended" and made["counters"]["completed"] == 3
    assert xcom(dag_run, "file", key="vapi_campaign_url").endswith(made["campaign_id"])


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_an_execution_timeout_cancels_the_campaign(vapi_emulator: Any) -> None:
    """Airflow's own ``execution_timeout`` ends the wait in the worker: the campaign is cancelled too."""
    emu = vapi_emulator
    people = [f"+155511300{i}0006" for i in range(6)]
    source = (
        "campaign_exec_timeout",
        HEADER
        + f"""
        with DAG("campaign_exec_timeout", start_date=datetime(2026, 1, 1), schedule=None) as dag:
            RunCampaignOperator(
                task_id="campaign", customers={people!r}, assistant_id={emu.assistant_id!r},
                phone_number_id={emu.phone_number_id!r}, max_concurrency=2, deferrable=False,
                poll_interval=0.1, execution_timeout=timedelta(seconds=2),
            )
        """,
    )
    try:
        dag_run = run_dag(*source)
    except AirflowTaskTimeout:  # Airflow 2.11's dag.test() lets it escape (after on_kill ran)
        dag_run = None
    assert dag_run is None or states(dag_run) == {("campaign", -1): "failed"}
    (made,) = campaigns(emu)
    for call in calls_of(emu, made["id"]):
        emu.end_call(call["id"])
    over = wait_until_over(VapiHook("vapi_default"), made["id"])
    assert over.status == "cancelled" and over.counters.skipped == 4
    assert len(calls_of(emu, made["id"])) == 2
