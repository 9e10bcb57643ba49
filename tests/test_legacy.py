"""Upgrading 2024 ``POST /call/phone`` bodies (the seed page) to the current ``CreateCallDTO``."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import pytest
from pydantic import ValidationError

from airflow_provider_vapi.models import CreateCallRequest
from airflow_provider_vapi.models.legacy import (
    ASSISTANT_DROPS,
    ASSISTANT_MOVES,
    PHONE_NUMBER_MOVES,
    upgrade_call_body,
)
from tests.shared_data import openapi_spec, seed_payload, strings_where_the_spec_wants_them

LOGGER = "airflow_provider_vapi.models"


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths (``a.b[0].c``) -> values; empty containers are leaves too."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(node, list) and node:
        out = {}
        for index, value in enumerate(node):
            out.update(flatten(value, f"{prefix}[{index}]"))
        return out
    return {prefix: node}


def unique_strings(node: Any, counter: list[int] | None = None) -> Any:
    """Replace every ``<string>`` placeholder by a short value of its own, so moves are traceable."""
    counter = [0] if counter is None else counter
    if isinstance(node, dict):
        return {k: unique_strings(v, counter) for k, v in node.items()}
    if isinstance(node, list):
        return [unique_strings(v, counter) for v in node]
    if node == "<string>":
        counter[0] += 1
        return f"s{counter[0]}"
    return node


def seed_with_one_alternative(source: str = "assistant") -> dict[str, Any]:
    seed = seed_payload()
    strings_where_the_spec_wants_them(seed)
    body = unique_strings(seed)
    for key in ("assistantId", "assistant", "squadId", "squad", "customerId", "phoneNumberId"):
        if key != source:
            body.pop(key)
    body["customer"]["number"] = "+14155550123"
    body["phoneNumber"]["twilioPhoneNumber"] = "+14155550100"
    return body


# old leaf (inside an assistant-like object) -> new leaf; a value-preserving rewrite.
ASSISTANT_REWRITES = [
    (r"recordingEnabled", "artifactPlan.recordingEnabled"),
    (r"hipaaEnabled", "compliancePlan.hipaaEnabled"),
    (r"serverUrl", "server.url"),
    (r"serverUrlSecret", "server.headers.X-Vapi-Secret"),
    (r"responseDelaySeconds", "startSpeakingPlan.waitSeconds"),
    (r"numWordsToInterruptAssistant", "stopSpeakingPlan.numWords"),
    (r"voice\.inputPreprocessingEnabled", "voice.chunkPlan.enabled"),
    (r"voice\.inputMinCharacters", "voice.chunkPlan.minCharacters"),
    (r"voice\.inputPunctuationBoundaries(\[\d+\])", r"voice.chunkPlan.punctuationBoundaries\1"),
    (r"analysisPlan\.summaryPrompt", "analysisPlan.summaryPlan.messages[0].content"),
    (r"analysisPlan\.structuredDataPrompt", "analysisPlan.structuredDataPlan.messages[0].content"),
    (r"analysisPlan\.structuredDataSchema(.*)", r"analysisPlan.structuredDataPlan.schema\1"),
    (r"analysisPlan\.successEvaluationPrompt", "analysisPlan.successEvaluationPlan.messages[0].content"),
    (r"analysisPlan\.successEvaluationRubric", "analysisPlan.successEvaluationPlan.rubric"),
]
ASSISTANT_DROPPED = [
    r"silenceTimeoutSeconds",
    r"llmRequestDelaySeconds",
    r"backchannelingEnabled",
    r"voice\.fillerInjectionEnabled",
    r"model\.semanticCachingEnabled",
    r"model\.knowledgeBase\..*",
    r"model\.tools\[0\]\.(async|function\..*|server\..*)",
]
# Leaves the upgrade adds (fixed content around the moved values).
ADDED = [
    r"analysisPlan\.(summaryPlan|structuredDataPlan|successEvaluationPlan)\.messages\[0\]\.role",
    r"analysisPlan\.(summaryPlan|structuredDataPlan|successEvaluationPlan)\.messages\[1\]\.(role|content)",
    r"analysisPlan\.structuredDataPlan\.enabled",
]
SCOPES = (
    r"(assistant|assistantOverrides|squad\.members\[0\]\.assistant|squad\.members\[0\]\.assistantOverrides)"
)


def expected_leaves(body: dict[str, Any], source: str) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for path, value in flatten(body).items():
        if path == "metadata":  # carried to the overrides of what speaks on the call
            expected[f"{source}Overrides.metadata"] = value
            continue
        if re.fullmatch(r"phoneNumber\.serverUrl", path):
            expected["phoneNumber.server.url"] = value
            continue
        if re.fullmatch(r"phoneNumber\.serverUrlSecret", path):
            expected["phoneNumber.server.headers.X-Vapi-Secret"] = value
            continue
        if any(re.fullmatch(rf"{SCOPES}\.{drop}", path) for drop in ASSISTANT_DROPPED):
            continue
        for old, new in ASSISTANT_REWRITES:
            match = re.fullmatch(rf"{SCOPES}\.{old}", path)
            if match:
                path = f"{match.group(1)}.{match.expand(new.replace(chr(92) + '1', chr(92) + '2'))}"
                break
        expected[path] = value
    return expected


@pytest.mark.parametrize("source", ["assistant", "squad"])
def test_seed_with_one_alternative_round_trips_with_nothing_lost(source: str, caplog) -> None:
    body = seed_with_one_alternative(source)
    original = copy.deepcopy(body)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        request = CreateCallRequest.from_payload(body)
    assert body == original, "the caller's dict must not be mutated"

    wire = flatten(request.to_wire())
    expected = expected_leaves(body, source)
    missing = {p: v for p, v in expected.items() if wire.get(p, object()) != v}
    assert not missing, f"lost or changed: {missing}"
    added = {p for p in wire if p not in expected}
    unexplained = {p for p in added if not any(re.fullmatch(rf"{SCOPES}\.{a}", p) for a in ADDED)}
    assert not unexplained
    assert wire["phoneNumber.twilioAuthToken"] == body["phoneNumber"]["twilioAuthToken"]

    # One warning per moved or dropped field, each naming the old and the new path.
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    legacy_paths = [m.split()[3] for m in messages if m.startswith("Vapi legacy field")]
    assert len(legacy_paths) == len(set(legacy_paths))
    moved_or_dropped = {p for p in flatten(body) if p not in expected and p not in wire}
    # every leaf that left its place is covered by a warning on it or on its parent
    for path in moved_or_dropped:
        assert any(path == w or path.startswith((w + ".", w + "[")) for w in legacy_paths), path
    assert "Vapi legacy field assistantOverrides.recordingEnabled moved to " in "\n".join(messages)
    assert "assistantOverrides.artifactPlan.recordingEnabled" in "\n".join(messages)


def test_seed_as_is_logs_no_upgrade_noise_when_refused(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER), pytest.raises(ValidationError):
        CreateCallRequest.from_payload(seed_payload())
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_strict_mode_refuses_every_dropped_field() -> None:
    body = seed_with_one_alternative()
    with pytest.raises(ValidationError) as caught:
        CreateCallRequest.from_payload(body, strict=True)
    refused = {e["loc"][0] for e in caught.value.errors() if e["type"] == "legacy_field"}
    assert "assistant.silenceTimeoutSeconds" in refused
    assert "assistantOverrides.voice.fillerInjectionEnabled" in refused
    assert "assistant.model.semanticCachingEnabled" in refused
    assert "assistant.model.tools[0].function" in refused
    assert "assistant.recordingEnabled" not in refused, "moves lose nothing: strict keeps them"
    with pytest.raises(ValidationError):
        CreateCallRequest.model_validate(body, context={"strict_legacy": True})


def test_strict_mode_accepts_moves_only() -> None:
    body = {
        "assistantId": "a1",
        "phoneNumberId": "p1",
        "customer": {"number": "+14155550123"},
        "assistantOverrides": {"recordingEnabled": False, "voice": {"inputMinCharacters": 20}},
    }
    wire = CreateCallRequest.from_payload(body, strict=True).to_wire()
    assert wire["assistantOverrides"] == {
        "artifactPlan": {"recordingEnabled": False},
        "voice": {"chunkPlan": {"minCharacters": 20}},
    }


def test_existing_new_value_is_never_overwritten(caplog) -> None:
    body = {
        "assistantId": "a1",
        "phoneNumberId": "p1",
        "customer": {"number": "+14155550123"},
        "assistantOverrides": {
            "recordingEnabled": True,
            "artifactPlan": {"recordingEnabled": False},
            "serverUrlSecret": "old-secret",
            "server": {"url": "https://x", "headers": {"x-vapi-secret": "new-secret"}},
        },
    }
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        wire = CreateCallRequest.from_payload(body).to_wire()
    assert wire["assistantOverrides"]["artifactPlan"] == {"recordingEnabled": False}
    assert wire["assistantOverrides"]["server"]["headers"] == {"x-vapi-secret": "new-secret"}
    assert "recordingEnabled" not in wire["assistantOverrides"]
    assert "already set" in caplog.text
    with pytest.raises(ValidationError, match="already set"):
        CreateCallRequest.from_payload(body, strict=True)


def test_upgrade_reaches_every_assistant_like_object(caplog) -> None:
    legacy = {"hipaaEnabled": True}
    body = {
        "squad": {"members": [{"assistantId": "m1", "assistantOverrides": dict(legacy)}]},
        "squadOverrides": dict(legacy),
        "phoneNumberId": "p1",
        "customers": [
            {"number": "+14155550123", "assistantOverrides": dict(legacy)},
            {"number": "+14155550124", "squadOverrides": dict(legacy)},
        ],
    }
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        wire = CreateCallRequest.from_payload(body).to_wire()
    moved = {"compliancePlan": {"hipaaEnabled": True}}
    assert wire["squad"]["members"][0]["assistantOverrides"] == moved
    assert wire["squadOverrides"] == moved
    assert wire["customers"][0]["assistantOverrides"] == moved
    assert wire["customers"][1]["squadOverrides"] == moved
    assert "customers[1].squadOverrides.hipaaEnabled moved to" in caplog.text


def test_tool_server_secret_becomes_a_header_and_current_tools_are_untouched() -> None:
    tools = [
        {"type": "function", "async": True, "function": {"name": "f"}, "server": {"url": "u", "secret": "s"}},
        {"type": "some-future-tool", "server": {"url": "u"}, "async": True},
    ]
    result = upgrade_call_body({"assistant": {"model": {"tools": tools}}})
    got = result.body["assistant"]["model"]["tools"]
    assert got[0] == {
        "type": "function",
        "async": True,
        "function": {"name": "f"},
        "server": {"url": "u", "headers": {"X-Vapi-Secret": "s"}},
    }
    assert got[1] == tools[1]
    assert result.changes == [
        ("assistant.model.tools[0].server.secret", "assistant.model.tools[0].server.headers.X-Vapi-Secret")
    ]


def test_top_level_metadata_moves_to_the_overrides_that_travel(caplog) -> None:
    body = {
        "assistantId": "a1",
        "phoneNumberId": "p1",
        "customer": {"number": "+14155550123"},
        "metadata": {"order": 7, "shared": "legacy"},
        "assistantOverrides": {"metadata": {"shared": "current"}},
    }
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        wire = CreateCallRequest.from_payload(body).to_wire()
    assert "metadata" not in wire
    assert wire["assistantOverrides"]["metadata"] == {"order": 7, "shared": "current"}
    assert sum("metadata moved to assistantOverrides.metadata" in r.getMessage() for r in caplog.records) == 1

    squad = {"squadId": "s1", "phoneNumberId": "p1", "customerId": "c1", "metadata": {"k": 1}}
    assert CreateCallRequest.from_payload(squad).to_wire()["squadOverrides"] == {"metadata": {"k": 1}}


def test_current_bodies_are_left_alone(caplog) -> None:
    body = {
        "assistant": {
            "artifactPlan": {"recordingEnabled": True},
            "voice": {"provider": "azure", "voiceId": "andrew", "chunkPlan": {"enabled": True}},
            "model": {"knowledgeBase": {"provider": "custom-knowledge-base", "server": {"url": "u"}}},
        },
        "phoneNumberId": "p1",
        "customer": {"number": "+14155550123"},
    }
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert CreateCallRequest.from_payload(body, strict=True).to_wire() == body
    assert not caplog.records


# -- the move table, checked against Vapi's spec ------------------------------------------------
def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a (possibly composed) schema can be."""
    if "$ref" in schema:
        return _resolve(spec, spec["components"]["schemas"][schema["$ref"].split("/")[-1]])
    out: list[dict[str, Any]] = []
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key, []):
            out += _resolve(spec, sub)
    return out + ([schema] if "properties" in schema else [])


