"""A 2xx from Vapi whose body is garbage (an HTML page, ``null``, cut-off JSON, the wrong shape):
reads retry it like a 5xx and then raise ``VapiResponseError``; a trigger keeps waiting through it.

Against the emulator over real HTTP (its ``garbage:KIND`` faults answer the route's own 2xx status
with a broken body), plus the public readers the create path uses, on hand-made answers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from airflow_provider_vapi.exceptions import VapiAPIError, VapiError, VapiResponseError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.triggers import CallStatusTrigger
from airflow_provider_vapi.waiting import trigger as triggers
from airflow_provider_vapi.wire.paging import PagingError, Window, parse_ts
from airflow_provider_vapi.wire.retries import RetryPolicy
from airflow_provider_vapi.wire.transport import EXCERPT_CHARS, Send, decode_json, validate

pytestmark = pytest.mark.timeout(90)

KINDS = ["garbage:html", "garbage:null", "garbage:truncated"]
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total=10)
HELD = "+15550000006"  # stays in progress until ended
TALK = "+15550004242"  # ends, then its analysis arrives
#: Attempts one read makes with the ``vapi_conn`` connection (its ``max_retries`` default).
CONN_ATTEMPTS = 5


@pytest.fixture
def hook(vapi_conn: str) -> Any:
    h = VapiHook(vapi_conn, retry_policy=FAST)
    yield h
    h.close()


def _gets(emu: Any, path: str) -> int:
    return len(emu.requests(method="GET", path=path))


def _assert_names_the_request(err: VapiResponseError, method: str, path: str, call_id: str | None) -> None:
    text = str(err)
    assert isinstance(err, VapiAPIError)
    assert (err.status_code, err.method, err.call_id) == (200, method, call_id)
    assert err.path is not None and err.path.startswith(path)
    where = f"Vapi answered 200 to {method} {path}" + (f" (call {call_id})" if call_id else "")
    assert text.startswith(f"{where} with a body that is not what the API returns ("), text
    assert "proxy or an outage page" in text


# -- the hook's reads -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_get_call_recovers_from_garbage_shorter_than_the_budget(
    hook: VapiHook, vapi_emulator: Any, kind: str
) -> None:
    call_id = vapi_emulator.create_call(HELD)["id"]
    vapi_emulator.faults([kind] * (FAST.max_attempts - 1), method="GET", path=f"/call/{call_id}")
    assert hook.get_call(call_id).id == call_id
    assert _gets(vapi_emulator, f"/call/{call_id}") == FAST.max_attempts


@pytest.mark.parametrize("kind", KINDS)
def test_get_call_garbage_outlasting_the_budget_is_a_response_error(
    hook: VapiHook, vapi_emulator: Any, kind: str
) -> None:
    call_id = vapi_emulator.create_call(HELD)["id"]
    vapi_emulator.faults([kind] * FAST.max_attempts, method="GET", path=f"/call/{call_id}")
    with pytest.raises(VapiResponseError) as info:
        hook.get_call(call_id)
    _assert_names_the_request(info.value, "GET", f"/call/{call_id}", call_id)
    assert f"it was retried {FAST.max_attempts - 1} times." in str(info.value)
    if kind == "garbage:html":
        assert "(text/html: '<!DOCTYPE html>" in str(info.value)
    assert _gets(vapi_emulator, f"/call/{call_id}") == FAST.max_attempts
    assert vapi_emulator.active_faults() == []


@pytest.mark.parametrize("kind", KINDS)
def test_aget_call_recovers_then_gives_up(vapi_conn: str, vapi_emulator: Any, kind: str) -> None:
    call_id = vapi_emulator.create_call(HELD)["id"]
    path = f"/call/{call_id}"

    async def scenario() -> None:
        hook = VapiHook(vapi_conn, retry_policy=FAST)
        try:
            vapi_emulator.faults([kind] * (FAST.max_attempts - 1), method="GET", path=path)
            assert (await hook.aget_call(call_id)).id == call_id
            vapi_emulator.faults([kind] * FAST.max_attempts, method="GET", path=path)
            with pytest.raises(VapiResponseError) as info:
                await hook.aget_call(call_id)
            _assert_names_the_request(info.value, "GET", path, call_id)
        finally:
            await hook.aclose()

    asyncio.run(scenario())
    assert _gets(vapi_emulator, path) == 2 * FAST.max_attempts


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", [None, 10], ids=["paged", "limited"])
def test_list_calls_recovers_from_garbage_shorter_than_the_budget(
    hook: VapiHook, vapi_emulator: Any, kind: str, limit: int | None
) -> None:
    call_id = vapi_emulator.create_call(HELD)["id"]
    vapi_emulator.faults([kind] * (FAST.max_attempts - 1), method="GET", path="/call")
    assert [c.id for c in hook.list_calls(limit, id=call_id)] == [call_id]
    assert _gets(vapi_emulator, "/call") == FAST.max_attempts


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", [None, 10], ids=["paged", "limited"])
def test_list_calls_garbage_outlasting_the_budget_is_a_response_error(
    hook: VapiHook, vapi_emulator: Any, kind: str, limit: int | None
) -> None:
    vapi_emulator.create_call(HELD)
    vapi_emulator.faults([kind] * FAST.max_attempts, method="GET", path="/call")
    with pytest.raises(VapiResponseError) as info:
        hook.list_calls(limit)
    _assert_names_the_request(info.value, "GET", "/call", None)
    assert _gets(vapi_emulator, "/call") == FAST.max_attempts


@pytest.mark.parametrize("kind", KINDS)
def test_assistant_and_phone_number_lists_read_garbage_as_a_response_error(
    hook: VapiHook, vapi_emulator: Any, kind: str
) -> None:
    for path, read in (("/assistant", hook.list_assistants), ("/phone-number", hook.list_phone_numbers)):
        vapi_emulator.faults([kind] * FAST.max_attempts, method="GET", path=path)
        with pytest.raises(VapiResponseError) as info:
            read()
        _assert_names_the_request(info.value, "GET", path, None)
        assert _gets(vapi_emulator, path) == FAST.max_attempts


def test_delete_answered_with_garbage_is_not_sent_again(hook: VapiHook, vapi_emulator: Any) -> None:
    """The 2xx says the call was deleted: sending the DELETE again would only answer 404."""
    call_id = vapi_emulator.create_call(HELD)["id"]
    vapi_emulator.faults(["garbage:html"], method="DELETE", path=f"/call/{call_id}")
    with pytest.raises(VapiResponseError) as info:
        hook.delete_call(call_id)
    _assert_names_the_request(info.value, "DELETE", f"/call/{call_id}", call_id)
    assert "it was not retried (a 2xx to a DELETE means it most likely took effect)" in str(info.value)
    assert len(vapi_emulator.requests(method="DELETE", path=f"/call/{call_id}")) == 1


# -- the readers the create path uses ---------------------------------------------------------------


def _answer(content: bytes, media: str = "application/json") -> tuple[Send, httpx.Response]:
    step = Send("POST", "https://api.vapi.ai/call")
    reply = httpx.Response(200, content=content, headers={"content-type": media})
    return step, reply


@pytest.mark.parametrize(
    ("content", "expect", "reason"),
    [
        (b'[{"id": "c1"}]', dict, "a JSON array where a JSON object was expected"),
        (b'{"id": "c1"}', list, "a JSON object where a JSON array was expected"),
        (b"null", dict, "JSON null where a JSON object was expected"),
        (b'{"id": "c1", "status": "que', dict, "not valid JSON"),
        (b"", dict, "an empty body"),
    ],
)
def test_decode_json_turns_every_garbage_into_a_response_error(
    content: bytes, expect: type[Any], reason: str
) -> None:
    step, reply = _answer(content)
    with pytest.raises(VapiResponseError) as info:
        decode_json(step, reply, "vapi_default", call_id=None, expect=expect)
    assert f"; {reason})" in str(info.value)
    assert "it was not retried (a 2xx to a POST means it most likely took effect)" in str(info.value)
    assert decode_json(*_answer(b'{"id": "c1"}'), "vapi_default") == {"id": "c1"}


def test_validate_says_what_does_not_fit_without_quoting_values() -> None:
    step, reply = _answer(b'{"status": "queued", "customer": {"number": "+14155550199"}}')
    body = decode_json(step, reply, "vapi_default")
    with pytest.raises(VapiResponseError) as info:
        validate(Call, body, step, reply, "vapi_default", call_id="c1")
    reason = str(info.value).split("; ", 1)[1]
    assert "a JSON object that is not a Call: id: Field required" in reason
    assert "+14155550199" not in reason, "only the short excerpt may quote the body"
    assert validate(list[Call], [{"id": "c1"}], step, reply, "vapi_default")[0].id == "c1"


def test_the_excerpt_is_short_and_masks_secrets() -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret("sk-echoed-SECRET-4242")
    page = b"<html><body>" + b"x" * 90 + b" sk-echoed-SECRET-4242 " + b"y" * 5000 + b"</body></html>"
    step, reply = _answer(page, "text/html; charset=utf-8")
    with pytest.raises(VapiResponseError) as info:
        decode_json(step, reply, "vapi_default")
    text = str(info.value)
    assert "sk-echoed" not in text and "SECRET" not in text
    quoted = text.split("(text/html: ", 1)[1].split("; not valid JSON)", 1)[0]
    assert len(quoted) <= EXCERPT_CHARS + 5


# -- the trigger ------------------------------------------------------------------------------------


async def _events(trigger: CallStatusTrigger, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every event the trigger yields until it returns; anything it raises fails the test."""
    out = []
    async with asyncio.timeout(timeout):
        async for event in trigger.run():
            out.append(dict(event.payload))
    return out


