"""Fault rules matched by query string, ``late:S`` (slow create), ``stall:S`` (slow answer),
``garbage:KIND`` (2xx with a broken body), and deleting a call behind a waiting client, over real
HTTP."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from airflow_provider_vapi.emulator.client import EmulatorHandle
from airflow_provider_vapi.emulator.engine import Engine
from airflow_provider_vapi.emulator.faults import FaultBook, parse_action
from airflow_provider_vapi.emulator.runtime import Runtime
from tests.emulator.conftest import create, error, get_call, wait_until

SINCE = "2020-01-01T00:00:00.000Z"
SCHEDULED = {"schedulePlan": {"earliestAt": "2099-01-01T00:00:00.000Z"}}


def listed_ids(http: httpx.Client, **params: str) -> list[str]:
    """The ids ``GET /call`` lists (newest first)."""
    answer = http.get("/call", params=params)
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()]


def batch_body(emu: EmulatorHandle) -> dict[str, Any]:
    """A ``POST /call`` body for two customers at once."""
    body = emu.call_body()
    del body["customer"]
    body["customers"] = [{"number": "+15550100006"}, {"number": "+15550100016"}]
    return body


# -- query matching -------------------------------------------------------------------------------


def test_a_query_rule_hits_only_requests_with_those_parameters(emu, http):
    emu.fault(503, method="GET", path="/call", query={"createdAtGe": "*"}, times=2)
    assert http.get("/call", params={"updatedAtGt": SINCE}).status_code == 200
    assert http.get("/call").status_code == 200
    assert http.get("/call", params={"createdAtGe": SINCE, "limit": "5"}).status_code == 503
    [rule] = emu.active_faults()
    assert rule["query"] == {"createdAtGe": "*"} and rule["fired"] == 1
    assert [r["fault"] for r in emu.requests(method="GET", path="/call")] == [None, None, "503"]


def test_a_query_value_must_be_equal(emu, http):
    emu.faults([500], path="/call", query={"assistantId": emu.assistant_id})
    other = "00000000-0000-4000-8000-000000000000"
    assert http.get("/call", params={"assistantId": other}).status_code == 200
    assert http.get("/call", params={"assistantId": emu.assistant_id}).status_code == 500
    assert emu.active_faults() == []


def test_only_the_idempotency_lookup_is_delayed(emu, http):
    emu.fault("delay:1", method="GET", path="/call", query={"createdAtGe": "*"})
    with pytest.raises(httpx.ReadTimeout):
        http.get("/call", params={"createdAtGe": SINCE}, timeout=0.2)
    started = time.monotonic()
    assert http.get("/call", params={"updatedAtGt": SINCE}).status_code == 200  # the other poll
    assert time.monotonic() - started < 1


def test_query_rules_survive_a_reset_and_bad_queries_are_refused(emu):
    book = FaultBook()
    book.add({"action": "late:2", "path": "/call", "query": {"createdAtGe": "*", "limit": 5}})
    started_with = book.specs()
    runtime = Runtime(Engine(), book)
    runtime.faults.clear()
    runtime.reset()  # back to the start-up rules
    [rule] = runtime.faults.rules()
    assert rule["query"] == {"createdAtGe": "*", "limit": "5"} and rule["sequence"] == ["late:2"]
    assert runtime.faults.specs() == started_with
    runtime.engine.close()
    for query in ("createdAtGe", {"createdAtGe": {"x": 1}}, {"": "*"}, {"limit": True}):
        with pytest.raises(httpx.HTTPStatusError) as raised:
            emu.fault(500, query=query)
        assert raised.value.response.status_code == 400
    assert emu.active_faults() == []


def test_new_actions_are_parsed():
    assert [parse_action(a) for a in ("late:2.50", "LATE:0", "stall:1.0", "garbage:HTML", "garbage:truncated")] == [
        "late:2.5",
        "late:0",
        "stall:1",
        "garbage:html",
        "garbage:truncated",
    ]
    for bad in ("late:-1", "late:x", "stall:-2", "garbage:xml", "garbage", "late", "stall"):
        with pytest.raises(ValueError):
            parse_action(bad)


# -- late:S ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["one-customer", "customers"])
def test_a_late_create_exists_only_after_its_delay(emu, http, batch):
    late = 2.0
    emu.fault(f"late:{late}", method="POST", path="/call")
    body = batch_body(emu) if batch else emu.call_body()
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):  # the client gives up (and closes its connection)
        http.post("/call", json=body, timeout=0.25)
    assert listed_ids(http) == [] and emu.calls() == []
    assert time.monotonic() - started < late, "too slow to look before the call could exist"
    ids = wait_until(lambda: listed_ids(http), timeout=late + 10)
    assert time.monotonic() - started >= late
    assert len(ids) == (2 if batch else 1)
    assert sorted(listed_ids(http)) == sorted(ids) == sorted(c["id"] for c in emu.calls())  # once each
    assert all(get_call(http, call_id)["id"] == call_id for call_id in ids)
    assert wait_until(lambda: emu.requests(method="POST")[0]["status"], timeout=5) == 201
    assert emu.requests(method="POST")[0]["fault"] == "late:2"


def test_a_waiting_client_gets_the_late_answer(emu, http):
    late = 0.5
    emu.fault(f"late:{late}", method="POST", path="/call")
    before_ms = time.time_ns() // 1_000_000
    started = time.monotonic()
    data = create(http, batch_body(emu))
    assert time.monotonic() - started >= late
    assert [r["customer"]["number"] for r in data["results"]] == ["+15550100006", "+15550100016"]
    created = datetime.fromisoformat(data["results"][0]["createdAt"])
    assert round(created.timestamp() * 1000) >= before_ms + late * 1000 - 5  # processed late
    assert sorted(listed_ids(http)) == sorted(r["id"] for r in data["results"])


def test_a_reset_abandons_late_work(emu, http):
    emu.fault("late:30", method="POST", path="/call")
    answers: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: answers.append(http.post("/call", json=emu.call_body())))
    worker.start()
    wait_until(lambda: emu.requests(method="POST"), timeout=10)
    emu.reset()
    worker.join(timeout=10)
    assert not worker.is_alive()
    error(answers[0], 503)
    assert emu.calls() == [] and listed_ids(http) == []


# -- stall:S --------------------------------------------------------------------------------------


def test_a_stalled_answer_tells_of_the_moment_the_request_came(emu, http):
    """``stall:S``: the listing is made when the request arrives and sent ``S`` seconds later, so a
    call created in between is not in it, and the client is still waiting when that create is done."""
    stall = 4.0
    emu.fault(f"stall:{stall}", method="GET", path="/call")
    answer: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        with emu.client() as client:
            answer["ids"] = listed_ids(client)
        answer["waited"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    logged = wait_until(lambda: [r for r in emu.requests(method="GET", path="/call") if r["status"]], timeout=10)
    assert logged[0]["fault"] == "stall:4"  # the route has answered: the listing is made
    created = create(http, emu.call_body())["id"]
    assert "ids" not in answer, "the answer came before its stall was over"
    poller.join(timeout=stall + 30)
    assert answer["ids"] == [] and answer["waited"] >= stall
    assert listed_ids(http) == [created]


# -- garbage:KIND ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["html", "null", "truncated"])
def test_garbage_answers_2xx_with_a_broken_body_and_still_creates(emu, http, kind):
    emu.fault(f"garbage:{kind}", method="POST", path="/call")
    answer = http.post("/call", json=emu.call_body(**SCHEDULED))  # a scheduled call stays as created
    assert answer.status_code == 201
    assert len(answer.content) == int(answer.headers["content-length"])
    [created] = emu.calls()
    assert listed_ids(http) == [created["id"]]
    media = "text/html" if kind == "html" else "application/json"
    assert answer.headers["content-type"].startswith(media)
    if kind == "null":
        assert answer.json() is None
    else:
        with pytest.raises(ValueError):
            answer.json()
    if kind == "html":
        assert answer.text.startswith("<!DOCTYPE html>")
    if kind == "truncated":
        full = http.get(f"/call/{created['id']}").content
        assert answer.content == full[: len(full) // 2]


def test_garbage_on_reads_keeps_their_status(emu, http):
    call = create(http, emu.call_body(**SCHEDULED))
    full = http.get(f"/call/{call['id']}").content
    emu.faults(["garbage:null", "garbage:truncated"], method="GET", path="/call*")
    listing = http.get("/call")
    assert (listing.status_code, listing.content) == (200, b"null")
    one = http.get(f"/call/{call['id']}")
    assert (one.status_code, one.content) == (200, full[: len(full) // 2])
    assert get_call(http, call["id"])["id"] == call["id"]  # used up


# -- delete ---------------------------------------------------------------------------------------


def test_deleting_a_live_call_makes_it_vanish(emu, http):
    call = create(http, emu.call_body("+15550100006"))  # holds in-progress until ended
    emu.wait_for(call["id"], status="in-progress")
    assert listed_ids(http) == [call["id"]]
    answer = http.delete(f"/call/{call['id']}")
    assert answer.status_code == 200 and answer.json()["status"] == "in-progress"
    error(http.get(f"/call/{call['id']}"), 404)
    assert listed_ids(http) == [] and listed_ids(http, id=call["id"]) == []
    assert listed_ids(http, updatedAtGt=SINCE) == [] and emu.calls() == []
