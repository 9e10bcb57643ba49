"""Ids are data, never a path or a query ("Data is never code", item 4).

Every id the hook puts into a URL path is checked as a Vapi id (a UUID) first
(:mod:`airflow_provider_vapi.wire.ids`): a wrong one fails with ``VapiInvalidRequestError`` naming the
parameter, and the emulator's request log proves that nothing was sent. The three findings of the
issue come first; then every route, both drivers; then what the check accepts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.exceptions import VapiInvalidRequestError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.structured_outputs.api import StructuredOutputApi
from airflow_provider_vapi.wire.ids import EXAMPLE_ID, checked_id, path_segment

pytestmark = pytest.mark.timeout(60)

UUID = "5b1c3a52-7d0e-4f6a-9c2b-8e4d1f0a3b71"


@pytest.fixture
def hook(vapi_conn: str) -> Any:
    h = VapiHook(vapi_conn)
    yield h
    h.close()


def nothing_sent(emu: Any) -> None:
    assert emu.requests() == [], "the id was refused before any request"


# -- the three findings -------------------------------------------------------------------------


def test_a_call_id_that_climbs_to_another_resource_deletes_nothing(
    hook: VapiHook, vapi_emulator: Any
) -> None:
    """``delete_call("../structured-output/<id>")`` deleted a structured output: httpx folds the
    dot segments, so the DELETE reached ``/structured-output/<id>``."""
    emu = vapi_emulator
    output = emu.create_structured_output("kept", {"type": "string"})
    emu.clear_requests()
    with pytest.raises(VapiInvalidRequestError) as info:
        hook.delete_call(f"../structured-output/{output['id']}")
    nothing_sent(emu)
    assert output["id"] in {o["id"] for o in emu.structured_outputs()}, "the structured output is still there"
    message = str(info.value)
    assert "call_id='../structured-output/" in message and "is not a Vapi call id" in message
    assert "nothing was sent" in message and EXAMPLE_ID in message and "wrong task" in message


@pytest.mark.parametrize("suffix", ["?limit=1", "#y"])
def test_a_call_id_carrying_a_query_sends_nothing(hook: VapiHook, vapi_emulator: Any, suffix: str) -> None:
    """``get_call("x?limit=1")`` sent a query; with a real id in front it even answered the call."""
    call_id = str(vapi_emulator.create_call("+14155550123")["id"])
    vapi_emulator.clear_requests()
    for bad in ("x" + suffix, call_id + suffix):
        with pytest.raises(VapiInvalidRequestError, match=r"call_id=.* is not a Vapi call id"):
            hook.get_call(bad)
    nothing_sent(vapi_emulator)


@pytest.mark.parametrize("rendered", [None, "None", ""])
def test_a_campaign_id_that_rendered_to_nothing_asks_nothing(
    hook: VapiHook, vapi_emulator: Any, rendered: Any
) -> None:
    """A ``campaign_id`` rendering to ``None`` asked ``GET /v2/campaign/None/contacts``."""
    vapi_emulator.clear_requests()
    with pytest.raises(VapiInvalidRequestError) as info:
        list(CampaignApi(hook).iter_contact_pages(rendered))
    assert "campaign_id=" in str(info.value) and "rendered to nothing" in str(info.value)
    with pytest.raises(VapiInvalidRequestError, match="is not a Vapi campaign id"):
        CampaignApi(hook).get(rendered)
    nothing_sent(vapi_emulator)


# -- every route that puts an id in its path, sync and async --------------------------------------


def _drive(result: Any) -> Any:
    """Run what a method returned: a coroutine on a fresh loop, an iterator to its end."""
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return list(result) if hasattr(result, "__next__") else result


ROUTES: dict[str, tuple[str, Callable[[VapiHook, Any], Any]]] = {
    "get_call": ("call_id", lambda h, v: h.get_call(v)),
    "aget_call": ("call_id", lambda h, v: h.aget_call(v)),
    "delete_call": ("call_id", lambda h, v: h.delete_call(v)),
    "adelete_call": ("call_id", lambda h, v: h.adelete_call(v)),
    "end_call": ("call_id", lambda h, v: h.end_call(v)),
    "aend_call": ("call_id", lambda h, v: h.aend_call(v)),
    "download_recording": ("call_id", lambda h, v: h.download_recording(v, lambda: None)),
    "get_assistant": ("assistant_id", lambda h, v: h.get_assistant(v)),
    "aget_assistant": ("assistant_id", lambda h, v: h.aget_assistant(v)),
    "get_structured_output": ("structured_output_id", lambda h, v: StructuredOutputApi(h).get(v)),
    "campaigns.get": ("campaign_id", lambda h, v: CampaignApi(h).get(v)),
    "campaigns.aget": ("campaign_id", lambda h, v: CampaignApi(h).aget(v)),
    "campaigns.cancel": ("campaign_id", lambda h, v: CampaignApi(h).cancel(v)),
    "campaigns.acancel": ("campaign_id", lambda h, v: CampaignApi(h).acancel(v)),
    "campaigns.iter_contact_pages": ("campaign_id", lambda h, v: CampaignApi(h).iter_contact_pages(v)),
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("bad", [None, "", "../x", "x?limit=1", "x#y", f"{UUID}/contacts", 42])
def test_every_route_refuses_a_wrong_id_before_sending(
    hook: VapiHook, vapi_emulator: Any, route: str, bad: Any
) -> None:
    param, call = ROUTES[route]
    vapi_emulator.clear_requests()
    with pytest.raises(VapiInvalidRequestError) as info:
        _drive(call(hook, bad))
    assert str(info.value).startswith(f"{param}="), str(info.value)
    nothing_sent(vapi_emulator)


def test_a_uuid_with_whitespace_or_capitals_reaches_the_call(hook: VapiHook, vapi_emulator: Any) -> None:
    """A rendered template often ends in a newline; an id may have been upper-cased on its way
    through a spreadsheet. Both are still that id: trimmed and lower-cased, as Vapi writes ids."""
    call_id = str(vapi_emulator.create_call("+14155550123")["id"])
    vapi_emulator.clear_requests()
    assert hook.get_call(f"  {call_id.upper()}\n").id == call_id
    assert [r["path"] for r in vapi_emulator.requests()] == [f"/call/{call_id}"]


# -- what the check accepts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (UUID, UUID),
        (f" {UUID}\n", UUID),
        (UUID.upper(), UUID),
        ("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"),
    ],
)
def test_accepted_ids_come_back_canonical(value: str, expected: str) -> None:
    assert checked_id(value, "call_id") == expected
    assert path_segment(value, "call_id") == expected, "escaping a UUID changes nothing"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "None",
        "../x",
        "x?limit=1",
        "x#y",
        f"{UUID}/contacts",
        f"{UUID}?limit=1",
        f"{UUID[:-1]}\n{UUID[-1]}",  # a newline inside
        f"{{{UUID}}}",
        f"urn:uuid:{UUID}",
        UUID.replace("-", ""),
        UUID[:-1] + "g",
        UUID.replace("5", "\uff15"),  # a full-width digit: a digit to str.isdigit, not to Vapi
        UUID.encode(),
        42,
        ["c1"],
        {"call_ids": [UUID]},
    ],
)
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(VapiInvalidRequestError) as info:
        checked_id(value, "call_id")
    assert str(info.value).startswith("call_id=")


def test_the_message_shows_the_value_short_and_safe() -> None:
    long = "../x\r\nInjected: yes" + "/.." * 200
    with pytest.raises(VapiInvalidRequestError) as info:
        checked_id(long, "structured_output_id")
    message = str(info.value)
    assert message.startswith("structured_output_id='../x\\r\\nInjected: yes/../")
    assert f"'... ({len(long)} characters)" in message and "/.." * 20 not in message, "cut short"
    assert "\n" not in message and "\r" not in message, "control characters escaped"
    assert "is not a Vapi structured output id" in message and len(message) < 300
    with pytest.raises(VapiInvalidRequestError, match=r"campaign_id=\{'x': 1\} \(a dict\)"):
        checked_id({"x": 1}, "campaign_id")


def test_a_whole_call_for_an_id_says_to_pass_its_id() -> None:
    call = Call.model_validate({"id": UUID, "status": "ended"})
    with pytest.raises(VapiInvalidRequestError, match=r"pass its \.id, not the whole Call"):
        checked_id(call, "call_id")


def test_the_refusal_is_final_not_retried() -> None:
    """A wrong id fails the same way on every try: an ``AirflowFailException`` (no retry)."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException):
        checked_id("nope", "call_id")
