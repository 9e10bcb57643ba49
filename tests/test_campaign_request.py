"""The campaign request is checked before anything is sent: each rule broken on purpose, every
problem named with its field and fix, no value quoted; and the body has exactly the spec's fields."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_vapi.campaigns.request import (
    CREATE_FIELDS,
    MAX_CUSTOMERS,
    build_campaign_body,
    check_campaign_body,
    chunks,
    read_customers,
)
from airflow_provider_vapi.exceptions import VapiInvalidRequestError
from tests.shared_data import openapi_spec

BASE: dict[str, Any] = {"name": "reminders", "assistant_id": "a1", "phone_number_id": "p1"}


def problems(params: dict[str, Any], variables: tuple[str, ...] = ()) -> str:
    with pytest.raises(VapiInvalidRequestError) as caught:
        check_campaign_body(build_campaign_body({**BASE, **params}, variables))
    return str(caught.value)


def test_the_create_fields_are_the_specs() -> None:
    spec = openapi_spec()["components"]["schemas"]["CreateCampaignDTO"]["properties"]
    assert frozenset(spec) == CREATE_FIELDS


def test_a_good_request_passes_and_is_camel_case_with_variables_moved() -> None:
    body = build_campaign_body(
        {
            **BASE,
            "customers": ["+14155550100", {"number": "+14155550101", "name": "Bo", "appointment": "3pm"}],
            "max_concurrency": 5,
            "schedule_plan": {"earliest_at": "2026-12-01T09:00:00Z", "latest_at": "2026-12-01T17:00:00Z"},
            "variable_values": {"clinic": "Main St"},
        },
        ("appointment",),
    )
    check_campaign_body(body)
    assert body["customers"] == [
        {"number": "+14155550100"},
        {"number": "+14155550101", "name": "Bo", "assistantOverrides": {"variableValues": {"appointment": "3pm"}}},
    ]
    assert body["assistantOverrides"] == {"variableValues": {"clinic": "Main St"}}
    assert body["schedulePlan"] == {"earliestAt": "2026-12-01T09:00:00Z", "latestAt": "2026-12-01T17:00:00Z"}
    assert body["maxConcurrency"] == 5


def test_a_squad_campaign_gets_its_variables_in_squad_overrides() -> None:
    params = {"name": "n", "squad_id": "s1", "phone_number_id": "p1", "customers": [{"number": "+14155550100", "x": 1}]}
    body = build_campaign_body(params, ("x",))
    check_campaign_body(body)
    assert body["customers"][0]["squadOverrides"] == {"variableValues": {"x": 1}}


@pytest.mark.parametrize(
    ("params", "where", "fix"),
    [
        ({"customers": ["4155550100"]}, "customers[0].number", "E.164"),
        ({"customers": ["+14155550100", "+14155550100"]}, "customers[1]", "same person as customers[0]"),
        ({"customers": [{"phone": "+14155550100"}]}, "customers[0].phone", "did you mean 'number'"),
        ({"customers": []}, "customers", "non-empty"),
        ({"customers": [42]}, "customers[0]", "E.164 number string or a customer object"),
        ({"customers": ["+14155550100"], "max_concurrency": 0}, "maxConcurrency", "at least 1"),
        ({"customers": ["+14155550100"], "squad_id": "s1"}, "assistantId", "exactly one of"),
        ({"customers": ["+14155550100"], "phone_number_id": None}, "phoneNumberId", "exactly one of"),
        ({"customers": ["+14155550100"], "name": " "}, "name", "is required"),
        ({"customers": ["+14155550100"], "schedule_plan": {"latestAt": "2026-01-01T00:00:00Z"}}, "schedulePlan.earliestAt", "required"),
        (
            {"customers": ["+14155550100"], "schedule_plan": {"earliestAt": "2026-01-02T00:00:00Z", "latestAt": "2026-01-01T00:00:00Z"}},
            "schedulePlan.latestAt",
            "after earliestAt",
        ),
        ({"customers": ["+14155550100"], "payload": {"maxConcurency": 3}}, "maxConcurency", "not a field of a campaign"),
        ({"customers": [{"number": "+14155550100", "extension": "12345678901"}]}, "customers[0].extension", "10"),
    ],
)
def test_each_rule_names_the_field_and_the_fix(params: dict[str, Any], where: str, fix: str) -> None:
    message = problems(params)
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"- {where}:")), None)
    assert line is not None, message
    assert fix in line, line
    assert "nothing was sent to Vapi" in message


def test_over_ten_thousand_customers_says_how_to_split_them() -> None:
    numbers = [f"+1415{i:07d}" for i in range(MAX_CUSTOMERS + 1)]
    message = problems({"customers": numbers})
    assert "10,001 customers" in message and "chunks(" in message
    assert [len(c) for c in chunks(numbers)] == [MAX_CUSTOMERS, 1]
    check_campaign_body(build_campaign_body({**BASE, "customers": chunks(numbers)[0]}))


def test_no_value_is_quoted_in_the_errors() -> None:
    secret = "sk-live-0123456789abcdef"
    customers = [{"number": "+14155550100", "tokn": secret}, {"number": "+14155550101", "email": secret * 3}]
    message = problems({"customers": customers})
    assert secret not in message
    assert "customers[0].tokn" in message and "customers[1].email" in message


def test_every_problem_is_reported_at_once() -> None:
    message = problems({"customers": ["bad", "+14155550100", "+14155550100"], "max_concurrency": -1})
    assert "(3 problems)" in message


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".csv", "number,name,appointment\n+14155550100,Ada,3pm\n+14155550101,,4pm\n"),
        (".jsonl", '{"number": "+14155550100", "name": "Ada", "appointment": "3pm"}\n{"number": "+14155550101", "appointment": "4pm"}\n'),
        (".json", '[{"number": "+14155550100", "name": "Ada", "appointment": "3pm"}, {"number": "+14155550101", "appointment": "4pm"}]'),
    ],
)
def test_customer_files_read_to_the_same_rows(suffix: str, text: str) -> None:
    assert read_customers(text, suffix) == [
        {"number": "+14155550100", "name": "Ada", "appointment": "3pm"},
        {"number": "+14155550101", "appointment": "4pm"},
    ]


def test_an_unknown_file_kind_is_a_clear_error() -> None:
    with pytest.raises(VapiInvalidRequestError, match=r"customers_path: a \.xlsx file cannot be read"):
        read_customers("", ".xlsx")
