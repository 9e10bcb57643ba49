"""The admin API's backdate: a call placed N seconds earlier, for tests of "cleared an hour later"."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from tests.emulator.conftest import get_call


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_backdate_moves_every_timestamp_and_the_listing_filters_follow(emu, http) -> None:
    call = emu.create_call("+15550000005")  # a start error: ended at once
    before = get_call(http, call["id"])
    after = emu.backdate_call(call["id"], 3600)
    for name in ("createdAt", "updatedAt", "endedAt"):
        assert stamp(before[name]) - stamp(after[name]) == timedelta(hours=1), name
    assert get_call(http, call["id"])["createdAt"] == after["createdAt"]
    since = (stamp(before["createdAt"]) - timedelta(minutes=10)).isoformat()
    listed = [c["id"] for c in http.get("/call", params={"createdAtGe": since}).json()]
    assert call["id"] not in listed, "an hour-old call is not among the last ten minutes' calls"


def test_backdate_refuses_bad_input_and_unknown_calls(emu) -> None:
    call = emu.create_call("+15550000005")
    admin = httpx.Client(base_url=f"{emu.url}/_emulator", headers=emu.headers, timeout=10)
    assert admin.post(f"/calls/{call['id']}/backdate", json={"seconds": -1}).status_code == 400
    assert admin.post(f"/calls/{call['id']}/backdate", json={"seconds": True}).status_code == 400
    missing = "00000000-0000-4000-8000-000000000000"
    assert admin.post(f"/calls/{missing}/backdate", json={"seconds": 1}).status_code == 404
    admin.close()
