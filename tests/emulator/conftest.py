"""Shared helpers of the emulator tests: spec validation of every answer, HTTP clients."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.shared_data import openapi_spec

SPEC_URI = "urn:vapi-openapi"


def _to_json_schema(node: Any, strict: bool) -> Any:
    """OpenAPI 3.0 -> JSON Schema (draft 4): ``nullable``, and the spec's loose ``oneOf``.

    The spec's ``oneOf`` lists (messages, costs) overlap (UserMessage and BotMessage accept the same
    objects), so strict ``oneOf`` would reject every valid message: they become ``anyOf``. With
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
