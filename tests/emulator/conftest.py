"""Shared helpers of the emulator tests: spec validation of every answer, HTTP clients."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import httpx
import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.shared_data import openapi_spec

SPEC_URI = "urn:vapi-openapi"
T = TypeVar("T")


def _to_json_schema(node: Any, strict: bool) -> Any:
    """OpenAPI 3.0 -> JSON Schema (draft 4): ``nullable``, and the spec's loose ``oneOf``.

    The spec's ``oneOf`` lists (messages, costs) overlap (UserMessage and BotMessage accept the same
    objects), so strict ``oneOf`` would reject every valid message: they become ``anyOf``. An
    ``enum`` beside ``type: array`` (``Campaign.serverMessages``: NestJS's swagger writes an
    ``isArray`` enum's values on the array too) would refuse every array: only its ``items``
    keep it. With
    ``strict``, objects that declare ``properties`` and say nothing about extra keys get
    ``additionalProperties: false``, which proves the emulator invents nothing on the wire.
    """
    if isinstance(node, list):
        return [_to_json_schema(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _to_json_schema(value, strict) for key, value in node.items() if key not in ("discriminator",)
    }
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    if out.get("type") == "array" and "items" in out:
        out.pop("enum", None)
    if strict and "properties" in out and "additionalProperties" not in out and "allOf" not in out:
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _registry(strict: bool) -> Registry:
    doc = _to_json_schema(copy.deepcopy(openapi_spec()), strict)
    # property maps are not schemas; undo the rewriting inside them is unnecessary: keys stay.
    return Registry().with_resource(SPEC_URI, DRAFT4.create_resource(doc))


def validate(instance: Any, schema_name: str, *, array: bool = False) -> None:
    """Assert ``instance`` is a valid ``components.schemas[schema_name]`` (or an array of them),
    with no key the spec does not declare."""
    ref: dict[str, Any] = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    schema = {"type": "array", "items": ref} if array else ref
    validator = jsonschema.Draft4Validator(schema, registry=_registry(True))
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


@pytest.fixture
def emu(vapi_emulator):
    """The session emulator, reset (the plugin's ``vapi_emulator``)."""
    return vapi_emulator


@pytest.fixture
def http(emu) -> Iterator[httpx.Client]:
    """An authenticated client on the Vapi routes."""
    with emu.client() as client:
        yield client


def create(http: httpx.Client, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    """POST /call, assert the status and (for 201) validate the Call against the spec."""
    answer = http.post("/call", json=body)
    assert answer.status_code == status, answer.text
    data: dict[str, Any] = answer.json()
    if status == 201:
        validate(data, "CallBatchResponse" if "customers" in body else "Call")
    return data


def get_call(http: httpx.Client, call_id: str) -> dict[str, Any]:
    """GET /call/{id}, validated."""
    answer = http.get(f"/call/{call_id}")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    validate(data, "Call")
    return data


PRESIGNED = (
    "presignedMonoUrl",
    "presignedStereoUrl",
    "presignedAssistantUrl",
    "presignedCustomerUrl",
    "presignedUrlsExpiresAt",
)


def stable(call: dict[str, Any]) -> dict[str, Any]:
    """``call`` without its presigned recording URLs (new in every answer, as on Vapi): what two
    reads of an unchanged call agree on."""
    artifact = {k: v for k, v in (call.get("artifact") or {}).items() if k not in PRESIGNED}
    return {**call, "artifact": artifact} if "artifact" in call else dict(call)


def error(answer: httpx.Response, status: int = 400) -> str | list[str]:
    """Assert a NestJS-shaped error and return its message."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"message", "error", "statusCode"}
    assert body["statusCode"] == status
    message: str | list[str] = body["message"]
    return message


def wait_until(probe: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Call ``probe`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        time.sleep(interval)


# -- campaigns ------------------------------------------------------------------------------------


def post_campaign(http: httpx.Client, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    """POST /v2/campaign, assert the status and (for 201) validate the Campaign."""
    answer = http.post("/v2/campaign", json=body)
    assert answer.status_code == status, answer.text
    data: dict[str, Any] = answer.json()
    if status == 201:
        validate(data, "Campaign")
    return data


def campaign_summary(http: httpx.Client, campaign_id: str, counters: bool = True) -> dict[str, Any]:
    """GET /v2/campaign/{id} (with counters unless told), validated."""
    answer = http.get(f"/v2/campaign/{campaign_id}", params={"includeCounters": str(counters).lower()})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    validate(data, "CampaignSummary")
    assert ("contactCounters" in data) == ("callMetrics" in data) == counters
    return data


def contacts_page(http: httpx.Client, campaign_id: str, **params: Any) -> dict[str, Any]:
    """One page of GET /v2/campaign/{id}/contacts, validated."""
    answer = http.get(f"/v2/campaign/{campaign_id}/contacts", params=params)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    validate(data, "CampaignContactPaginatedResponse")
    return data


def all_contacts(http: httpx.Client, campaign_id: str, limit: int = 1000, **params: Any) -> list[dict[str, Any]]:
    """Every contact through the Vapi route, page by page (each page validated)."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        data = contacts_page(http, campaign_id, limit=limit, page=page, **params)
        found.extend(data["results"])
        if not data["metadata"]["hasNextPage"]:
            return found
        page += 1


def calls_of(emu: Any, campaign_id: str) -> list[dict[str, Any]]:
    """The emulator's calls of one campaign (admin view), oldest first."""
    return [c for c in emu.calls() if c.get("campaignId") == campaign_id]


def ms(stamp: str) -> int:
    """An ISO 8601 timestamp of the wire in milliseconds since the epoch."""
    return round(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def most_at_once(calls: list[dict[str, Any]]) -> int:
    """The largest number of ``calls`` under way at one instant, each ``[createdAt, endedAt)``
    (a call not yet ended counts until the end of time)."""
    edges = sorted(
        [(ms(c["createdAt"]), 1) for c in calls]
        + [(ms(c["endedAt"]), -1) for c in calls if "endedAt" in c],
        key=lambda edge: (edge[0], edge[1]),  # at one instant, ends before starts
    )
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak
