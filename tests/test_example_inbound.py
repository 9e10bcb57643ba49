"""The example DAG ``vapi_inbound_support_line`` (an inbound support line on an ``AssetWatcher``)
and ``make demo-inbound``, against the emulator.

Airflow 3 only (event-driven scheduling): on Airflow 2 the file must define no DAG and break
nothing, which is all that is checked there.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from airflow import __version__ as airflow_version

from tests.dag_runner import states, xcom
from tests.example_dags_support import (
    BUNDLE_CONFIG,
    EXAMPLES,
    dag_bag,
    examples_on_path,
    get_call,
    post_bodies,
    scripted_outcome,
)

DAG_ID = "vapi_inbound_support_line"
AIRFLOW_3 = int(airflow_version.split(".")[0]) >= 3
airflow_3 = pytest.mark.skipif(not AIRFLOW_3, reason="event-driven scheduling (AssetWatcher) needs Airflow 3")


def support_module() -> Any:
    examples_on_path()
    import vapi_inbound_support_line

    return vapi_inbound_support_line


def watcher_triggers(dag: Any) -> list[Any]:
    return [w.trigger for asset in dag.timetable.asset_condition.objects for w in asset.watchers]


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.skipif(AIRFLOW_3, reason="Airflow 2 only: there the file defines no DAG")
def test_on_airflow_2_the_file_defines_no_dag_and_breaks_nothing():
    bag = dag_bag()
    assert bag.import_errors == {}
    assert DAG_ID not in bag.dags
    assert "Airflow 2 has no event-driven scheduling" in (support_module().__doc__ or "")


@airflow_3
def test_it_parses_scheduled_on_its_watched_asset_without_calling_vapi(vapi_emulator, vapi_conn):
    bag = dag_bag()
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert vapi_emulator.requests() == []
    assert [asset.name for asset in dag.timetable.asset_condition.objects] == ["vapi_support_line_calls"]
    assert "vapi" in dag.tags and dag.description
    assert sorted(dag.task_ids) == ["ended_calls", "place_callback", "record_callbacks", "store_calls"]
    assert dag.get_task("place_callback").partial_kwargs["pool"] == "vapi"


@airflow_3
def test_its_watcher_runs_the_call_event_trigger_with_the_documented_filters():
    examples_on_path()
    from vapi_example_support import DEFAULT_PHONE_NUMBER_ID, POLL_INTERVAL

    from airflow_provider_vapi.triggers import VapiCallEventTrigger

    (trigger,) = watcher_triggers(dag_bag().dags[DAG_ID])
    assert isinstance(trigger, VapiCallEventTrigger)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_vapi.call_events.trigger.VapiCallEventTrigger"
    assert kwargs["direction"] == ["inbound"]
    assert kwargs["phone_number_id"] == [DEFAULT_PHONE_NUMBER_ID]
    assert kwargs["poll_interval"] == POLL_INTERVAL
    assert kwargs["vapi_conn_id"] == "vapi_default"
    assert [kwargs[k] for k in ("assistant_id", "squad_id", "outcomes", "ended_reasons", "metadata")] == [
        None
    ] * 5


# -- the follow-up rule and the calls of a run ---------------------------------------------------


def call(outcome: str = "completed", request: Any = None, **fields: Any) -> dict[str, Any]:
    outputs = {} if request is None else {"support_request": request}
    return {"id": "c1", "outcome": outcome, "structuredOutputs": outputs, **fields}


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (call(request={"topic": "billing", "resolved": True, "wantsCallback": False}), None),
        (
            call(request={"topic": "billing", "resolved": False, "wantsCallback": False}),
            "not solved on the call",
        ),
        (
            call(request={"topic": "other", "resolved": True, "wantsCallback": True}),
            "asked to be called back",
        ),
        (call(), "hung up before saying what they needed"),
        (
            call("error", endedReason="pipeline-error-openai-llm-failed"),
            "call failed: pipeline-error-openai-llm-failed",
        ),
        (call("not_reached", endedReason="customer-busy"), "call failed: customer-busy"),
    ],
)
def test_who_needs_a_callback(given, reason):
    assert support_module().follow_up(given) == reason


@airflow_3
def test_a_run_takes_every_call_of_its_asset_events_once():
    """Airflow folds the events that arrive between two scheduler loops into one run; a call the
    watcher sent again (at least once) is in the run once."""
    task = dag_bag().dags[DAG_ID].get_task("ended_calls")

    def event(call_id: str) -> Any:
        return SimpleNamespace(extra={"payload": {"id": call_id, "outcome": "completed"}})

    events = {"vapi_support_line_calls": [event("a"), event("b"), event("a")]}
    calls = task.python_callable(params={"call_ids": []}, triggering_asset_events=events)
    assert [c["id"] for c in calls] == ["a", "b"]
    assert task.python_callable(params={"call_ids": []}, triggering_asset_events={}) == []


@airflow_3
async def test_the_watcher_sends_inbound_calls_of_the_line_not_the_callbacks(vapi_emulator, vapi_conn):
    """The DAG's own trigger: each inbound call on the support line once; the outbound calls (the
    callbacks this DAG places) never start a run."""
    emu = vapi_emulator
    (trigger,) = watcher_triggers(dag_bag().dags[DAG_ID])
    events: list[dict[str, Any]] = []

    async def watch() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    watching = asyncio.get_running_loop().create_task(watch())
    try:
        while not emu.requests(method="GET", path="/call"):  # its first look places its mark
            await asyncio.sleep(0.05)
        inbound = [emu.inject_inbound_call(f"+1555010{i:04d}")["id"] for i in (1234, 2345)]
        outbound = emu.create_call("+15550103456")["id"]
        for call_id in [*inbound, outbound]:
            await asyncio.to_thread(emu.wait_for, call_id, analysis=True, timeout=30)
        deadline = time.monotonic() + 30
        while len(events) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a few more polls: nothing else may come
    finally:
        watching.cancel()
        stopping = [t for t in asyncio.all_tasks() if t.get_name().startswith("vapi-watcher-")]
        for task in stopping:
            task.cancel()
        await asyncio.gather(watching, *stopping, return_exceptions=True)
    assert sorted(e["id"] for e in events) == sorted(inbound)
    assert all(e["type"] == "inboundPhoneCall" and e["analysis"]["summary"] for e in events)


# -- runs against the emulator ----------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    number: str  # the last four digits script the call
    resolved: bool = True
    wants_callback: bool = False
    follow_up: str | None = None  # what the DAG must decide


CALLERS = (
    Caller("+15550104242"),
    Caller("+15550101010", resolved=False, follow_up="not solved on the call"),
    Caller("+15550102022", wants_callback=True, follow_up="asked to be called back"),
    Caller("+15550100007", follow_up="hung up before saying what they needed"),  # hangs up at once
    Caller("+15550100004", follow_up="call failed: pipeline-error-openai-llm-failed"),  # a fault mid-call
)


@dataclass
class Run:
    """What one ``dag.test()`` left behind, read back before the next one."""

    run_id: str
    logical_date: Any
    run_after: Any
    states: dict[tuple[str, int], str]
    rows: dict[str, dict[str, Any]]  # call id -> row
    callbacks: list[dict[str, Any]]  # store_calls' XCom: the kwargs of each callback to place
    recorded: dict[str, str] | None  # record_callbacks' XCom: inbound call id -> callback id
    posted: list[dict[str, Any]]  # every POST /call body so far


@dataclass
class SupportLine:
    call_ids: list[str]
    calls: dict[str, dict[str, Any]]  # as GET /call/{id} answers
    first: Run
    cleared: Run  # the same dag run again
    replayed: Run  # a new run on the same calls (a replay, or a call the watcher sent again)


def settled(call: dict[str, Any]) -> bool:
    """Ended, with its summary and structured output written (or skipped: no conversation)."""
    artifact = call.get("artifact") or {}
    outputs = "structuredOutputs" in artifact or "skippedStructuredOutputs" in artifact
    return (
        call["status"] == "ended"
        and outputs
        and ("analysis" in call or "skippedStructuredOutputs" in artifact)
    )


def read_rows(db_url: str) -> dict[str, dict[str, Any]]:
    with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
        db.row_factory = sqlite3.Row
        return {row["call_id"]: dict(row) for row in db.execute("SELECT * FROM vapi_support_calls")}


def run_once(emu: Any, db_url: str, call_ids: list[str], same_as: Run | None = None) -> Run:
    """``dag.test()`` the DAG on ``call_ids``; ``same_as``: that dag run again (its logical date and
    run id: ``dag.test()`` replaces the run, as a clear of every task would rerun it)."""
    dag = dag_bag().dags[DAG_ID]
    conf = {"call_ids": call_ids, "results_db": db_url}
    when = {} if same_as is None else {"logical_date": same_as.logical_date, "run_after": same_as.run_after}
    dag_run = dag.test(run_conf=conf, **when)
    assert dag_run.state == "success", states(dag_run)
    return Run(
        run_id=dag_run.run_id,
        logical_date=dag_run.logical_date,
        run_after=dag_run.run_after,
        states=states(dag_run),
        rows=read_rows(db_url),
        callbacks=xcom(dag_run, "store_calls"),
        recorded=xcom(dag_run, "record_callbacks"),
        posted=post_bodies(emu),
    )


@pytest.fixture(scope="module")
def line(
    vapi_emulator_server: Any, migrated_db: None, tmp_path_factory: pytest.TempPathFactory
) -> SupportLine:
    """Five callers on the line, then three runs of the DAG on their calls."""
    from tests.conftest import vapi_conn_json

    emu = vapi_emulator_server
    emu.reset()
    module = support_module()
    output = emu.create_structured_output(module.SUPPORT_OUTPUT, module.SUPPORT_REQUEST_SCHEMA)
    call_ids = []
    for caller in CALLERS:
        overrides = {
            "artifactPlan": {"structuredOutputIds": [output["id"]]},
            "variableValues": {"resolved": caller.resolved, "wantsCallback": caller.wants_callback},
        }
        call_ids.append(emu.inject_inbound_call(caller.number, assistant_overrides=overrides)["id"])
    for call_id in call_ids:
        emu.wait_for(call_id, settled, timeout=30)
    calls = {call_id: get_call(emu, call_id) for call_id in call_ids}
    emu.clear_requests()
    db_url = f"sqlite:///{tmp_path_factory.mktemp('support') / 'results.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", BUNDLE_CONFIG)
        patch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", vapi_conn_json(emu.url, emu.api_key, timeout=5))
        first = run_once(emu, db_url, call_ids)
        cleared = run_once(emu, db_url, call_ids, same_as=first)
        replayed = run_once(emu, db_url, call_ids)
    return SupportLine(call_ids, calls, first, cleared, replayed)


@airflow_3
def test_a_run_writes_one_row_per_call(line):
    rows = line.first.rows
    assert sorted(rows) == sorted(line.call_ids)
    for caller, call_id in zip(CALLERS, line.call_ids, strict=True):
        row, call = rows[call_id], line.calls[call_id]
        assert row["caller"] == caller.number == call["customer"]["number"]
        assert row["outcome"] == scripted_outcome(caller.number)
        assert row["ended_reason"] == call["endedReason"]
        assert row["summary"] == (call.get("analysis") or {}).get("summary")
        outputs = (call.get("artifact") or {}).get("structuredOutputs") or {}
        request = next((o["result"] for o in outputs.values() if o["name"] == "support_request"), None)
        assert (None if row["request"] is None else json.loads(row["request"])) == request
        assert row["follow_up"] == caller.follow_up
        assert row["run_id"] == line.first.run_id


@airflow_3
def test_callbacks_go_exactly_to_the_callers_who_need_one(line):
    examples_on_path()
    from vapi_example_support import DEFAULT_ASSISTANT_ID, DEFAULT_PHONE_NUMBER_ID

    needs = {cid: c for c, cid in zip(CALLERS, line.call_ids, strict=True) if c.follow_up}
    first = line.first
    assert {c["metadata"]["inboundCallId"] for c in first.callbacks} == set(needs)
    placed = [s for (task, _), s in first.states.items() if task == "place_callback"]
    assert placed == ["success"] * len(needs)

    assert len(first.posted) == len(needs)
    by_call = {body["assistantOverrides"]["metadata"]["inboundCallId"]: body for body in first.posted}
    assert set(by_call) == set(needs)
    for call_id, caller in needs.items():
        body = by_call[call_id]
        assert body["customer"]["number"] == caller.number
        assert body["assistantId"] == DEFAULT_ASSISTANT_ID
        assert body["phoneNumberId"] == DEFAULT_PHONE_NUMBER_ID
        assert body["assistantOverrides"]["variableValues"]["reason"] == caller.follow_up

    # Each callback's id is on the row of the call it answers, and only there.
    assert first.recorded is not None and set(first.recorded) == set(needs)
    for call_id, row in first.rows.items():
        assert row["callback_call_id"] == first.recorded.get(call_id)


@airflow_3
@pytest.mark.parametrize("again", ["cleared", "replayed"])
def test_running_the_calls_again_doubles_no_row_and_calls_nobody_back_twice(line, again):
    run: Run = getattr(line, again)
    assert (run.run_id == line.first.run_id) is (again == "cleared")
    assert sorted(run.rows) == sorted(line.call_ids)
    for call_id, row in run.rows.items():
        before = line.first.rows[call_id]
        assert row["callback_call_id"] == before["callback_call_id"], "the callback placed is kept"
        assert row["follow_up"] == before["follow_up"] and row["run_id"] == run.run_id
    assert run.callbacks == []
    assert run.states[("place_callback", -1)] == "skipped"  # mapped over nothing
    assert len(run.posted) == len(line.first.posted), "no second callback"


# -- make demo-inbound --------------------------------------------------------------------------


@airflow_3
@pytest.mark.system
def test_make_demo_inbound_runs_end_to_end(tmp_path):
    """``python -m example_dags.demo_inbound`` on its own: emulator subprocess, fresh Airflow home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VAPI_EXAMPLES"))}
    env["VAPI_DEMO_DIR"] = str(tmp_path / "demo")
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "example_dags.demo_inbound"],
        cwd=EXAMPLES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 asset events, one per ended call" in done.stdout
    assert "Calls:      6 inbound, 2 settled, 4 called back" in done.stdout
    with closing(sqlite3.connect(tmp_path / "demo" / "vapi_call_results.db")) as db:
        assert db.execute("SELECT COUNT(*), COUNT(callback_call_id) FROM vapi_support_calls").fetchone() == (
            6,
            4,
        )
    assert time.monotonic() - began < 180
