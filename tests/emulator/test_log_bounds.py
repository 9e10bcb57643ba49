"""The request log is bounded by what it really holds, records only authenticated requests, and
a request with two ``Authorization`` headers is refused."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from airflow_provider_vapi.emulator.errors import DUPLICATE_AUTHORIZATION_MESSAGE, INVALID_KEY_MESSAGE
from airflow_provider_vapi.emulator.server import EmulatorServer
from tests.emulator.conftest import create, error

#: A body that parses into many objects: ~3 bytes of JSON each, ~70 bytes each once parsed.
MANY_OBJECTS = {"name": "many", "metadata": {"pad": [{}] * 20_000}}


def compact(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def deep_size(roots: Iterable[Any]) -> int:
    """Bytes of memory the objects reachable from ``roots`` take (each object counted once)."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        total += sys.getsizeof(node)
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple | set):
            stack.extend(node)
    return total


def test_a_request_without_a_valid_key_is_a_short_line_without_its_body_or_query(emu):
    big = {"name": "no key", "metadata": {"pad": "x" * 1_000_000, "twilioAuthToken": "SECRET-x9q"}}
    long_path = "/assistant" + "/x" * 2_000
    for headers in ({}, {"Authorization": "Bearer wrong"}) * 10:
        answer = httpx.post(
            f"{emu.url}{long_path}", params={"q": "SECRET-q-x9q" * 500}, json=big, headers=headers
        )
        assert error(answer, 401) == INVALID_KEY_MESSAGE
    log = emu.request_log()
    assert [(r["status"], r["body"], r["query"], r["fingerprints"]) for r in log["requests"]] == [
        (401, None, {}, {})
    ] * 20, "nothing the request carried is kept"
    assert [r["authorization"] for r in log["requests"]] == [False, True] * 10
    assert all(long_path.startswith(r["path"]) and len(r["path"]) == 200 for r in log["requests"])
    assert (log["refused"], log["dropped"]) == (20, 0) and log["bytes"] < 20 * 1_000, "a line is small"
    assert "SECRET" not in json.dumps(log)
    assert httpx.get(f"{emu.url}/_emulator/requests").status_code == 401  # the admin API: not recorded
    with emu.client() as http:
        create(http, emu.call_body())
    assert [r["status"] for r in emu.requests()][-1] == 201 and emu.request_log()["refused"] == 20


def test_a_flood_with_the_key_stays_within_the_byte_bound_queries_included(vapi_emulator_factory):
    emu = vapi_emulator_factory(request_log_bytes=300_000)
    with emu.client() as http:
        for _ in range(10):
            http.post("/assistant", json=MANY_OBJECTS)
        for _ in range(50):  # a long query string weighs what it holds too
            http.get("/call", params={"limit": "1", "pad": "q" * 8_000})
    log = emu.request_log()
    held = sum(compact(entry) for entry in log["requests"])
    assert held <= log["limitBytes"] == 300_000, f"the log answers {held} bytes of JSON"
    assert log["dropped"] > 0 and held <= log["bytes"] <= 300_000, "the JSON is less than the memory"
    assert [entry["path"] for entry in log["requests"]][-1] == "/call"


def test_the_log_holds_no_more_memory_than_its_bound():
    server = EmulatorServer(request_log_bytes=300_000)
    with server as emu, emu.client() as http:
        for _ in range(10):
            assert http.post("/assistant", json=MANY_OBJECTS).status_code == 201
        held = deep_size(server.runtime.log.entries)
    assert held <= 300_000, f"the log holds {held} bytes"


@pytest.mark.parametrize(
    "route", ["/call", "/_emulator/requests", "/control/00000000-0000-4000-8000-000000000000"]
)
def test_two_authorization_headers_are_a_400(emu, route):
    twice = [("Authorization", f"Bearer {emu.api_key}"), ("Authorization", f"Bearer {emu.api_key}")]
    answer = httpx.post(emu.url + route, json={"type": "end-call"}, headers=twice)
    assert error(answer, 400) == DUPLICATE_AUTHORIZATION_MESSAGE
    log = emu.request_log()
    if route.startswith("/_emulator"):
        assert (log["requests"], log["refused"]) == ([], 0), "the admin API is never recorded"
    else:
        assert [(r["path"], r["status"], r["body"]) for r in log["requests"]] == [(route, 400, None)]
        assert log["refused"] == 1