@pytest.mark.parametrize("kind", KINDS)
async def test_trigger_waits_through_garbage_and_succeeds_once_it_heals(
    vapi_conn: str, vapi_emulator: Any, kind: str
) -> None:
    emu = vapi_emulator
    call_id = emu.create_call(TALK)["id"]
    # More than one read's attempts: the first read fails for good, the next one heals.
    emu.faults([kind] * (CONN_ATTEMPTS + 2), method="GET", path=f"/call/{call_id}")
    got = await _events(CallStatusTrigger(call_id, vapi_conn, poll_interval=0.1, analysis_grace_period=60))
    assert [e["status"] for e in got] == ["success"], got
    assert emu.active_faults() == [], "every garbage answer was read, so the reads went on"
    assert "analysis" in emu.call(call_id)


@pytest.mark.parametrize("kind", KINDS)
async def test_trigger_never_dies_on_garbage_that_never_heals(
    vapi_conn: str, vapi_emulator: Any, kind: str
) -> None:
    emu = vapi_emulator
    held = emu.create_call(HELD)["id"]
    emu.fault(kind, method="GET", path="/call*", rate=1.0)  # direct reads and the shared poll alike
    deadline = time.time() + 1.5
    got = await _events(CallStatusTrigger(held, vapi_conn, poll_interval=0.1, deadline=deadline))
    assert [e["status"] for e in got] == ["timeout"], got
    assert got[0]["pending"] == [held]
    assert _gets(emu, f"/call/{held}") >= CONN_ATTEMPTS, "the trigger kept reading through the garbage"


