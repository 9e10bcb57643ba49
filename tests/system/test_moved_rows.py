"""Rows that move call nobody twice: a real clear on a real Airflow, an upstream list that comes
back reordered with a newcomer on top (issue #23, hole 1). Before the person rule the key was the
map index (or the batch position): every moved person was called a second time, every task green.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .deployment import AirflowApi, AirflowDeployment, Emulator, system_dag_module

moved = system_dag_module("vapi_moved_rows.py")
DAG_ID = moved.DAG_ID


def _calls_to(emulator: Emulator, numbers: list[str]) -> Counter[str]:
    return Counter(
        c["customer"]["number"]
        for c in emulator.handle.calls()
        if c.get("customer", {}).get("number") in numbers and not c.get("campaignId")
    )


def _campaigned(emulator: Emulator, numbers: list[str]) -> Counter[str]:
    """How many campaign creates listed each person (a person in a campaign is dialled by it)."""
    listed: Counter[str] = Counter()
    for request in emulator.handle.requests("POST", "/v2/campaign"):
        customers: list[Any] = request["body"].get("customers") or []
        listed.update(c["number"] for c in customers if c.get("number") in numbers)
    return listed


def test_a_cleared_run_whose_rows_moved_calls_each_person_once(
    deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator
) -> None:
    deployment.wait_for_dags([DAG_ID])
    run_id = api.trigger(DAG_ID)
    assert api.wait_for_run(DAG_ID, run_id, 240)["state"] == "success", api.states(DAG_ID, run_id)

    api.clear(DAG_ID, run_id, ["rows", "batch_list", "chunks"])
    run = api.wait_for_run(DAG_ID, run_id, 240)
    tis = api.task_instances(DAG_ID, run_id)
    states = {(t["task_id"], t["map_index"]): t["state"] for t in tis}
    assert run["state"] == "success", states

    people = [*moved.PEOPLE, moved.NEWCOMER]
    assert _calls_to(emulator, people) == Counter({n: 1 for n in people}), "moved rows, one call each"
    batch = [*moved.BATCH, moved.BATCH_NEWCOMER]
    assert _calls_to(emulator, batch) == Counter({n: 1 for n in batch}), "a reordered batch, one call each"

    chunked = [n for chunk in moved.CHUNKS for n in chunk]
    assert _campaigned(emulator, chunked) == Counter({n: 1 for n in chunked}), "one campaign per person"
    assert states[("campaign", 2)] == "skipped", "chunk 2's people were all in another campaign already"
    left = api.xcom(DAG_ID, run_id, "batch")["left"]
    assert left == [], "nobody left the batch list"
