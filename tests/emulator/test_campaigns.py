"""Campaigns (``/v2/campaign``) over real HTTP: every contact called once through a real emulator
call, never more than ``maxConcurrency`` at once, outcomes by number, counters equal to the contacts
listing, cancel, schedules, and a 2,000-contact campaign. Every answer is validated against the spec."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_vapi.emulator import outcome_for
from tests.emulator.conftest import (
    all_contacts,
    calls_of,
    campaign_summary,
    error,
    get_call,
    most_at_once,
    ms,
    post_campaign,
    validate,
    wait_until,
)

COUNTER_OF = {
    "contact.pending": "pending",
    "contact.dispatched": "dispatched",
    "contact.completed": "completed",
    "contact.failed": "failed",
    "contact.skipped": "skipped",
    "contact.predial-failed": "predialFailed",
}


def people(count: int, first: int = 0) -> list[str]:
    """``count`` numbers whose last four digits are ``first``, ``first + 1``... (0001 is busy, 0003
    voicemail, 0005 a start error, 0006 holds: see the emulator's outcome table)."""
    return [f"+1555{i:07d}" for i in range(first, first + count)]


def talkers(count: int) -> list[str]:
    """``count`` numbers that each get a short completed conversation."""
    return [f"+1556{i:03d}{1000 + i % 2}" for i in range(count)]


def human(number: str) -> bool:
    """Whether the outcome table has a person pick up at ``number``."""
    outcome = outcome_for(number)
    return outcome.dials and outcome.answers and outcome.ended_reason != "voicemail"


def patch(http: Any, campaign_id: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """PATCH /v2/campaign/{id}; for a 200 the Campaign, validated."""
    answer = http.patch(f"/v2/campaign/{campaign_id}", json=body)
    assert answer.status_code == status, answer.text
    data: dict[str, Any] = answer.json()
    if status == 200:
        validate(data, "Campaign")
    return data


def in_future(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def assert_counters_match(summary: dict[str, Any], contacts: list[dict[str, Any]]) -> None:
    """``contactCounters`` and ``callMetrics`` are what the contacts listing says."""
    statuses = Counter(c["status"] for c in contacts)
    assert summary["contactCounters"] == {key: statuses[status] for status, key in COUNTER_OF.items()}
    dialed = [c for c in contacts if c["status"] in ("contact.dispatched", "contact.completed")]
    connected = [c for c in dialed if c["status"] == "contact.completed" and human(c["number"])]
    assert summary["callMetrics"] == {"dialed": len(dialed), "connected": len(connected)}


def test_every_contact_is_called_once_never_more_than_max_concurrency_at_once(emu, http):
    emu.configure(speed=500)
    numbers = people(300)
    body = emu.campaign_body(numbers, maxConcurrency=7, assistantOverrides={"metadata": {"batch": "b-300"}})
    created = post_campaign(http, body)
    assert (created["status"], created["maxConcurrency"]) == ("in-progress", 7)
    under_way = [d for d in created["calls"].values() if d["status"] != "ended"]
    assert len(under_way) == 7 and len(created["calls"]) == 8, "0005 could not start: the next one took its turn"
    assert [c["number"] for c in created["customers"]] == numbers
    emu.wait_for_campaign(created["id"], timeout=60)
    summary = campaign_summary(http, created["id"])
    assert (summary["status"], summary["endedReason"]) == ("ended", "campaign.ended.success")
    calls = calls_of(emu, created["id"])
    assert Counter(c["customer"]["number"] for c in calls) == Counter(numbers), "one call per contact"
    assert all(c["assistantOverrides"]["metadata"] == {"batch": "b-300"} for c in calls)
    assert all(c["assistantId"] == emu.assistant_id and c["phoneNumberId"] == emu.phone_number_id for c in calls)
    assert most_at_once(calls) == 7
    contacts = all_contacts(http, created["id"], limit=100)
    assert [c["number"] for c in contacts] == numbers, "upload order"
    by_id = {c["id"]: c for c in calls}
    for contact in contacts:
        call = by_id[contact["callId"]]
        assert (call["customer"]["number"], call["endedReason"]) == (contact["number"], contact["endedReason"])
        started = not call["endedReason"].startswith("call.start.error")
        assert contact["status"] == ("contact.completed" if started else "contact.failed")
        assert contact["dispatchedAt"] == call["createdAt"]
    dispatched = [ms(c["dispatchedAt"]) for c in contacts]
    assert dispatched == sorted(dispatched), "dialled in upload order"
    assert_counters_match(summary, contacts)
    assert summary["updatedAt"] == max(c["endedAt"] for c in calls), "it ended as its last call did"


def test_each_next_call_starts_when_one_ends(emu, http):
    emu.configure(speed=200)
    created = post_campaign(http, emu.campaign_body(talkers(12), maxConcurrency=3))
    emu.wait_for_campaign(created["id"])
    calls = sorted(calls_of(emu, created["id"]), key=lambda c: ms(c["createdAt"]))
    ends = sorted(ms(c["endedAt"]) for c in calls)
    assert all(ms(c["createdAt"]) == ms(created["createdAt"]) for c in calls[:3])
    for k, call in enumerate(calls[3:]):
        assert ms(call["createdAt"]) == ends[k], "the k-th end frees the slot the next call takes, at once"


@pytest.mark.parametrize(
    ("suffix", "status", "reason"),
    [
        ("0001", "contact.completed", "customer-busy"),
        ("0002", "contact.completed", "customer-did-not-answer"),
        ("0003", "contact.completed", "voicemail"),
        ("0004", "contact.completed", "pipeline-error-openai-llm-failed"),
        ("0005", "contact.failed", "call.start.error-subscription-insufficient-credits"),
        ("0007", "contact.completed", "customer-ended-call"),
        ("1234", "contact.completed", "customer-ended-call"),
        ("1235", "contact.completed", "assistant-ended-call"),
    ],
)
def test_an_outcome_per_number(emu, http, suffix, status, reason):
    emu.configure(speed=200)
    number = f"+1555010{suffix}"
    created = post_campaign(http, emu.campaign_body([number]))
    emu.wait_for_campaign(created["id"])
    [contact] = all_contacts(http, created["id"])
    [call] = calls_of(emu, created["id"])
    assert (contact["status"], contact["endedReason"], contact["callId"]) == (status, reason, call["id"])
    summary = campaign_summary(http, created["id"])
    failed = status == "contact.failed"
    assert summary["callMetrics"] == {"dialed": 0 if failed else 1, "connected": int(human(number))}
    assert summary["contactCounters"][COUNTER_OF[status]] == 1


def test_the_campaign_map_of_calls_and_its_counters(emu, http):
    emu.configure(speed=200)
    numbers = [f"+1555010{s}" for s in ("0001", "0002", "0003", "0004", "0005", "0007", "1234", "1235")]
    created = post_campaign(http, emu.campaign_body(numbers, maxConcurrency=8))
    assert created["callsCounterQueued"] == 7 and created["callsCounterEnded"] == 1  # 0005 never starts
    assert created["callsCounterScheduled"] == created["callsCounterInProgress"] == 0
    emu.wait_for_campaign(created["id"])
    over = patch(http, created["id"], {"status": "cancelled"})  # an ended campaign stays as it is
    assert (over["status"], over["endedReason"]) == ("ended", "campaign.ended.success")
    calls = {c["id"]: c for c in calls_of(emu, created["id"])}
    assert set(over["calls"]) == set(calls)
    for call_id, detail in over["calls"].items():
        assert detail["status"] == "ended" and detail["endedReason"] == calls[call_id]["endedReason"]
        assert detail["number"] == calls[call_id]["customer"]["number"]
    assert (over["callsCounterEnded"], over["callsCounterEndedVoicemail"], over["callsCounterQueued"]) == (8, 1, 0)
    summary = campaign_summary(http, created["id"])
    assert summary["callMetrics"] == {"dialed": 7, "connected": 4}
    assert_counters_match(summary, all_contacts(http, created["id"]))


def test_overrides_merge_per_contact_and_calls_run_the_assistant_fully(emu, http):
    emu.configure(speed=100)
    output = emu.create_structured_output("confirmed", {"type": "boolean"})
    campaign_overrides = {
        "metadata": {"batch": "b-1"},
        "variableValues": {"clinic": "North"},
        "artifactPlan": {"structuredOutputIds": [output["id"]]},
    }
    customers = [
        {"number": "+15550201234", "name": "Ann", "assistantOverrides": {"metadata": {"row": 1}, "variableValues": {"name": "Ann"}}},
        {"number": "+15550201236", "assistantOverrides": {"metadata": {"batch": "mine"}}},
    ]
    body = emu.campaign_body([], customers=customers, assistantOverrides=campaign_overrides)
    created = post_campaign(http, body)
    emu.wait_for_campaign(created["id"])
    first, second = sorted(calls_of(emu, created["id"]), key=lambda c: c["customer"]["number"])
    assert first["assistantOverrides"]["metadata"] == {"batch": "b-1", "row": 1}
    assert first["assistantOverrides"]["variableValues"] == {"clinic": "North", "name": "Ann"}
    assert second["assistantOverrides"]["metadata"] == {"batch": "mine"}, "the contact's value wins"
    assert second["assistantOverrides"]["artifactPlan"] == campaign_overrides["artifactPlan"]
    done = emu.wait_for(first["id"], analysis=True, structured_outputs=True)
    assert output["id"] in done["artifact"]["structuredOutputs"] and "recordingUrl" in done["artifact"]
    assert get_call(http, first["id"])["campaignId"] == created["id"]
    assert [c.get("name") for c in all_contacts(http, created["id"])] == ["Ann", None]


def test_a_squad_campaign_and_a_workflow_campaign(emu, http):
    emu.configure(speed=200)
    squad = "5a0d0000-0000-4000-8000-000000000001"
    body = emu.campaign_body(talkers(2), squadOverrides={"metadata": {"s": 1}})
    del body["assistantId"]
    body["squadId"] = squad
    body["customers"][0]["squadOverrides"] = {"metadata": {"c": 2}}
    created = post_campaign(http, body)
    emu.wait_for_campaign(created["id"])
    calls = sorted(calls_of(emu, created["id"]), key=lambda c: c["customer"]["number"])
    assert [c["squadId"] for c in calls] == [squad, squad] and "assistantId" not in calls[0]
    assert [c["squadOverrides"]["metadata"] for c in calls] == [{"s": 1, "c": 2}, {"s": 1}]
    body = emu.campaign_body(talkers(1), workflowId="3f000000-0000-4000-8000-000000000001")
    del body["assistantId"]
    workflow = post_campaign(http, body)
    assert workflow["workflowId"] == body["workflowId"]
    summary = campaign_summary(http, workflow["id"])
    assert "workflowId" not in summary, "CampaignSummary has no workflowId"


def test_cancel_mid_way_skips_the_pending_and_lets_live_calls_finish(emu, http):
    emu.configure(speed=100)
    numbers = talkers(200)  # 4 seconds of calls: still dialling when the cancel comes
    created = post_campaign(http, emu.campaign_body(numbers, maxConcurrency=4))
    emu.wait_for_campaign(created["id"], lambda c: c["contactCounters"]["completed"] >= 8)
    cancelled = patch(http, created["id"], {"status": "cancelled"})
    cancelled_at = ms(cancelled["updatedAt"])
    assert (cancelled["status"], cancelled["endedReason"]) == ("cancelled", "campaign.in-progress.ended-by-user")
    live = [call_id for call_id, d in cancelled["calls"].items() if d["status"] != "ended"]
    assert len(live) == 4, "at any instant a dialling campaign has maxConcurrency calls under way"
    at_cancel = campaign_summary(http, created["id"])
    assert at_cancel["status"] == "cancelled" and at_cancel["contactCounters"]["pending"] == 0
    emu.wait_for_campaign(created["id"])
    contacts = all_contacts(http, created["id"])
    calls = calls_of(emu, created["id"])
    assert all(ms(c["createdAt"]) <= cancelled_at for c in calls), "no call after the cancel"
    assert {c["id"] for c in calls} == {c["callId"] for c in contacts if "callId" in c}
    skipped = [c for c in contacts if c["status"] == "contact.skipped"]
    assert len(skipped) == 200 - len(calls) > 0 and all("callId" not in c for c in skipped)
    finished = {c["id"]: c for c in calls if c["id"] in live}
    assert all(ms(c["endedAt"]) > cancelled_at for c in finished.values()), "they lived on"
    assert all(c["endedReason"] in ("customer-ended-call", "assistant-ended-call") for c in finished.values())
    assert all(c["status"] == "contact.completed" for c in contacts if c.get("callId") in live)
    summary = campaign_summary(http, created["id"])
    assert summary["status"] == "cancelled"
    assert_counters_match(summary, contacts)
    [logged] = emu.requests(method="PATCH", path=f"/v2/campaign/{created['id']}")
    assert logged["status"] == 200 and ms(logged["timestamp"]) <= cancelled_at, "received, then cancelled"
    assert len(calls_of(emu, created["id"])) == len(calls), "and still no new call"


def test_a_scheduled_campaign_waits_and_cancels_without_a_call(emu, http):
    created = post_campaign(http, emu.campaign_body(talkers(5), schedulePlan={"earliestAt": in_future(3600)}))
    assert (created["status"], created["calls"], created["callsCounterQueued"]) == ("scheduled", {}, 0)
    renamed = patch(http, created["id"], {"name": "renamed"})
    assert renamed["name"] == "renamed" and renamed["status"] == "scheduled"
    cancelled = patch(http, created["id"], {"status": "cancelled"})
    assert (cancelled["status"], cancelled["endedReason"]) == ("cancelled", "campaign.scheduled.ended-by-user")
    again = patch(http, created["id"], {"status": "ended"})
    assert again == cancelled, "cancelling twice changes nothing"
    assert [c["status"] for c in all_contacts(http, created["id"])] == ["contact.skipped"] * 5
    assert calls_of(emu, created["id"]) == [] and emu.calls() == []
    summary = campaign_summary(http, created["id"])
    assert summary["callMetrics"] == {"dialed": 0, "connected": 0}
    message = error(http.patch(f"/v2/campaign/{created['id']}", json={"name": "late"}))
    assert isinstance(message, str) and "`name`" in message and "`cancelled`" in message


def test_a_scheduled_campaign_starts_at_earliest_at(emu, http):
    emu.configure(speed=200)
    earliest = datetime.now(UTC) + timedelta(seconds=0.6)
    body = emu.campaign_body(talkers(3), schedulePlan={"earliestAt": earliest.isoformat()})
    created = post_campaign(http, body)
    assert created["status"] == "scheduled"
    started = wait_until(lambda: campaign_summary(http, created["id"])["status"] != "scheduled", timeout=10)
    assert started
    emu.wait_for_campaign(created["id"])
    calls = calls_of(emu, created["id"])
    assert len(calls) == 3
    assert all(ms(c["createdAt"]) == int(earliest.timestamp() * 1000) for c in calls), "dialled at earliestAt"


def test_latest_at_skips_what_is_still_pending(emu, http):
    emu.configure(speed=20)
    latest = datetime.now(UTC) + timedelta(seconds=1)
    plan = {"earliestAt": "2020-01-01T00:00:00Z", "latestAt": latest.isoformat()}
    created = post_campaign(http, emu.campaign_body(talkers(20), maxConcurrency=2, schedulePlan=plan))
    assert created["status"] == "in-progress"
    emu.wait_for_campaign(created["id"])
    summary = campaign_summary(http, created["id"])
    assert (summary["status"], summary["endedReason"]) == ("ended", "campaign.ended.success")
    contacts = all_contacts(http, created["id"])
    calls = calls_of(emu, created["id"])
    assert all(ms(c["createdAt"]) < round(latest.timestamp() * 1000) for c in calls)
    statuses = Counter(c["status"] for c in contacts)
    assert statuses["contact.skipped"] == 20 - len(calls) > 0
    assert statuses["contact.completed"] == len(calls) >= 2
    assert_counters_match(summary, contacts)


def test_a_latest_at_already_past_skips_everyone(emu, http):
    plan = {"earliestAt": "2020-01-01T00:00:00Z", "latestAt": "2020-01-02T00:00:00Z"}
    created = post_campaign(http, emu.campaign_body(talkers(4), schedulePlan=plan))
    assert (created["status"], created["endedReason"], created["calls"]) == ("ended", "campaign.ended.success", {})
    assert Counter(c["status"] for c in all_contacts(http, created["id"])) == {"contact.skipped": 4}
    assert emu.calls() == []


def test_calls_refused_by_the_account_limit_fail_their_contacts(emu, http):
    emu.configure(speed=100, concurrency_limit=2, concurrency_mode="reject")
    created = post_campaign(http, emu.campaign_body(talkers(6), maxConcurrency=4))
    emu.wait_for_campaign(created["id"])
    contacts = all_contacts(http, created["id"])
    failed = [c for c in contacts if c["status"] == "contact.failed"]
    assert failed and all(
        c["endedReason"] == "call.start.error-subscription-concurrency-limit-reached" and "callId" in c
        for c in failed
    )
    assert [c["status"] for c in contacts[:2]] == ["contact.completed"] * 2
    assert_counters_match(campaign_summary(http, created["id"]), contacts)


def test_a_contact_refused_at_dispatch_fails_without_a_call(emu, http):
    emu.configure(speed=100)
    output = emu.create_structured_output("confirmed", {"type": "boolean"})
    overrides = {"artifactPlan": {"structuredOutputIds": [output["id"]]}}
    body = emu.campaign_body(["+15550400006", "+15550401234", "+15550401236"], maxConcurrency=1, assistantOverrides=overrides)
    created = post_campaign(http, body)
    [first] = calls_of(emu, created["id"])  # it holds the line until ended
    assert http.delete(f"/structured-output/{output['id']}").status_code == 200
    emu.end_call(first["id"])
    emu.wait_for_campaign(created["id"])
    held, *refused = all_contacts(http, created["id"])
    assert (held["status"], held["endedReason"]) == ("contact.completed", "manually-canceled")
    for contact in refused:
        assert (contact["status"], contact["endedReason"]) == ("contact.failed", "call.start.error-get-resources-validation")
        assert "callId" not in contact and "dispatchedAt" not in contact
    assert [c["id"] for c in calls_of(emu, created["id"])] == [first["id"]]
    summary = campaign_summary(http, created["id"])
    assert summary["contactCounters"]["failed"] == 2 and summary["callMetrics"]["dialed"] == 1


def test_deleting_a_campaign_call_completes_its_contact(emu, http):
    emu.configure(speed=100)
    created = post_campaign(http, emu.campaign_body(["+15550500006", "+15550501234"], maxConcurrency=1))
    [first] = calls_of(emu, created["id"])  # it holds the line until ended
    assert http.delete(f"/call/{first['id']}").status_code == 200
    emu.wait_for_campaign(created["id"])
    gone, second = all_contacts(http, created["id"])
    assert (gone["status"], gone["endedReason"], gone["callId"]) == ("contact.completed", "call-deleted", first["id"])
    assert second["status"] == "contact.completed" and ms(second["dispatchedAt"]) >= ms(first["createdAt"])
    over = patch(http, created["id"], {"status": "cancelled"})
    assert over["calls"][first["id"]] == {"status": "ended", "contactId": gone["id"], "number": gone["number"], "endedReason": "call-deleted"}


def test_deleting_a_live_campaign_cancels_it_and_leaves_its_calls(emu, http):
    emu.configure(speed=100)
    created = post_campaign(http, emu.campaign_body(["+15550300006", "+15550310006", "+15550321234"], maxConcurrency=2))
    emu.wait_for_campaign(created["id"], lambda c: c["contactCounters"]["dispatched"] == 2)
    answer = http.delete(f"/v2/campaign/{created['id']}")
    assert answer.status_code == 200, answer.text
    gone = answer.json()
    validate(gone, "Campaign")
    assert (gone["status"], gone["endedReason"]) == ("cancelled", "campaign.in-progress.ended-by-user")
    error(http.get(f"/v2/campaign/{created['id']}"), 404)
    error(http.get(f"/v2/campaign/{created['id']}/contacts"), 404)
    error(http.delete(f"/v2/campaign/{created['id']}"), 404)
    assert http.get("/v2/campaign").json()["results"] == []
    calls = calls_of(emu, created["id"])
    assert len(calls) == 2 and all(c["status"] != "ended" for c in calls), "its calls live on"
    for call in calls:
        emu.end_call(call["id"])
    assert [c["endedReason"] for c in calls_of(emu, created["id"])] == ["manually-canceled"] * 2
    assert len(emu.calls()) == 2, "nobody dials the third contact"


def test_a_2000_contact_campaign_completes_quickly(emu, http):
    emu.configure(speed=1000, concurrency_limit=100)
    numbers = talkers(2000)
    started = time.monotonic()
    created = post_campaign(http, emu.campaign_body(numbers, maxConcurrency=100))
    emu.wait_for_campaign(created["id"], timeout=120)
    elapsed = time.monotonic() - started
    calls = calls_of(emu, created["id"])
    assert len(calls) == 2000 and most_at_once(calls) == 100
    contacts = all_contacts(http, created["id"])
    assert [c["number"] for c in contacts] == numbers
    assert_counters_match(campaign_summary(http, created["id"]), contacts)
    virtual = (ms(max(c["endedAt"] for c in calls)) - ms(created["createdAt"])) / 1000
    print(f"\n2,000 contacts, maxConcurrency 100, speed 1000: {elapsed:.2f}s wall, {virtual:.2f}s of calls")
