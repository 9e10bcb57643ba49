"""The list filters of ``GET /assistant`` and ``GET /phone-number`` (as the spec defines them, and
validated like ``GET /call``'s)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.emulator.conftest import error

SEEDED = "2025-01-01T00:00:00.000Z"


def ids(http, path: str, **params: str) -> list[str]:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()]


def shift(stamp: str, ms: int) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(milliseconds=ms)
    return moment.isoformat()


def test_assistants_are_filtered_by_their_times(emu, http):
    new = http.post("/assistant", json={"name": "later"}).json()
    seeded = emu.assistant_id
    assert set(ids(http, "/assistant")) == {seeded, new["id"]}
    assert ids(http, "/assistant", createdAtGt=SEEDED) == [new["id"]]
    assert ids(http, "/assistant", createdAtGe=SEEDED) == [new["id"], seeded]
    assert ids(http, "/assistant", createdAtLt=shift(new["createdAt"], 0)) == [seeded]
    assert ids(http, "/assistant", createdAtLe=SEEDED) == [seeded]
    assert ids(http, "/assistant", updatedAtGe=shift(new["updatedAt"], 1)) == []
    assert ids(http, "/assistant", updatedAtLe=new["updatedAt"], updatedAtGt=SEEDED) == [new["id"]]
    assert ids(http, "/assistant", createdAtGe=SEEDED, limit="1") == [new["id"]]


def test_phone_numbers_are_filtered_by_their_times(emu, http):
    seeded = emu.phone_number_id
    assert ids(http, "/phone-number", createdAtGe=SEEDED) == [seeded]
    assert ids(http, "/phone-number", createdAtGt=SEEDED) == []
    assert ids(http, "/phone-number", updatedAtLt=shift(SEEDED, 1)) == [seeded]
    assert ids(http, "/phone-number", updatedAtLt=SEEDED) == []


@pytest.mark.parametrize("path", ["/assistant", "/phone-number", "/call"])
def test_invalid_filters_are_400_on_every_list_route(http, path):
    answer = http.get(path, params={"createdAtGt": "yesterday", "updatedAtLe": "2025-13-01", "limit": "1001"})
    assert sorted(error(answer)) == [
        "createdAtGt must be a valid ISO 8601 date string",
        "limit must not be greater than 1000",
        "updatedAtLe must be a valid ISO 8601 date string",
    ]
    assert error(http.get(path, params={"page": "2"})) == ["property page should not exist"]


def test_only_get_call_has_id_filters(emu, http):
    assert error(http.get("/assistant", params={"assistantId": emu.assistant_id})) == [
        "property assistantId should not exist"
    ]
    assert http.get("/call", params={"assistantId": emu.assistant_id}).status_code == 200
