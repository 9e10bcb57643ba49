"""The ``/v2/campaign`` routes as an API: validation (DTO and service), paging of contacts and of
campaigns, ids, settings changed while scheduled, duplication, faults on the create, the state
file and the reset. Every 2xx answer is validated against the spec."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from airflow_provider_vapi.emulator.server import EmulatorProcess
from tests.emulator.conftest import (
    all_contacts,
    calls_of,
    campaign_summary,
    contacts_page,
    error,
    most_at_once,
    ms,
    post_campaign,
    validate,
    wait_until,
)

LATER = {"earliestAt": "2099-01-01T00:00:00.000Z"}
UNKNOWN = "00000000-0000-4000-8000-0000000000ff"
E164 = (
    "number must be a valid phone number in the E.164 format. "
    "Hot tip, you may be missing the country code (Eg. US: +1)."
)


def numbers(count: int, block: int = 0) -> list[str]:
    """``count`` numbers ending in 9 (a completed conversation: no scripted outcome)."""
    return [f"+1557{block:02d}{i:04d}9" for i in range(count)]


def listing(http: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = http.get("/v2/campaign", params=params)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    validate(data, "CampaignSummaryPaginatedResponse")
    return data


def without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in keys}


# -- validation -----------------------------------------------------------------------------------


def _cases(emu: Any) -> list[tuple[dict[str, Any], str | list[str]]]:
    """(body, the 400's message) for each rule of a create: who speaks, from where, to whom."""
    base = emu.campaign_body(numbers(2))
    entry = {"phoneNumberId": emu.phone_number_id, "customers": [{"number": "+15550001234"}]}
    return [
        (without(base, "name"), ["name must be a string"]),
        (
            {**base, "squadId": UNKNOWN},
            "Only One Of `assistantId`, `workflowId`, `squadId` Can Be Provided, Got `assistantId`, `squadId`.",
        ),
        (without(base, "assistantId"), "Couldn't Get Assistant. Need Either `assistantId`, `workflowId` Or `squadId`."),
        (
            {**without(base, "customers"), "dialPlan": [entry]},
            "Only One Of `phoneNumberId`, `dialPlan` Can Be Provided, Got `phoneNumberId`, `dialPlan`.",
        ),
        (without(base, "phoneNumberId"), "Couldn't Get Phone Number. Need Either `phoneNumberId` Or `dialPlan`."),
        (without(base, "customers"), "Couldn't Get Customers. Need Either `customers` Or `dialPlan`."),
        ({**base, "customers": []}, "Couldn't Create Campaign. A Campaign Needs At Least 1 Customer."),
        ({**base, "customers": [{"number": "+15550001234"}] * 10_001}, ["customers must contain no more than 10000 elements"]),
        (
            {**without(base, "phoneNumberId", "customers"), "dialPlan": [{**entry, "customers": entry["customers"] * 5001}] * 2},
            "Couldn't Create Campaign. A Campaign Can Have At Most 10000 Customers, Got 10002.",
        ),
    ]


def _more_cases(emu: Any) -> list[tuple[dict[str, Any], str | list[str]]]:
    """(body, the 400's message) for each rule of a create: values, unknown properties and ids."""
    base = emu.campaign_body(numbers(2))
    entry = {"phoneNumberId": emu.phone_number_id, "customers": [{"number": "+15550001234"}]}
    return [
        ({**base, "maxConcurrency": 0}, ["maxConcurrency must not be less than 1"]),
        ({**base, "maxConcurrency": "5"}, ["maxConcurrency must be a number conforming to the specified constraints"]),
        ({**base, "schedulePlan": {"latestAt": "2099-01-01T00:00:00Z"}}, ["schedulePlan.earliestAt must be a valid ISO 8601 date string"]),
        ({**base, "customers": [{"number": "+15550001234"}, {"number": "5550001234"}]}, f"customers.1.{E164}"),
        (
            {**without(base, "phoneNumberId", "customers"), "dialPlan": [{**entry, "customers": [{"number": "12"}]}]},
            ["dialPlan.0.customers.0.number must be longer than or equal to 3 characters"],
        ),
        (
            {**base, "customers": [{"sipUri": "sip:ann@example.com"}]},
            "Couldn't Create Campaign. `customers.0.number` Is Required: A Campaign Calls Numbers.",
        ),
        ({**base, "metadata": {"k": 1}}, ["property metadata should not exist"]),
        ({**base, "customers": [{"number": "+15550001234", "tag": 1}]}, ["customers.0.property tag should not exist"]),
        ({**base, "assistantOverrides": {"recordingEnabled": False}}, ["assistantOverrides.property recordingEnabled should not exist"]),
        ({**base, "serverMessages": ["call.ended"]}, [f"each value in serverMessages must be one of the following values: {_MESSAGES}"]),
        ({**base, "assistantId": UNKNOWN}, f"Couldn't Get Assistant. `assistantId` {UNKNOWN} Does Not Exist."),
        ({**base, "phoneNumberId": UNKNOWN}, f"Couldn't Get Phone Number. `phoneNumberId` {UNKNOWN} Does Not Exist."),
        (
            {**without(base, "phoneNumberId", "customers"), "dialPlan": [{**entry, "phoneNumberId": UNKNOWN}]},
            f"Couldn't Get Phone Number. `phoneNumberId` {UNKNOWN} Does Not Exist.",
        ),
        ({**without(base, "phoneNumberId", "customers"), "dialPlan": [{"customers": []}]}, ["dialPlan.0.phoneNumberId must be a string"]),
        (
            {**base, "assistantOverrides": {"artifactPlan": {"structuredOutputIds": [UNKNOWN]}}},
            f"Couldn't Get Structured Output. `structuredOutputId` {UNKNOWN} Does Not Exist.",
        ),
        ({**base, "duplicateFromCampaignId": UNKNOWN}, f"Couldn't Get Campaign. `duplicateFromCampaignId` {UNKNOWN} Does Not Exist."),
    ]


_MESSAGES = (
    "campaign.started, campaign.cancelled, campaign.ended, campaign.archived, campaign.unarchived, "
    "contact.dispatched, contact.completed, contact.failed, contact.skipped, contact.predial-failed, "
    "campaign.job.continued"
)


def test_every_create_rule_answers_a_400_and_creates_nothing(emu, http):
    for body, message in _cases(emu) + _more_cases(emu):
        assert error(http.post("/v2/campaign", json=body)) == message, body.keys()
    assert http.post("/v2/campaign", json=[1]).json()["message"] == ["body must be an object"]
    assert emu.campaigns() == [] and emu.calls() == []
    assert listing(http)["metadata"]["totalItems"] == 0


def test_what_vapi_accepts(emu, http):
    same = ["+15550001234"] * 3
    created = post_campaign(http, emu.campaign_body(same, schedulePlan=LATER))
    assert [c["number"] for c in all_contacts(http, created["id"])] == same, "duplicates: a contact each"
    assert len({c["id"] for c in all_contacts(http, created["id"])}) == 3
    loose = post_campaign(http, emu.campaign_body([], customers=[{"number": "5551234", "numberE164CheckEnabled": False}], schedulePlan=LATER))
    assert loose["customers"] == [{"number": "5551234", "numberE164CheckEnabled": False}]
    full = post_campaign(http, emu.campaign_body(numbers(10_000), schedulePlan=LATER, maxConcurrency=2.5))
    assert len(full["customers"]) == 10_000 and full["maxConcurrency"] == 2.5
    plan = [
        {"phoneNumberId": emu.phone_number_id, "customers": [{"number": n}]} for n in ("+15550101111", "+15550102222")
    ]
    body = {**without(emu.campaign_body([]), "phoneNumberId", "customers"), "dialPlan": plan, "schedulePlan": LATER}
    planned = post_campaign(http, body)
    assert planned["dialPlan"] == plan and "customers" not in planned and "phoneNumberId" not in planned
    extras = {"server": {"url": "https://example.com/hook"}, "serverMessages": ["campaign.ended"], "predialPlan": {"enabled": False}}
    echoed = post_campaign(http, emu.campaign_body(numbers(1), schedulePlan=LATER, **extras))
    assert {k: echoed[k] for k in extras} == extras
    assert {k: campaign_summary(http, echoed["id"])[k] for k in extras} == extras


# -- contacts -------------------------------------------------------------------------------------


def test_contacts_page_by_position_and_by_status(emu, http):
    emu.configure(speed=200)
    mixed = [f"+1555020{s}" for s in ("1234", "0005", "1235", "0005", "1236", "1237", "0005")] + numbers(20)
    created = post_campaign(http, emu.campaign_body(mixed, maxConcurrency=3))
    emu.wait_for_campaign(created["id"], lambda c: c["contactCounters"]["completed"] >= 5)
    http.patch(f"/v2/campaign/{created['id']}", json={"status": "cancelled"}).raise_for_status()
    emu.wait_for_campaign(created["id"])
    everyone = all_contacts(http, created["id"])
    assert [c["number"] for c in everyone] == mixed
    first = contacts_page(http, created["id"])
    assert first["metadata"] == {"itemsPerPage": 50, "totalItems": 27, "currentPage": 1, "totalPages": 1, "hasNextPage": False}
    pages = [contacts_page(http, created["id"], limit=4, page=p) for p in range(1, 9)]
    assert [c for page in pages for c in page["results"]] == everyone
    assert [p["metadata"]["hasNextPage"] for p in pages] == [True] * 6 + [False, False]
    assert pages[-1]["results"] == [] and pages[0]["metadata"]["totalPages"] == 7
    order = ["contact.completed", "contact.failed", "contact.skipped"]
    by_status = all_contacts(http, created["id"], limit=5, sortBy="status")
    assert by_status == sorted(everyone, key=lambda c: order.index(c["status"])), "stable: position within a status"
    failed_or_skipped = all_contacts(http, created["id"], status=["contact.skipped", "contact.failed"])
    assert failed_or_skipped == [c for c in everyone if c["status"] != "contact.completed"]
    assert [c["status"] for c in failed_or_skipped[:3]] == ["contact.failed"] * 3
    only = contacts_page(http, created["id"], status="contact.failed", sortBy="status", limit=2)
    assert only["metadata"]["totalItems"] == 3 and len(only["results"]) == 2
    assert contacts_page(http, created["id"], status="contact.pending")["results"] == []


def test_contact_queries_are_checked(emu, http):
    created = post_campaign(http, emu.campaign_body(numbers(2), schedulePlan=LATER))
    route = f"/v2/campaign/{created['id']}/contacts"
    statuses = "contact.pending, contact.dispatched, contact.completed, contact.failed, contact.skipped, contact.predial-failed"
    cases = [
        ({"limit": 0}, ["limit must not be less than 1"]),
        ({"limit": 1001}, ["limit must not be greater than 1000"]),
        ({"page": 0}, ["page must not be less than 1"]),
        ({"status": ["contact.pending", "done"]}, [f"each value in status must be one of the following values: {statuses}"]),
        ({"sortBy": "cost"}, ["sortBy must be one of the following values: position, status"]),
        ({"sortOrder": "ASC"}, ["property sortOrder should not exist"]),
    ]
    for params, message in cases:
        assert error(http.get(route, params=params)) == message
    assert error(http.get(f"/v2/campaign/{UNKNOWN}/contacts"), 404) == "Campaign not found"


def test_ten_thousand_contacts_page_quickly(emu, http):
    created = post_campaign(http, emu.campaign_body(numbers(10_000), schedulePlan=LATER))
    started = time.monotonic()
    contacts = all_contacts(http, created["id"], limit=1000)
    by_status = all_contacts(http, created["id"], limit=1000, sortBy="status", status="contact.pending")
    elapsed = time.monotonic() - started
    assert [c["number"] for c in contacts] == numbers(10_000) and by_status == contacts
    print(f"\n10,000 contacts read twice, 1,000 a page (20 pages): {elapsed:.2f}s")
    cancelled = http.patch(f"/v2/campaign/{created['id']}", json={"status": "cancelled"}).json()
    assert cancelled["status"] == "cancelled" and cancelled["calls"] == {}
    assert campaign_summary(http, created["id"])["contactCounters"]["skipped"] == 10_000


# -- the list of campaigns ------------------------------------------------------------------------


def test_campaigns_page_filter_and_carry_counters_on_request(emu, http):
    made = [post_campaign(http, emu.campaign_body(numbers(2, i), name=f"c{i}", schedulePlan=LATER)) for i in range(5)]
    newest_first = [c["id"] for c in reversed(made)]
    pages = [listing(http, limit=2, page=p) for p in (1, 2, 3)]
    assert [c["id"] for p in pages for c in p["results"]] == newest_first
    assert pages[0]["metadata"] == {
        "itemsPerPage": 2, "totalItems": 5, "currentPage": 1, "totalPages": 3, "hasNextPage": True, "sortOrder": "DESC"
    }
    assert [c["id"] for c in listing(http, sortOrder="ASC")["results"]] == [c["id"] for c in made]
    assert all("contactCounters" not in c for c in listing(http)["results"])
    counted = listing(http, includeCounters="true", id=made[1]["id"])["results"]
    assert [c["id"] for c in counted] == [made[1]["id"]] and counted[0]["contactCounters"]["pending"] == 2
    http.patch(f"/v2/campaign/{made[3]['id']}", json={"status": "cancelled"}).raise_for_status()
    assert [c["id"] for c in listing(http, status="cancelled")["results"]] == [made[3]["id"]]
    assert [c["id"] for c in listing(http, updatedAtGt=made[4]["updatedAt"])["results"]] == [made[3]["id"]]
    assert len(listing(http, createdAtGe=made[2]["createdAt"])["results"]) == 5 - 2 + _same_ms(made, 2)
    assert listing(http, status="archived")["results"] == []
    cases = [
        ({"status": "done"}, ["status must be one of the following values: scheduled, in-progress, ended, cancelled, archived"]),
        ({"includeCounters": "yes"}, ["includeCounters must be a boolean value"]),
        ({"page": "0", "limit": "2000"}, ["page must not be less than 1", "limit must not be greater than 1000"]),
        ({"name": "c1"}, ["property name should not exist"]),
    ]
    for params, message in cases:
        assert error(http.get("/v2/campaign", params=params)) == message
    assert [c["id"] for c in emu.campaigns()] == [c["id"] for c in made]


def _same_ms(made: list[dict[str, Any]], index: int) -> int:
    """How many campaigns before ``made[index]`` were created in the same millisecond."""
    return sum(c["createdAt"] == made[index]["createdAt"] for c in made[:index])


# -- one campaign ---------------------------------------------------------------------------------


def test_ids_bodies_and_queries_of_one_campaign_are_checked(emu, http):
    created = post_campaign(http, emu.campaign_body(numbers(1), schedulePlan=LATER))
    route = f"/v2/campaign/{created['id']}"
    assert error(http.get("/v2/campaign/nope")) == "Validation failed (uuid is expected)"
    assert error(http.get(f"/v2/campaign/{UNKNOWN}"), 404) == "Campaign not found"
    assert error(http.patch(f"/v2/campaign/{UNKNOWN}", json={"status": "cancelled"}), 404) == "Campaign not found"
    assert error(http.get(route, params={"limit": 1})) == ["property limit should not exist"]
    assert error(http.patch(route, json={"status": "paused"})) == ["status must be one of the following values: ended, cancelled"]
    assert error(http.patch(route, json={"customers": []})) == ["property customers should not exist"]
    assert error(http.patch(route, json={"schedulePlan": {}})) == ["schedulePlan.earliestAt must be a valid ISO 8601 date string"]
    assert error(http.patch(route, json={"assistantId": UNKNOWN})) == f"Couldn't Get Assistant. `assistantId` {UNKNOWN} Does Not Exist."
    assert campaign_summary(http, created["id"], counters=False)["assistantId"] == emu.assistant_id
    assert http.patch(route, json={}).json() == created, "an empty update changes nothing"


def test_a_scheduled_campaign_can_be_rewritten_then_started(emu, http):
    emu.configure(speed=200)
    created = post_campaign(http, emu.campaign_body(numbers(3), schedulePlan=LATER))
    plan = [{"phoneNumberId": emu.phone_number_id, "customers": [{"number": n} for n in numbers(2, 9)]}]
    rewritten = http.patch(f"/v2/campaign/{created['id']}", json={"dialPlan": plan, "name": "v2"}).json()
    validate(rewritten, "Campaign")
    assert (rewritten["name"], rewritten["dialPlan"], rewritten["status"]) == ("v2", plan, "scheduled")
    assert "phoneNumberId" not in rewritten and "customers" not in rewritten
    assert ms(rewritten["updatedAt"]) >= ms(created["updatedAt"])
    moved = http.patch(f"/v2/campaign/{created['id']}", json={"schedulePlan": {"earliestAt": "2020-01-01T00:00:00Z"}})
    assert moved.json()["status"] == "in-progress"
    emu.wait_for_campaign(created["id"])
    assert sorted(c["customer"]["number"] for c in calls_of(emu, created["id"])) == numbers(2, 9)
    message = error(http.patch(f"/v2/campaign/{created['id']}", json={"name": "v3", "status": "cancelled"}))
    assert message == (
        "Couldn't Update Campaign. `name` Can Only Be Updated While The Campaign Is `scheduled`; "
        "It Is `ended`: Only `status` Can Change Now."
    )


def test_a_campaign_can_be_duplicated(emu, http):
    source = post_campaign(
        http, emu.campaign_body(numbers(3), schedulePlan=LATER, maxConcurrency=2, assistantOverrides={"metadata": {"a": 1}})
    )
    copy = post_campaign(http, {"name": "copy", "duplicateFromCampaignId": source["id"]})
    assert copy["id"] != source["id"] and copy["name"] == "copy"
    kept = ("assistantId", "phoneNumberId", "customers", "maxConcurrency", "assistantOverrides", "schedulePlan")
    assert {k: copy[k] for k in kept} == {k: source[k] for k in kept}
    other = post_campaign(http, {"name": "other", "duplicateFromCampaignId": source["id"], "customers": [{"number": "+15550109999"}]})
    assert other["customers"] == [{"number": "+15550109999"}] and other["maxConcurrency"] == 2


# -- faults on the create -------------------------------------------------------------------------


def test_a_dropped_create_made_the_campaign(emu, http):
    emu.fault("drop", method="POST", path="/v2/campaign")
    with pytest.raises(httpx.TransportError):
        http.post("/v2/campaign", json=emu.campaign_body(numbers(2), name="lost answer", schedulePlan=LATER))
    [made] = emu.campaigns()
    assert made["name"] == "lost answer"
    assert [c["id"] for c in listing(http)["results"]] == [made["id"]], "reconciling by listing finds it"
    assert [(r["fault"], r["status"]) for r in emu.requests(method="POST", path="/v2/campaign")] == [("drop", 201)]


def test_a_late_create_exists_only_after_its_delay(emu, http):
    late = 1.0
    emu.fault(f"late:{late}", method="POST", path="/v2/campaign")
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        http.post("/v2/campaign", json=emu.campaign_body(numbers(2), schedulePlan=LATER), timeout=0.25)
    assert listing(http)["results"] == [] and emu.campaigns() == []
    assert time.monotonic() - started < late, "too slow to look before the campaign could exist"
    [made] = wait_until(emu.campaigns, timeout=late + 10)
    assert time.monotonic() - started >= late
    assert ms(made["createdAt"]) >= ms(emu.requests(method="POST")[0]["timestamp"]) + late * 1000 - 5
    assert wait_until(lambda: emu.requests(method="POST")[0]["status"], timeout=5) == 201


def test_status_faults_make_nothing(emu, http):
    emu.faults([503, "ok"], method="*", path="/v2/campaign*")
    error(http.post("/v2/campaign", json=emu.campaign_body(numbers(1))), 503)
    assert emu.campaigns() == []
    created = post_campaign(http, emu.campaign_body(numbers(1), schedulePlan=LATER))
    emu.fault(500, method="PATCH", path=f"/v2/campaign/{created['id']}")
    error(http.patch(f"/v2/campaign/{created['id']}", json={"status": "cancelled"}), 500)
    assert emu.campaign(created["id"])["status"] == "scheduled"


# -- state ----------------------------------------------------------------------------------------


def test_a_reset_forgets_campaigns(emu, http):
    created = post_campaign(http, emu.campaign_body(numbers(2)))
    emu.reset()
    assert emu.campaigns() == [] and listing(http)["results"] == []
    error(http.get(f"/v2/campaign/{created['id']}"), 404)


def test_a_restart_on_the_state_file_keeps_campaigns_going(tmp_path):
    state = tmp_path / "vapi.sqlite"
    first = EmulatorProcess(port=0, state_file=state, speed=20)
    emu = first.start()
    port = int(emu.url.rsplit(":", 1)[1])
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with emu.client() as http:
        running = post_campaign(http, emu.campaign_body(numbers(12), maxConcurrency=3))
        waiting = post_campaign(http, emu.campaign_body(numbers(2, 1), schedulePlan={"earliestAt": later}))
    emu.wait_for_campaign(running["id"], lambda c: c["contactCounters"]["completed"] >= 3)
    first.kill()  # no clean shutdown, calls under way
    second = EmulatorProcess(port=port, state_file=state, speed=20)
    emu = second.start()
    try:
        with emu.client() as http:
            assert campaign_summary(http, waiting["id"])["status"] == "scheduled"
            emu.wait_for_campaign(running["id"], timeout=30)
            contacts = all_contacts(http, running["id"])
            calls = calls_of(emu, running["id"])
            assert [c["status"] for c in contacts] == ["contact.completed"] * 12
            assert {c["id"] for c in calls} == {c["callId"] for c in contacts} and len(calls) == 12
            assert most_at_once(calls) == 3, "the bound held across the restart"
            summary = campaign_summary(http, running["id"])
            assert summary["contactCounters"]["completed"] == summary["callMetrics"]["dialed"] == 12
            cancelled = http.patch(f"/v2/campaign/{waiting['id']}", json={"status": "cancelled"}).json()
            assert cancelled["endedReason"] == "campaign.scheduled.ended-by-user"
            assert http.delete(f"/v2/campaign/{running['id']}").status_code == 200
    finally:
        second.stop()
    third = EmulatorProcess(port=port, state_file=state, speed=20)
    emu = third.start()
    try:
        assert [(c["id"], c["status"]) for c in emu.campaigns()] == [(waiting["id"], "cancelled")]
        assert [c["status"] for c in emu.campaign_contacts(waiting["id"])] == ["contact.skipped"] * 2
    finally:
        third.stop()
