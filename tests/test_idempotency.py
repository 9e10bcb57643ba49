"""Idempotency, one home: the key's forms, where it travels in a request, how it is read back.

The reconciliation against a live server is exercised in test_hook.py (ambiguous creates) and
test_operators_e2e.py (task retries); here are the pure rules every one of those relies on.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_vapi.idempotency import (
    IDEMPOTENCY_METADATA_KEY,
    batch_key,
    carries_key,
    key_of,
    keyed_body,
    redial_key,
    task_key,
)
from airflow_provider_vapi.idempotency.persons import identity, token
from airflow_provider_vapi.models import Call, CreateCallRequest

NUMBER = "+14155550123"


def minimal(**extra: Any) -> dict[str, Any]:
    return {"assistantId": "asst_1", "phoneNumberId": "pn_1", "customer": {"number": NUMBER}, **extra}


# -- the key's forms ------------------------------------------------------------------------------
def test_task_key_is_the_dag_run_and_task_the_same_for_every_try_and_map_index() -> None:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=3, try_number=1)
    first = task_key({"ti": ti})  # type: ignore[typeddict-item]
    ti.try_number, ti.map_index = 4, 0
    assert task_key({"ti": ti}) == first == "d/r/t"  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("call_key", "matches"),
    [
        ("d/r/t", True),
        (batch_key("d/r/t", "0123abcd"), True),
        (redial_key("d/r/t", 2), True),
        ("d/r/t3", False),  # task t3 is another task
        ("d/r/t/3", True),  # a key before the person rule (map index 3)
        ("d/r/", False),
        (None, False),
        ("", False),
    ],
)
def test_carries_key_matches_the_three_forms_and_nothing_else(call_key: str | None, matches: bool) -> None:
    assert carries_key(call_key, "d/r/t") is matches


# -- writing the key into a request and reading it back ---------------------------------------
def test_idempotency_key_goes_to_assistant_overrides_metadata_keeping_user_metadata() -> None:
    request = CreateCallRequest.from_payload(minimal(assistantOverrides={"metadata": {"order": 7}}))
    keyed = keyed_body(request, "run-1")
    assert keyed["assistantOverrides"]["metadata"] == {
        "order": 7,
        IDEMPOTENCY_METADATA_KEY: "run-1",
    }
    assert request.to_wire()["assistantOverrides"]["metadata"] == {"order": 7}, "the original is untouched"
    echoed = Call.model_validate({"id": "c1", **keyed})
    assert key_of(echoed) == "run-1"
    assert echoed.metadata == {"order": 7, IDEMPOTENCY_METADATA_KEY: "run-1"}


def test_idempotency_key_for_squads_and_workflows() -> None:
    squad = CreateCallRequest.from_payload(
        {"squad": {"members": []}, "phoneNumberId": "p", "customerId": "c"}
    )
    assert keyed_body(squad, "k")["squadOverrides"] == {
        "metadata": {IDEMPOTENCY_METADATA_KEY: "k"}
    }
    flow = CreateCallRequest.from_payload(
        {
            "workflowId": "w",
            "phoneNumberId": "p",
            "customerId": "c",
            "workflowOverrides": {"variableValues": {"a": 1}},
        }
    )
    wire = keyed_body(flow, "k")
    assert wire["workflowOverrides"] == {"variableValues": {"a": 1, IDEMPOTENCY_METADATA_KEY: "k"}}
    assert key_of(Call.model_validate({"id": "c", **wire})) == "k"


@pytest.mark.parametrize(
    ("source", "target"), [("assistantId", "assistantOverrides"), ("squadId", "squadOverrides")]
)
def test_batches_get_one_key_per_customer(source: str, target: str) -> None:
    customers = [{"number": NUMBER, target: {"metadata": {"row": 0}}}, {"number": "+14155550124"}]
    request = CreateCallRequest.from_payload({source: "x", "phoneNumberId": "p", "customers": customers})
    wire = keyed_body(request, "k")
    people = [token(identity({"number": n})) for n in (NUMBER, "+14155550124")]
    assert [c[target]["metadata"] for c in wire["customers"]] == [
        {"row": 0, IDEMPOTENCY_METADATA_KEY: f"k|{people[0]}"},
        {IDEMPOTENCY_METADATA_KEY: batch_key("k", people[1])},
    ]
    assert target not in wire
    echoed = Call.model_validate({"id": "c", "customer": wire["customers"][1]})
    assert key_of(echoed) == f"k|{people[1]}"
