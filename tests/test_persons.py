"""The person rule's pure parts: who a call is for, the key that names them, what a try may find,
and the one clock-skew margin. The rule against a live server: tests/test_one_person_one_call.py,
the fault simulation (tests/test_fault_simulation.py) and the system suite's moved rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_vapi.campaigns.once import campaign_key, marker, of_scope
from airflow_provider_vapi.idempotency import (
    call_key,
    carries_key,
    key_of,
    keyed_body,
    task_key,
)
from airflow_provider_vapi.idempotency.persons import (
    identity,
    match,
    person_key,
    person_of_key,
    token,
    tokens,
)
from airflow_provider_vapi.models import Call, CreateCallRequest
from airflow_provider_vapi.placing.retry import may_have_earlier
from airflow_provider_vapi.wire import skew

A, B = "+14155550101", "+14155550102"


def batch(*customers: Any, **extra: Any) -> CreateCallRequest:
    listed = [{"number": c} if isinstance(c, str) else c for c in customers]
    return CreateCallRequest.from_payload(
        {"assistantId": "a", "phoneNumberId": "p", "customers": listed, **extra}
    )


def single(number: str = A, **extra: Any) -> CreateCallRequest:
    return CreateCallRequest.from_payload(
        {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": number}, **extra}
    )


def context(try_number: int = 1, clear_number: int = 0, map_index: int = -1) -> Any:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=map_index, try_number=try_number)
    return {"ti": ti, "dag_run": SimpleNamespace(clear_number=clear_number)}


# -- who a person is ---------------------------------------------------------------------------------


def test_one_number_written_two_ways_is_one_person() -> None:
    assert token(identity({"number": "+1 415-555-0101"})) == token(identity({"number": A}))


@pytest.mark.parametrize(
    "other",
    [
        {"number": B},
        {"number": A, "extension": "12"},
        {"sipUri": "sip:a@example.com"},
    ],
)
def test_a_different_number_extension_or_sip_uri_is_another_person(other: dict[str, Any]) -> None:
    assert token(identity(other)) != token(identity({"number": A}))


def test_a_saved_customer_is_its_id_and_dedupe_key_tells_two_rows_of_one_number_apart() -> None:
    assert identity({"number": A}, "cus_1") == ("customerId", "cus_1")
    same = identity({"number": A})
    assert token(same, "appt-1") != token(same, "appt-2") != token(same)
    assert token(same, "appt-1") == token(same, "appt-1")
    assert token(same, 7) == token(same, "7"), "a dedupe_key is compared as text (templated or not)"


def test_the_key_quotes_no_phone_number() -> None:
    assert "4155550101" not in call_key("d/r/t", single())


def test_a_batch_that_lists_a_number_twice_has_two_persons_and_a_reordered_batch_the_same_ones() -> None:
    listed = tokens(batch(A, B, A))
    assert listed[0] != listed[2] and listed[2].endswith(".1") and not listed[0].endswith(".1")
    assert sorted(tokens(batch(B, A, A))) == sorted(listed), "a reordered list names the same persons"
    assert tokens(batch(B, A, A))[0] == listed[1], "B is B wherever it stands"


def test_a_single_call_has_one_person_and_dedupe_key_changes_it() -> None:
    assert tokens(single()) == [token(identity({"number": A}))]
    assert tokens(single(), "x") == [token(identity({"number": A}), "x")]


def test_each_customer_of_a_batch_carries_its_persons_key() -> None:
    request = batch(A, B)
    wire = keyed_body(request, "d/r/t")
    echoed = [Call.model_validate({"id": f"c{i}", "customer": c}) for i, c in enumerate(wire["customers"])]
    assert [key_of(c) for c in echoed] == [person_key("d/r/t", t) for t in tokens(request)]


# -- reading a key back ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call_key_", "expected"),
    [
        ("d/r/t|abc", "d/r/t|abc"),
        ("d/r/t|abc~3", "d/r/t|abc"),  # a redial is the same person
        ("d/r/t", None),  # the plain scope (a workflow batch) names nobody
        ("d/r/t|", None),
        ("d/r/t2|abc", None),  # another task
        ("x/d/r/t|abc", None),
        (None, None),
    ],
)
def test_person_of_key(call_key_: str | None, expected: str | None) -> None:
    assert person_of_key(call_key_, "d/r/t") == expected


def test_a_run_id_with_a_tilde_keeps_its_persons_apart() -> None:
    assert person_of_key("d/a~b/t|abc~2", "d/a~b/t") == "d/a~b/t|abc"


def test_carries_key_knows_persons_and_redials() -> None:
    assert carries_key("d/r/t|abc", "d/r/t") and carries_key("d/r/t|abc~2", "d/r/t|abc")
    assert not carries_key("d/r/t|abcd", "d/r/t|abc") and not carries_key("d/r/tx|a", "d/r/t")


def _call(call_id: str, key: str | None, number: str = A, created: int = 0) -> Call:
    meta = {"metadata": {"airflowIdempotencyKey": key}} if key else {}
    return Call.model_validate(
        {
            "id": call_id,
            "customer": {"number": number},
            "assistantOverrides": meta,
            "createdAt": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=created)).isoformat(),
        }
    )


def test_match_takes_each_persons_newest_call_and_reports_the_calls_whose_person_left() -> None:
    request = batch(A, B)
    ka, kb = (person_key("d/r/t", t) for t in tokens(request))
    gone = person_key("d/r/t", token(identity({"number": "+14155550199"})))
    calls = [_call("1", ka), _call("2", ka + "~2", created=5), _call("3", gone), _call("4", "other/r/t|x")]
    found = match(calls, "d/r/t", [ka, kb], key_of)
    assert {k: c.id for k, c in found.found.items()} == {ka: "2"}
    assert [c.id for c in found.left] == ["3"]
    assert found.missing([ka, kb]) == [kb]


def test_a_workflow_batch_plain_key_is_matched_by_the_customer_in_creation_order() -> None:
    request = batch(A, A, B)
    keys = [person_key("d/r/t", t) for t in tokens(request)]
    calls = [_call("1", "d/r/t", A), _call("2", "d/r/t", B), _call("3", "d/r/t", A)]
    found = match(calls, "d/r/t", keys, key_of)
    assert {k: c.id for k, c in found.found.items()} == {keys[0]: "1", keys[1]: "3", keys[2]: "2"}


# -- the scope and when to look ------------------------------------------------------------------------


def test_the_scope_is_the_dag_run_and_task_whatever_the_map_index_or_try() -> None:
    assert task_key(context(1, 0, 0)) == task_key(context(3, 2, 7)) == "d/r/t"


@pytest.mark.parametrize(
    ("try_number", "clear_number", "looks"),
    [(1, 0, False), (2, 0, True), (1, 1, True), (5, 3, True)],
)
def test_only_a_fresh_runs_first_try_skips_the_lookup(
    try_number: int, clear_number: int, looks: bool
) -> None:
    assert may_have_earlier(context(try_number, clear_number)) is looks


def test_a_context_without_a_dag_run_counts_as_fresh_on_try_one() -> None:
    assert may_have_earlier({"ti": context()["ti"]}) is False  # type: ignore[typeddict-item]


def test_campaign_tags_name_the_task_instance_and_share_the_task() -> None:
    first, second = campaign_key(context(map_index=0)), campaign_key(context(map_index=1))
    assert first != second and campaign_key(context()) == "d/r/t"
    name = f"Reminders {marker(second)}"
    assert of_scope(name, first) and of_scope(name, "d/r/t") and name.endswith(marker(second))
    assert not name.endswith(marker(first))
    assert not of_scope(f"Reminders {marker('d/r/other#1')}", first)
    assert not of_scope(f"{marker(second)} renamed", first), "the tag is the name's end"


# -- the one clock-skew margin --------------------------------------------------------------------------


def test_every_lookup_allows_ten_minutes_of_skew() -> None:
    assert timedelta(minutes=10) == skew.CLOCK_SKEW
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert skew.looking_back(moment) == datetime(2026, 1, 1, 11, 50, tzinfo=UTC)


def test_calls_placed_before_the_person_rule_are_matched_by_their_customer() -> None:
    """An upgrade between two tries: the first try's calls carry ``<scope>/<map index>`` (a batch's
    ``...:<index>``); the retry must still find them, person by person."""
    request = batch(A, B)
    keys = [person_key("d/r/t", t) for t in tokens(request)]
    calls = [_call("1", "d/r/t/-1:1", B), _call("2", "d/r/t/-1:0", A), _call("3", "d/r/t/4", "+14155550199")]
    found = match(calls, "d/r/t", keys, key_of)
    assert {k: c.id for k, c in found.found.items()} == {keys[0]: "2", keys[1]: "1"}
    assert [c.id for c in found.left] == ["3"]
    assert carries_key("d/r/t/3", "d/r/t") and carries_key("d/r/t/-1:0", "d/r/t")


def test_a_campaign_tagged_before_the_person_rule_keeps_its_task_instance() -> None:
    from airflow_provider_vapi.campaigns.once import legacy_marker

    ctx = context(map_index=2)
    assert legacy_marker(ctx) == marker("d/r/t/2") != marker(campaign_key(ctx))


def test_a_key_is_carried_only_up_to_a_separator() -> None:
    """Task ``callX`` is not task ``call``: after the key only a person, a redial, or an old-form
    map index or batch position may follow."""
    for other in ("d/r/tX", "d/r/tX|abc", "d/r/t-2", "d/r/t.1"):
        assert not carries_key(other, "d/r/t"), other


def test_the_key_is_read_back_from_every_place_vapi_echoes_it() -> None:
    meta = {"metadata": {"airflowIdempotencyKey": "k"}}
    places = [
        {"assistantOverrides": meta},
        {"squadOverrides": meta},
        {"customer": {"number": A, "assistantOverrides": meta}},
        {"customer": {"number": A, "squadOverrides": meta}},
        {"workflowOverrides": {"variableValues": {"airflowIdempotencyKey": "k"}}},
    ]
    for place in places:
        assert key_of(Call.model_validate({"id": "c", **place})) == "k", place
    assert key_of(Call.model_validate({"id": "c", "assistantOverrides": {"metadata": {"other": 1}}})) is None


def test_a_saved_customers_call_is_that_customers_and_no_one_elses() -> None:
    from airflow_provider_vapi.idempotency import same_person

    request = CreateCallRequest.from_payload(
        {"assistantId": "a", "phoneNumberId": "p", "customerId": "cus_1"}
    )
    assert same_person(Call.model_validate({"id": "c", "customerId": "cus_1"}), request)
    assert not same_person(Call.model_validate({"id": "c", "customerId": "cus_2"}), request)
    assert not same_person(_call("c", None, A), single(B))
    assert same_person(_call("c", None, "+1 415 555 0102"), single(B)), "one number written two ways"
