"""GET /call filters and limit, batches, scheduling and the concurrency limit."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.emulator.conftest import create, error, get_call, validate


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ids(http, **params) -> list[str]:
    answer = http.get("/call", params=params)
    assert answer.status_code == 200, answer.text
    validate(answer.json(), "Call", array=True)
    return [c["id"] for c in answer.json()]


def test_filters_limit_and_order(emu, http):
    created = []
    for _ in range(3):
        created.append(create(http, emu.call_body("+15550100006")))
        time.sleep(0.01)
    other = http.post("/assistant", json={"name": "other"}).json()
    created.append(create(http, emu.call_body("+15550100006", assistantId=other["id"])))
    newest_first = [c["id"] for c in reversed(created)]
    assert ids(http) == newest_first
    assert ids(http, limit=2) == newest_first[:2]
    assert ids(http, limit=0) == []
    assert error(http.get("/call", params={"limit": 1001})) == ["limit must not be greater than 1000"]
    assert error(http.get("/call", params={"limit": "many"})) == [
        "limit must be a number conforming to the specified constraints"
    ]
    assert ids(http, id=created[1]["id"]) == [created[1]["id"]]
    assert ids(http, assistantId=other["id"]) == [created[3]["id"]]
    assert ids(http, assistantId=emu.assistant_id) == newest_first[1:]
    assert ids(http, phoneNumberId=emu.phone_number_id) == newest_first
    assert ids(http, phoneNumberId="b0b0f0e0-0000-4000-8000-00000000dead") == []
    second = created[1]["createdAt"]
    assert ids(http, createdAtGt=second) == newest_first[:2]
    assert ids(http, createdAtGe=second) == newest_first[:3]
    assert ids(http, createdAtLt=second) == newest_first[3:]
    assert ids(http, createdAtLe=second) == newest_first[2:]
    assert ids(http, createdAtGe=second, createdAtLe=second) == [created[1]["id"]]
    assert error(http.get("/call", params={"createdAtGt": "yesterday"})) == [
        "createdAtGt must be a valid ISO 8601 date string"
    ]
    assert ids(http, createdAtGt="2999-01-01T00:00:00+02:00") == []


def test_updated_at_windows_see_every_change(emu, http):
    """Poll with updatedAtGt = the last updatedAt seen: every status change shows up exactly once."""
    emu.configure(speed=8)  # phases of 250 ms and more: a short stall of the poller cannot skip one
    call = create(http, emu.call_body("+15550001234"))
    watermark = call["updatedAt"]
    changes = [call["status"]]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        batch = http.get("/call", params={"updatedAtGt": watermark}).json()
        for item in sorted(batch, key=lambda c: c["updatedAt"]):
            changes.append(
                "analysis" if "analysis" in item and item["status"] == changes[-1] else item["status"]
            )
            watermark = item["updatedAt"]
        if changes[-1] == "analysis":
            break
    assert changes == ["queued", "ringing", "in-progress", "ended", "analysis"]
    assert ids(http, updatedAtGe=watermark) == [call["id"]]
    assert ids(http, updatedAtGt=watermark) == []
    assert ids(http, updatedAtLt=watermark) == []
    assert ids(http, updatedAtLe=watermark) == [call["id"]]


def test_a_half_failed_batch_is_201(emu, http):
    body = emu.call_body(
        customers=[{"number": "+15550001234"}, {"number": "12345"}, {"number": "+15550100006", "name": "B"}]
    )
    del body["customer"]
    batch = create(http, body)
    assert [c["customer"]["number"] for c in batch["results"]] == ["+15550001234", "+15550100006"]
    assert batch["errors"] == [{"customer": {"number": "12345"}, "error": batch["errors"][0]["error"]}]
    assert "E.164" in batch["errors"][0]["error"]
    assert batch["subscriptionLimits"] == {
        "concurrencyBlocked": False,
        "concurrencyLimit": 10,
        "remainingConcurrentCalls": 8,
    }
    assert len(emu.calls()) == 2
    assert "subscriptionLimits" not in create(http, emu.call_body())


def test_a_scheduled_call_waits_for_earliest_at(emu, http):
    earliest = datetime.now(UTC) + timedelta(seconds=0.6)
    call = create(http, emu.call_body(schedulePlan={"earliestAt": iso(earliest)}))
    assert call["status"] == "scheduled"
    assert call["schedulePlan"] == {"earliestAt": iso(earliest)}
    assert get_call(http, call["id"])["status"] == "scheduled"
    # Polling cannot be sure to catch the brief `queued` state on a loaded machine: check the stamps.
    final = emu.wait_for(call["id"], analysis=True, timeout=10)
    assert datetime.fromisoformat(final["startedAt"].replace("Z", "+00:00")) >= earliest
    assert final["createdAt"] < iso(earliest) <= final["startedAt"]


def test_a_past_earliest_at_starts_at_once(emu, http):
    call = create(http, emu.call_body(schedulePlan={"earliestAt": "2020-01-01T00:00:00Z"}))
    assert call["status"] == "queued"


def test_deleting_a_scheduled_call_cancels_it(emu, http):
    call = create(http, emu.call_body(schedulePlan={"earliestAt": "2099-01-01T00:00:00.000Z"}))
    answer = http.delete(f"/call/{call['id']}")
    assert answer.status_code == 200
    validate(answer.json(), "Call")
    assert answer.json()["status"] == "ended"
    assert answer.json()["endedReason"] == "scheduled-call-deleted"
    assert get_call(http, call["id"])["endedReason"] == "scheduled-call-deleted"


def test_calls_over_the_limit_wait_queued(emu, http):
    emu.configure(concurrency_limit=2)
    holding = [create(http, emu.call_body("+15550100006")) for _ in range(2)]
    body = emu.call_body("+15550001234", customers=[{"number": "+15550001234"}])
    del body["customer"]
    batch = create(http, body)
    assert batch["subscriptionLimits"] == {
        "concurrencyBlocked": True,
        "concurrencyLimit": 2,
        "remainingConcurrentCalls": 0,
    }
    waiting = batch["results"][0]
    time.sleep(0.3)  # far longer than a queued call with a slot waits at 20x
    assert get_call(http, waiting["id"])["status"] == "queued"
    assert all(get_call(http, c["id"])["status"] == "in-progress" for c in holding)
    emu.end_call(holding[0]["id"])
    ended = get_call(http, holding[0]["id"])
    done = emu.wait_for(waiting["id"], timeout=5)
    assert done["endedReason"] in ("customer-ended-call", "assistant-ended-call")
    assert done["startedAt"] > ended["endedAt"]


def test_raising_the_limit_admits_waiting_calls(emu, http):
    emu.configure(concurrency_limit=0)
    call = create(http, emu.call_body())
    time.sleep(0.1)
    assert get_call(http, call["id"])["status"] == "queued"
    emu.configure(concurrency_limit=5)
    emu.wait_for(call["id"], status="ended", timeout=5)


def test_reject_mode_ends_calls_over_the_limit(vapi_emulator_factory):
    emu = vapi_emulator_factory(concurrency_limit=1, concurrency_mode="reject")
    assert emu.config()["concurrencyMode"] == "reject"
    with emu.client() as http:
        first = create(http, emu.call_body("+15550100006"))
        rejected = create(http, emu.call_body("+15550001234"))
        assert first["status"] == "queued"
        assert rejected["status"] == "ended"
        assert rejected["endedReason"] == "call.start.error-subscription-concurrency-limit-reached"
        assert "startedAt" not in rejected and rejected["endedMessage"]
        emu.end_call(first["id"])
        assert create(http, emu.call_body())["status"] == "queued"


def test_config_is_validated_and_reset(emu):
    import httpx

    with pytest.raises(httpx.HTTPStatusError):
        emu.configure(concurrency_mode="sometimes")
    assert emu.configure(speed=5)["speed"] == 5
    emu.reset()
    assert emu.config()["speed"] == 20
