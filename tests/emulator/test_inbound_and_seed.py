"""Calls made through the admin API instead of ``POST /call``: injected inbound calls and bulk-seeded
ended calls (exports, benchmarks), listed by ``GET /call`` like any other, over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from airflow_provider_vapi.emulator.validation import E164_MESSAGE
from tests.emulator.conftest import error, get_call, stable, validate

START = datetime(2025, 3, 1, tzinfo=UTC)
RECORDING_KEYS = {"recording", "recordingUrl", "presignedMonoUrl", "presignedUrlsExpiresAt"}


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def admin(emu) -> httpx.Client:
    return httpx.Client(base_url=f"{emu.url}/_emulator", headers=emu.headers, timeout=30)


def window(http: httpx.Client, low: datetime, high: datetime, **params: str) -> list[dict]:
    """``GET /call?limit=1000&updatedAtGe=low&updatedAtLt=high``."""
    answer = http.get("/call", params={"limit": "1000", "updatedAtGe": iso(low), "updatedAtLt": iso(high), **params})
    assert answer.status_code == 200, answer.text
    calls: list[dict] = answer.json()
    return calls


def shape(call: dict) -> tuple[set[str], set[str]]:
    """The keys of a call and of its artifact (what "the same shape" compares)."""
    return set(call) - {"campaignId"}, set(call["artifact"])


# -- inbound --------------------------------------------------------------------------------------


def test_an_inbound_call_goes_through_the_lifecycle(emu, http):
    call = emu.inject_inbound_call("+15550003333", customer={"name": "Caller"})
    validate(call, "Call")
    assert (call["type"], call["status"]) == ("inboundPhoneCall", "queued")
    assert call["customer"] == {"name": "Caller", "number": "+15550003333"}
    assert (call["assistantId"], call["phoneNumberId"]) == (emu.assistant_id, emu.phone_number_id)
    done = emu.wait_for(call["id"], analysis=True)
    assert done["endedReason"] == "assistant-ended-call" and len(done["messages"]) == 6
    assert set(done["artifact"]) >= RECORDING_KEYS
    listed = http.get("/call").json()
    validate(listed, "Call", array=True)
    assert [(c["id"], c["type"]) for c in listed] == [(call["id"], "inboundPhoneCall")]
    assert get_call(http, call["id"])["type"] == "inboundPhoneCall"


def test_inbound_and_outbound_calls_are_listed_together(emu, http):
    outbound = emu.create_call()
    inbound = emu.inject_inbound_call("+15550000001")  # busy: its outcome, as for outbound calls
    assert emu.wait_for(inbound["id"])["endedReason"] == "customer-busy"
    types = {c["id"]: c["type"] for c in http.get("/call", params={"limit": "10"}).json()}
    assert types == {outbound["id"]: "outboundPhoneCall", inbound["id"]: "inboundPhoneCall"}
    assert [c["id"] for c in http.get("/call", params={"id": inbound["id"]}).json()] == [inbound["id"]]


def test_an_inbound_call_can_land_already_ended(emu, http):
    call = emu.inject_inbound_call("+15550004444", ended=True, name="after hours")
    validate(call, "Call")
    assert (call["type"], call["status"], call["name"]) == ("inboundPhoneCall", "ended", "after hours")
    times = [stamp(call[k]) for k in ("createdAt", "startedAt", "endedAt", "updatedAt")]
    assert times == sorted(times) and times[-1] <= datetime.now(UTC)
    assert "analysis" in call and set(call["artifact"]) >= RECORDING_KEYS
    assert stable(get_call(http, call["id"])) == stable(call)
    busy = emu.inject_inbound_call("+15550000001", ended=True)
    assert busy["endedReason"] == "customer-busy" and busy["messages"] == []
    assert "analysis" not in busy and not RECORDING_KEYS & set(busy["artifact"])


def test_inbound_refusals(emu):
    with admin(emu) as client:
        assert error(client.post("/calls/inbound", json={"number": "555"})) == E164_MESSAGE
        missing = "00000000-0000-4000-8000-000000000000"
        answer = client.post("/calls/inbound", json={"number": "+15550001234", "assistantId": missing})
        assert error(answer) == f"Couldn't Get Assistant. `assistantId` {missing} Does Not Exist."
        answer = client.post("/calls/inbound", json={"number": 5, "ended": "yes", "colour": "red"})
        assert sorted(error(answer)) == [
            "ended must be a boolean value",
            "number must be a string",
            "property colour should not exist",
        ]
    assert emu.calls() == []


# -- seeding --------------------------------------------------------------------------------------


def test_seeded_calls_look_like_calls_that_ran(emu, http):
    real = emu.create_call("+15550001234")  # a conversation, to compare shapes with
    real = emu.wait_for(real["id"], analysis=True)
    end = START + timedelta(hours=1)
    seeded = emu.seed_calls(300, START, end, campaign_id="camp-42", call_type="mixed", ids=True)
    assert seeded["count"] == 300 and len(seeded["ids"]) == 300
    assert (seeded["firstId"], seeded["lastId"]) == (seeded["ids"][0], seeded["ids"][-1])
    calls = window(http, START, end)
    validate(calls, "Call", array=True)
    assert {c["id"] for c in calls} == set(seeded["ids"])
    assert {c["type"] for c in calls} == {"outboundPhoneCall", "inboundPhoneCall"}
    for call in calls:
        assert call["status"] == "ended" and call["campaignId"] == "camp-42"
        assert stamp(call["createdAt"]) <= stamp(call["endedAt"]) <= stamp(call["updatedAt"]) < end
        assert stamp(call["updatedAt"]) >= START
        assert call["cost"] == call.get("costBreakdown", {}).get("total", 0)
        if len(call["messages"]) >= 2:
            assert "analysis" in call and set(call["artifact"]) >= RECORDING_KEYS
    reasons = {c["endedReason"] for c in calls}
    assert {"customer-ended-call", "assistant-ended-call", "customer-did-not-answer"} <= reasons
    twin = next(
        c
        for c in calls
        if (c["endedReason"], c["type"], len(c["messages"])) == (real["endedReason"], real["type"], 6)
    )
    assert shape(twin) == shape(real), "a seeded conversation has the shape of one that ran"
    assert {c["id"] for c in emu.calls()} == {real["id"], *seeded["ids"]}


def test_seeded_updated_at_spread_is_exact(emu, http):
    ids = emu.seed_calls(3, "2025-03-01T00:00:00Z", "2025-03-01T00:00:10Z", ids=True)["ids"]
    calls = {c["id"]: c for c in window(http, START, START + timedelta(seconds=10))}
    assert [calls[i]["updatedAt"] for i in ids] == [
        "2025-03-01T00:00:00.000Z",
        "2025-03-01T00:00:03.333Z",
        "2025-03-01T00:00:06.666Z",
    ]
    assert "ids" not in emu.seed_calls(2, START, START + timedelta(seconds=1))


def test_seeding_without_recordings_or_for_another_assistant(emu, http):
    assistant = http.post("/assistant", json={"name": "archive", "firstMessage": "Hi from {{org}}."}).json()
    result = emu.seed_calls(40, START, START + timedelta(minutes=5), assistant_id=assistant["id"], recording=False)
    calls = window(http, START, START + timedelta(minutes=5), assistantId=assistant["id"])
    assert len(calls) == 40 and result["count"] == 40
    validate(calls, "Call", array=True)
    talked = [c for c in calls if c["messages"]]
    assert talked and all(not RECORDING_KEYS & set(c["artifact"]) for c in calls)
    assert talked[0]["messages"][0]["message"] == "Hi from ."
    answer = http.get(f"/call/{talked[0]['id']}/mono-recording")
    assert answer.status_code == 404 and answer.json()["message"] == "Artifact not found."


def test_seed_refusals(emu):
    with admin(emu) as client:
        answer = client.post("/calls/seed", json={"count": -1, "start": "x", "end": "2025-01-01", "type": "fax"})
        assert sorted(error(answer)) == [
            "count must be an integer from 0 to 1000000",
            "start must be a valid ISO 8601 date string",
            "type must be one of the following values: outboundPhoneCall, inboundPhoneCall, mixed",
        ]
        same = {"count": 1, "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}
        assert error(client.post("/calls/seed", json=same)) == ["end must be after start"]
        unknown = {**same, "end": "2025-01-02T00:00:00Z", "phoneNumberId": "nope"}
        assert "Does Not Exist" in error(client.post("/calls/seed", json=unknown))
        assert error(client.post("/calls/seed", json=[])) == ["body must be an object"]
    assert emu.seed_calls(0, START, START + timedelta(seconds=1)) == {"count": 0, "firstId": None, "lastId": None}
    assert emu.calls() == []


@pytest.mark.timeout(300)
def test_seeding_100000_calls_and_listing_windows_of_them(vapi_emulator_factory):
    emu = vapi_emulator_factory()
    count = 100_000
    started = time.perf_counter()
    seeded = emu.seed_calls(count, START, START + timedelta(seconds=count), campaign_id="bench", ids=True)
    print(f"\nseeded {count} calls in {time.perf_counter() - started:.2f}s")
    ids = seeded["ids"]  # the i-th was last updated at START + i seconds
    assert seeded["count"] == count == len(set(ids)) and emu.health()["calls"] == count
    with emu.client() as http:
        low = START + timedelta(seconds=40_000)
        started = time.perf_counter()
        page = window(http, low, low + timedelta(seconds=700))
        print(f"one page of {len(page)} calls in {time.perf_counter() - started:.3f}s")
        assert sorted(c["id"] for c in page) == sorted(ids[40_000:40_700])
        assert [c["createdAt"] for c in page] == sorted((c["createdAt"] for c in page), reverse=True)
        validate(page[:25], "Call", array=True)
        assert all(c["campaignId"] == "bench" for c in page)
        # paging a larger span by time windows finds every call exactly once
        found: list[str] = []
        for step in range(3):
            low = START + timedelta(seconds=10_000 + 1000 * step)
            found += [c["id"] for c in window(http, low, low + timedelta(seconds=1000))]
        assert sorted(found) == sorted(ids[10_000:13_000])
        edge = START + timedelta(seconds=99_999)
        assert [c["id"] for c in window(http, edge, edge + timedelta(seconds=1))] == [ids[-1]]
        assert window(http, START + timedelta(seconds=count), START + timedelta(seconds=count + 60)) == []