def _path_exists(spec: dict[str, Any], root: str, path: str) -> bool:
    schemas = _resolve(spec, {"$ref": f"#/components/schemas/{root}"})
    parts = path.split(".")
    for index, part in enumerate(parts):
        if index == len(parts) - 1 and parts[index - 1] == "headers":
            return any(s.get("type") == "object" for s in schemas)  # free-form header map
        props = [s["properties"][part] for s in schemas if part in s.get("properties", {})]
        if not props:
            return False
        schemas = [r for p in props for r in _resolve(spec, p)] or [p for p in props]
    return True


@pytest.mark.parametrize("root", ["CreateAssistantDTO", "AssistantOverrides"])
def test_every_move_goes_from_a_gone_place_to_a_current_one(root: str) -> None:
    spec = openapi_spec()
    for move in ASSISTANT_MOVES:
        assert not _path_exists(spec, root, move.old), f"{root}.{move.old} still exists"
        assert _path_exists(spec, root, move.new), f"{root}.{move.new} does not exist"
    for drop in ASSISTANT_DROPS:
        assert not _path_exists(spec, root, drop.old), f"{root}.{drop.old} still exists"


def test_phone_number_moves_match_the_spec() -> None:
    spec = openapi_spec()
    for move in PHONE_NUMBER_MOVES:
        assert not _path_exists(spec, "ImportTwilioPhoneNumberDTO", move.old)
        assert _path_exists(spec, "ImportTwilioPhoneNumberDTO", move.new)


def test_dropped_fields_have_no_home_anywhere_in_the_spec() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    for drop in ASSISTANT_DROPS:
        leaf = drop.old.split(".")[-1]
        homes = [name for name, s in schemas.items() if leaf in s.get("properties", {})]
        # silenceTimeoutSeconds survives only on TransferAssistant (a transfer's own assistant).
        assert homes in ([], ["TransferAssistant"]), (leaf, homes)