async def test_garbage_for_too_long_ends_in_one_error_event(
    vapi_conn: str, vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(triggers, "MAX_CONSECUTIVE_FAILURE_SECONDS", 0.5)
    emu = vapi_emulator
    held = emu.create_call(HELD)["id"]
    emu.fault("garbage:html", method="GET", path="/call*", rate=1.0)
    got = await _events(CallStatusTrigger(held, vapi_conn, poll_interval=0.1))
    assert [e["status"] for e in got] == ["error"], got
    assert f"Vapi answered 200 to GET /call/{held} (call {held})" in got[0]["message"]
    assert got[0]["pending"] == [held]


# -- paging -----------------------------------------------------------------------------------------


def test_paging_error_is_a_vapi_error() -> None:
    stamp = parse_ts("2025-01-01T00:00:00.000Z")
    window = Window("createdAt", {}, low=stamp)
    with pytest.raises(VapiError) as info:
        window.split([stamp] * 1000)
    err = info.value
    assert isinstance(err, PagingError) and isinstance(err, ValueError)
    assert str(err).startswith("More than 1000 calls have the same createdAt (2025-01-01T00:00:00.000Z)")


# -- the shared poll's raw pages (feed.py) ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["garbage:html", "garbage:null"])
async def test_a_raw_call_page_retries_garbage_like_any_read(vapi_conn: str, vapi_emulator: Any, kind: str) -> None:
    import json

    call_id = vapi_emulator.create_call(HELD)["id"]
    vapi_emulator.faults([kind] * (FAST.max_attempts - 1), method="GET", path="/call")
    hook = VapiHook(vapi_conn, retry_policy=FAST)
    try:
        page = await hook.alist_calls_page({"id": call_id})
    finally:
        await hook.aclose()
    assert [c["id"] for c in json.loads(page)] == [call_id]
    assert _gets(vapi_emulator, "/call") == FAST.max_attempts


async def test_a_cut_off_page_fails_the_listing_with_a_response_error(vapi_conn: str, vapi_emulator: Any) -> None:
    """A body cut short still starts like a JSON array: the decoder, not the transport, finds it."""
    from airflow_provider_vapi.waiting import feed

    call_id = vapi_emulator.create_call(HELD)["id"]
    vapi_emulator.faults(["garbage:truncated"], method="GET", path="/call")
    hook = VapiHook(vapi_conn, retry_policy=FAST)
    try:
        with pytest.raises(VapiResponseError, match="not a list of calls"):
            await feed.alist_wanted(hook, {"id": call_id}, {call_id})
        listing = await feed.alist_wanted(hook, {"id": call_id}, {call_id})  # the next poll is fine
    finally:
        await hook.aclose()
    assert list(listing.calls) == [call_id]
