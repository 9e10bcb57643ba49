"""Vapi's clock skewed against the test's (``clock_offset`` / ``--clock-offset`` /
``set_clock_offset``): every stamp and time filter on the skewed clock, the life cycle untouched."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from airflow_provider_vapi.emulator.server import EmulatorProcess
from tests.emulator.conftest import create, get_call, validate, wait_until

TALKS = "+15550001234"  # a completed conversation (6 s at speed 1)
HOLDS = "+15550100006"  # stays in-progress until ended
#: How far a stamp may be from the skewed "now" the test computes around it (request latency,
#: loaded CI machines).
SLACK = timedelta(seconds=5)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def assert_near(stamp: str, expected: datetime) -> None:
    assert abs(ts(stamp) - expected) < SLACK, f"{stamp} is not within {SLACK} of {expected}"


def ids(http: httpx.Client, **params: Any) -> list[str]:
    answer = http.get("/call", params=params)
    assert answer.status_code == 200, answer.text
    return [call["id"] for call in answer.json()]


def test_a_call_is_stamped_on_vapis_clock_two_minutes_behind(vapi_emulator_factory):
    emu = vapi_emulator_factory(clock_offset=-120)
    assert emu.health()["clockOffsetSeconds"] == -120
    assert emu.config()["clockOffsetSeconds"] == -120
    skew = timedelta(seconds=-120)
    with emu.client() as http:
        call = create(http, emu.call_body(TALKS))
        assert_near(call["createdAt"], datetime.now(UTC) + skew)
        assert call["updatedAt"] == call["createdAt"]
        ended = emu.wait_for(call["id"], analysis=True)
        seen = get_call(http, call["id"])
    now = datetime.now(UTC)
    assert seen["endedReason"] == "customer-ended-call"  # the life cycle ran to its end
    for key in ("startedAt", "endedAt", "updatedAt"):
        assert_near(ended[key], now + skew)
    assert ts(ended["createdAt"]) < ts(ended["startedAt"]) < ts(ended["endedAt"]) <= ts(ended["updatedAt"])
    assert ts(ended["updatedAt"]) < now + skew + timedelta(seconds=1)  # never on the test's clock
    assert seen["messages"] and all(
        abs(m["time"] / 1000 - (now + skew).timestamp()) < SLACK.total_seconds() for m in seen["messages"]
    )


def test_time_filters_compare_against_the_skewed_stamps(vapi_emulator_factory):
    emu = vapi_emulator_factory(clock_offset=-120)
    with emu.client() as http:
        before = datetime.now(UTC)
        call = create(http, emu.call_body(HOLDS))
        # A client that trusts its own clock ("calls made since I started") finds nothing...
        assert ids(http, createdAtGe=iso(before - timedelta(seconds=60))) == []
        assert ids(http, updatedAtGt=iso(before - timedelta(seconds=60))) == []
        # ...one that starts CLOCK_SKEW earlier finds the call, and the bounds are exact.
        assert ids(http, createdAtGe=iso(before - timedelta(seconds=600))) == [call["id"]]
        assert ids(http, createdAtGe=call["createdAt"]) == [call["id"]]
        assert ids(http, createdAtGt=call["createdAt"]) == []
        assert ids(http, createdAtLe=iso(before)) == [call["id"]]
        assert ids(http, updatedAtLt=iso(before - timedelta(seconds=60))) == [call["id"]]


def test_campaigns_assistants_and_outputs_are_stamped_on_the_skewed_clock(vapi_emulator_factory):
    emu = vapi_emulator_factory(clock_offset=3600)  # Vapi an hour ahead
    ahead = timedelta(hours=1)
    with emu.client() as http:
        campaign = http.post("/v2/campaign", json=emu.campaign_body([TALKS]))
        campaign.raise_for_status()
        campaign = campaign.json()
        assistant = http.post("/assistant", json={"name": "skewed"}).json()
        output = http.post("/structured-output", json={"name": "o", "schema": {"type": "boolean"}}).json()
    now = datetime.now(UTC)
    for stamped in (campaign, assistant, output):
        assert_near(stamped["createdAt"], now + ahead)
    done = emu.wait_for_campaign(campaign["id"])
    assert done["status"] == "ended"
    assert_near(done["updatedAt"], datetime.now(UTC) + ahead)
    [dialled] = [c for c in emu.calls() if c.get("campaignId") == campaign["id"]]
    assert_near(dialled["endedAt"], datetime.now(UTC) + ahead)
    emu.run_structured_output([dialled["id"]], output["id"])
    ran = emu.wait_for(dialled["id"], structured_outputs=True)
    assert_near(ran["artifact"]["structuredOutputsLastUpdatedAt"], datetime.now(UTC) + ahead)


def test_a_runtime_change_skews_new_stamps_and_leaves_calls_under_way_at_their_pace(
    vapi_emulator_factory,
):
    emu = vapi_emulator_factory(speed=4)  # the talking call lasts about 2 s: still live at the change
    assert emu.health()["clockOffsetSeconds"] == 0
    with emu.client() as http:
        talking = create(http, emu.call_body(TALKS))
        holding = create(http, emu.call_body(HOLDS))
        emu.wait_for(holding["id"], status="in-progress")
        emu.set_clock_offset(3600)  # a jump ahead must not end the calls under way at once...
        assert emu.health()["clockOffsetSeconds"] == 3600
        assert emu.config()["clockOffsetSeconds"] == 3600
        assert get_call(http, holding["id"])["status"] == "in-progress"
        assert get_call(http, talking["id"])["status"] != "ended"
        emu.set_clock_offset(-120)  # ...nor a jump back stall them
        assert emu.health()["clockOffsetSeconds"] == -120
        later = create(http, emu.call_body(TALKS))
        assert_near(later["createdAt"], datetime.now(UTC) - timedelta(seconds=120))
        seen = get_call(http, talking["id"])
        assert seen["createdAt"] == talking["createdAt"]  # stamps already made stay
        ended = emu.wait_for(talking["id"], timeout=15)
        assert_near(ended["endedAt"], datetime.now(UTC) - timedelta(seconds=120))
        assert emu.wait_for(later["id"], timeout=15)["endedReason"] == "customer-ended-call"
        recent = ids(http, createdAtGe=iso(datetime.now(UTC) - timedelta(seconds=60)))
        assert set(recent) == {talking["id"], holding["id"]}  # stamped before the change
        emu.reset()  # back to the start-up offset
    assert emu.health()["clockOffsetSeconds"] == 0


def test_an_offset_change_keeps_the_schedule_of_pending_structured_outputs(vapi_emulator_factory):
    emu = vapi_emulator_factory()
    with emu.client() as http:
        output = http.post("/structured-output", json={"name": "o", "schema": {"type": "boolean"}}).json()
        call = create(http, emu.call_body(TALKS))
    emu.wait_for(call["id"])
    emu.configure(structured_output_delay=3600)  # three minutes at the test speed (20)
    emu.run_structured_output([call["id"]], output["id"])
    emu.set_clock_offset(7200)  # without the shift the run would land at once
    assert "structuredOutputs" not in emu.call(call["id"])["artifact"]
    emu.set_clock_offset(0)
    assert "structuredOutputs" not in emu.call(call["id"])["artifact"]


@pytest.mark.parametrize("value", ["soon", None, 1e12])
def test_a_bad_offset_is_refused(vapi_emulator_factory, value):
    emu = vapi_emulator_factory()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        emu._send("PATCH", "/config", {"clockOffsetSeconds": value})
    assert refused.value.response.status_code == 400
    assert emu.health()["clockOffsetSeconds"] == 0


def test_the_cli_flag_skews_the_clock():
    helped = subprocess.run(
        [sys.executable, "-m", "airflow_provider_vapi.emulator", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--clock-offset" in helped.stdout
    proc = EmulatorProcess(port=0, clock_offset=-120)
    emu = proc.start()
    try:
        assert any(
            line.strip() == "clock offset:    -120s (Vapi's clock against this machine's)"
            for line in proc.output
        )
        assert emu.health()["clockOffsetSeconds"] == -120
        with emu.client() as http:
            call = create(http, emu.call_body(TALKS))
            assert_near(call["createdAt"], datetime.now(UTC) - timedelta(seconds=120))
            ended = wait_until(
                lambda: (found := get_call(http, call["id"]))["status"] == "ended" and found, 15
            )
        validate(ended, "Call")
        assert_near(ended["endedAt"], datetime.now(UTC) - timedelta(seconds=120))
    finally:
        proc.stop()
