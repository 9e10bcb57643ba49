"""Inline assistants, overrides and customers checked against Vapi's schemas before sending."""

from __future__ import annotations

import ast
import copy
import importlib.util
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflow_provider_vapi.idempotency import keyed_body
from airflow_provider_vapi.models import CreateCallRequest
from airflow_provider_vapi.models.legacy import upgrade_call_body
from airflow_provider_vapi.models.nested import MAX_DEPTH, nested_problems
from airflow_provider_vapi.spec_table import BODIES, CALL_ROOTS, SCHEMAS, UNIONS
from tests.shared_data import REPO_ROOT, Exploding, openapi_spec, seed_payload

NUMBER = "+14155550123"
OPENAI = {"provider": "openai", "model": "gpt-4o"}


def messages(body: Mapping[str, Any]) -> dict[tuple[str | int, ...], str]:
    return dict(nested_problems(body))


def only(body: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """The one problem of ``body``."""
    problems = nested_problems(body)
    assert len(problems) == 1, problems
    return problems[0]


def full_assistant() -> dict[str, Any]:
    """An inline assistant using most of what the current API offers (all valid)."""
    return {
        "name": "Booker",
        "firstMessage": "Hello {{name}}",
        "firstMessageMode": "assistant-speaks-first",
        "transcriber": {"provider": "deepgram", "model": "nova-2", "language": "en", "keywords": ["Vapi"]},
        "model": {
            **OPENAI,
            "temperature": 0.3,
            "maxTokens": 250,
            "messages": [{"role": "system", "content": "You book appointments."}],
            "tools": [
                {
                    "type": "function",
                    "async": False,
                    "function": {
                        "name": "book",
                        "description": "Book a slot",
                        "parameters": {
                            "type": "object",
                            "properties": {"slot": {"type": "string", "minLength": 1}},
                            "required": ["slot"],
                            "additionalProperties": False,
                        },
                    },
                    "server": {"url": "https://hooks.example.com/tool", "headers": {"X-Vapi-Secret": "s"}},
                    "messages": [{"type": "request-start", "content": "One moment."}],
                },
                {"type": "endCall"},
                {
                    "type": "transferCall",
                    "destinations": [{"type": "number", "number": NUMBER, "message": "Transferring."}],
                },
            ],
        },
        "voice": {"provider": "11labs", "voiceId": "burt", "stability": 0.5, "chunkPlan": {"enabled": True}},
        "voicemailDetection": "off",
        "backgroundSound": "office",
        "maxDurationSeconds": 600,
        "endCallPhrases": ["goodbye"],
        "metadata": {"anything": {"goes": [1, "here"]}},
        "artifactPlan": {"recordingEnabled": True, "structuredOutputIds": ["so_1"]},
        "analysisPlan": {
            "summaryPlan": {"enabled": True, "messages": [{"role": "system", "content": "Sum up."}]}
        },
        "compliancePlan": {"hipaaEnabled": False},
        "startSpeakingPlan": {"waitSeconds": 0.4, "smartEndpointingPlan": {"provider": "livekit"}},
        "stopSpeakingPlan": {"numWords": 2},
        "server": {"url": "https://hooks.example.com/vapi", "timeoutSeconds": 20},
        "hooks": [{"on": "customer.speech.timeout", "do": [{"type": "say", "exact": "Are you there?"}]}],
        "credentials": [{"provider": "openai", "apiKey": "sk-test"}],
    }


# -- valid bodies stay valid -------------------------------------------------------------------
def test_a_full_valid_assistant_has_no_problems() -> None:
    body = {"assistant": full_assistant(), "customer": {"number": NUMBER, "name": "Ada"}}
    assert nested_problems(body) == []


def test_the_seed_payload_upgraded_has_only_its_placeholder_problems() -> None:
    """The 2024 reference page puts ``{}`` where today's spec wants a string (a condition's value)."""
    upgraded = upgrade_call_body(seed_payload()).body
    problems = nested_problems(upgraded)
    assert problems, "the seed's conditions[].value placeholder is an object"
    for loc, message in problems:
        assert loc[-3:] == ("conditions", 0, "value") and "must be a string, got object" in message
    for where in ("assistant", "assistantOverrides"):
        upgraded[where]["model"]["tools"][0]["messages"][0]["conditions"][0]["value"] = "yes"
    for member in upgraded["squad"]["members"]:
        for where in ("assistant", "assistantOverrides"):
            member[where]["model"]["tools"][0]["messages"][0]["conditions"][0]["value"] = "yes"
    assert nested_problems(upgraded) == []


def test_what_the_provider_writes_itself_is_valid() -> None:
    """Idempotency keys in ``metadata`` / ``variableValues``, legacy moves into plans and headers."""
    legacy = {
        "recordingEnabled": True,
        "serverUrl": "https://h",
        "serverUrlSecret": "s",
        "hipaaEnabled": True,
    }
    for source in ({"assistant": {**legacy, "model": OPENAI}}, {"workflowId": "wf_1"}, {"squadId": "sq_1"}):
        request = CreateCallRequest.from_payload(
            {**source, "phoneNumberId": "pn_1", "customers": [{"number": NUMBER}, {"number": "+14155550124"}]}
        )
        body = keyed_body(request, "idem-key")
        assert nested_problems(body) == [], body


def test_snake_case_fields_our_models_rename_are_accepted() -> None:
    body = {
        "assistantOverrides": {"variable_values": {"name": "Ada"}, "metadata": {"k": 1}},
        "workflowOverrides": {"variable_values": {"x": 1}},
        "schedulePlan": {"earliest_at": datetime(2030, 1, 1, tzinfo=UTC), "latestAt": "2030-01-02T00:00:00Z"},
        "customer": {"number": NUMBER, "assistantOverrides": {"variable_values": {}}},
    }
    assert nested_problems(body) == []
    loc, message = only({"assistantOverrides": {"first_message": "hi"}})
    assert "did you mean 'firstMessage'?" in message, "an extra field is sent as written: Vapi refuses it"
    loc, message = only({"assistant": {"variable_values": {}, "model": OPENAI}})
    assert loc == ("assistant", "variable_values"), "an inline assistant is a plain dict: nothing renames it"


def test_values_pydantic_serialises_are_not_type_errors() -> None:
    body = {"assistant": {"maxDurationSeconds": Decimal("600"), "name": object(), "model": OPENAI}}
    assert nested_problems(body) == []


def test_free_form_objects_are_not_looked_into() -> None:
    anything = {"recordingEnabld": 1, "deep": {"x": [object()]}, 3: "int key"}
    body = {
        "assistant": {"metadata": anything, "server": {"headers": anything}, "model": OPENAI},
        "assistantOverrides": {"variableValues": anything, "metadata": anything},
    }
    assert nested_problems(body) == []


# -- unknown properties ------------------------------------------------------------------------
def test_the_issue_example_suggests_the_current_home_of_a_2024_field() -> None:
    assert only({"assistant": {"recordingEnabld": True}}) == (
        ("assistant", "recordingEnabld"),
        "property 'recordingEnabld' does not exist in assistant: did you mean 'artifactPlan.recordingEnabled'? "
        "(Vapi would answer 400 'property recordingEnabld should not exist')",
    )


@pytest.mark.parametrize(
    ("body", "loc", "suggestion"),
    [
        (
            {"assistant": {"model": {**OPENAI, "temprature": 1}}},
            ("assistant", "model", "temprature"),
            "temperature",
        ),
        (
            {"assistant": {"model": {**OPENAI, "tools": [{"type": "function", "functon": {}}]}}},
            ("assistant", "model", "tools", 0, "functon"),
            "function",
        ),
        (
            {
                "assistant": {
                    "model": {
                        **OPENAI,
                        "tools": [{"type": "function", "function": {"name": "f", "descripton": ""}}],
                    }
                }
            },
            ("assistant", "model", "tools", 0, "function", "descripton"),
            "description",
        ),
        (
            {
                "squad": {
                    "members": [
                        {"assistant": {"voice": {"provider": "11labs", "voiceId": "v", "stabilty": 1}}}
                    ]
                }
            },
            ("squad", "members", 0, "assistant", "voice", "stabilty"),
            "stability",
        ),
        (
            {"squad": {"members": [{"assistantOverrides": {"firstMesage": "hi"}}]}},
            ("squad", "members", 0, "assistantOverrides", "firstMesage"),
            "firstMessage",
        ),
        ({"customers": [{"number": NUMBER}, {"emial": "a@b.c"}]}, ("customers", 1, "emial"), "email"),
        (
            {"assistant": {"voice": {"provider": "azure", "inputMinCharaters": 5}}},
            ("assistant", "voice", "inputMinCharaters"),
            "chunkPlan.minCharacters",
        ),
        (
            {"assistantOverrides": {"analysisPlan": {"summaryPromt": "x"}}},
            ("assistantOverrides", "analysisPlan", "summaryPromt"),
            "summaryPlan.messages",
        ),
        ({"assistant": {"firstMsg": "hi"}}, ("assistant", "firstMsg"), "firstMessage"),
        ({"assistant": {"FirstMessage": "hi"}}, ("assistant", "FirstMessage"), "firstMessage"),
        (
            {"schedulePlan": {"earliestAt": "2030-01-01T00:00:00Z", "latestAT": "x"}},
            ("schedulePlan", "latestAT"),
            "latestAt",
        ),
    ],
)
def test_typos_at_every_depth_get_a_suggestion(
    body: dict[str, Any], loc: tuple[Any, ...], suggestion: str
) -> None:
    found_loc, message = only(body)
    assert found_loc == loc
    assert f"did you mean '{suggestion}'?" in message
    assert message.startswith(f"property '{loc[-1]}' does not exist in ")


@pytest.mark.parametrize("key", ["phone", "phoneNumber", "phone_number", "tel", "mobile", "telephone"])
def test_customer_phone_synonyms_suggest_number(key: str) -> None:
    loc, message = only({"customer": {key: NUMBER}})
    assert loc == ("customer", key)
    assert "did you mean 'number'?" in message


def test_a_removed_2024_field_says_what_to_do_instead() -> None:
    _, message = only({"assistant": {"silenceTimeoutSecond": 30}})
    assert "silenceTimeoutSeconds" in message and "customer.speech.timeout" in message


def test_a_call_field_inside_a_nested_object_is_sent_to_the_top() -> None:
    _, message = only({"customer": {"number": NUMBER, "assistantId": "asst_1"}})
    assert "move it to the top of the POST /call body" in message


def test_no_suggestion_lists_the_properties_of_a_small_schema() -> None:
    _, message = only({"customer": {"number": NUMBER, "zzzz": 1}})
    assert "remove it (it has: assistantOverrides, email, extension" in message


def test_problems_everywhere_are_reported_together() -> None:
    body = {
        "assistant": {"recordingEnabld": True, "firstMessage": 1, "model": {**OPENAI, "temprature": 1}},
        "customer": {"phone": NUMBER},
        "assistantOverrides": {"maxDurationSecond": 60},
    }
    assert len(nested_problems(body)) == 5


# -- types -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "start", "advice"),
    [
        ({"assistant": {"firstMessage": 42}}, "assistant.firstMessage must be a string, got int", "quote it"),
        (
            {"assistant": {"maxDurationSeconds": "600"}},
            "assistant.maxDurationSeconds must be a number, got str",
            "without quotes",
        ),
        (
            {"assistantOverrides": {"artifactPlan": {"recordingEnabled": "true"}}},
            "assistantOverrides.artifactPlan.recordingEnabled must be true or false",
            "true or false without quotes",
        ),
        ({"assistant": {"endCallPhrases": "bye"}}, "assistant.endCallPhrases must be a list, got str", ""),
        ({"assistant": {"voice": "burt"}}, "assistant.voice must be an object with 'provider', got str", ""),
        ({"customers": {"number": NUMBER}}, "customers must be a list, got object", ""),
        (
            {"customers": [{"number": 14155550123}]},
            "customers[0].number must be a string, got int",
            "quote it",
        ),
        (
            {"schedulePlan": {"earliestAt": 1700000000}},
            "schedulePlan.earliestAt must be an ISO 8601 date-time string",
            "",
        ),
    ],
)
def test_wrong_types(body: dict[str, Any], start: str, advice: str) -> None:
    _, message = only(body)
    assert message.startswith(start)
    assert advice in message and message.endswith("(Vapi would answer 400)")


def test_union_of_a_string_and_objects() -> None:
    assert nested_problems({"assistant": {"voicemailDetection": "off"}}) == []
    _, message = only({"assistant": {"voicemailDetection": 3}})
    assert "must be a string or an object with 'provider', got int" in message


# -- discriminators ----------------------------------------------------------------------------
def test_a_misspelt_provider_suggests_the_right_one() -> None:
    loc, message = only({"assistant": {"model": {"provider": "opneai", "model": "gpt-4o"}}})
    assert loc == ("assistant", "model", "provider")
    assert message == (
        "assistant.model.provider 'opneai' is not one Vapi knows: did you mean 'openai'? (Vapi would answer 400)"
    )


def test_a_misspelt_tool_type_suggests_the_right_one() -> None:
    _, message = only({"assistant": {"model": {**OPENAI, "tools": [{"type": "transferCal"}]}}})
    assert (
        "assistant.model.tools[0].type 'transferCal'" in message and "did you mean 'transferCall'?" in message
    )


def test_a_missing_or_odd_discriminator() -> None:
    """Without ``provider`` (a partial override), names any member knows are accepted, typos are not."""
    assert nested_problems({"assistantOverrides": {"voice": {"chunkPlan": {"minCharacters": 20}}}}) == []
    loc, message = only({"assistantOverrides": {"voice": {"speeed": 1.1}}})
    assert loc == ("assistantOverrides", "voice", "speeed") and "did you mean 'speed'?" in message
    _, message = only({"assistant": {"voice": {"provider": 11}}})
    assert "assistant.voice.provider must be a string, got int" in message
    _, message = only({"assistant": {"transcriber": {"provider": "zzzzzzzz"}}})
    assert "use one of 11labs, assembly-ai" in message


def test_a_hook_falls_back_to_the_member_without_a_fixed_event() -> None:
    hook = {"on": "customer.speech.timeout[timeoutSeconds=10]", "do": [{"type": "say", "exct": "Hi?"}]}
    loc, message = only({"assistant": {"hooks": [hook]}})
    assert loc == ("assistant", "hooks", 0, "do", 0, "exct") and "did you mean 'exact'?" in message


# -- secrets are never echoed ------------------------------------------------------------------
def test_values_are_not_echoed() -> None:
    body = {
        "assistant": {
            "apiKey": "sk-live-secret-1",
            "firstMessage": {"token": "sk-live-secret-2"},
            "model": {**OPENAI, "maxTokens": "sk-live-secret-3"},
        }
    }
    problems = nested_problems(body)
    assert len(problems) == 3
    assert not any("sk-live" in message for _, message in problems)


# -- hostile input -----------------------------------------------------------------------------
def test_a_cycle_is_reported_once_and_does_not_raise() -> None:
    assistant: dict[str, Any] = {"model": {**OPENAI, "tools": [{"type": "handoff", "destinations": []}]}}
    destination = {"type": "assistant", "assistant": assistant}
    assistant["model"]["tools"][0]["destinations"].append(destination)
    problems = nested_problems({"assistant": assistant, "squad": {"members": [{"assistant": assistant}]}})
    assert [message for _, message in problems if "contains itself" in message] == [
        "assistant.model.tools[0].destinations[0].assistant contains itself (a cycle): a body must be a tree"
    ]


def test_very_deep_nesting_is_reported_once() -> None:
    body: dict[str, Any] = {"firstMessage": "bottom"}
    for _ in range(1000):
        body = {
            "members": [
                {
                    "assistant": {
                        "model": {
                            **OPENAI,
                            "tools": [
                                {
                                    "type": "handoff",
                                    "destinations": [{"type": "assistant", "assistant": body}],
                                }
                            ],
                        }
                    }
                }
            ]
        }
        body = body["members"][0]["assistant"]
    problems = nested_problems({"assistant": body})
    assert len(problems) == 1
    assert f"nested deeper than {MAX_DEPTH} levels" in problems[0][1]


def test_odd_keys_and_broken_objects_do_not_raise() -> None:
    loc, message = only({"assistant": {3: "x", "model": OPENAI}})
    assert loc == ("assistant", "3") and "not a string (int)" in message
    _, message = only({"assistant": {"first\x00Message\udc80": 1}})
    assert "\\x00" in message and "\\udc80" in message, "unprintable characters are escaped"
    assert "could not be checked completely" in only({"assistant": {"model": Exploding()}})[1]
    assert "could not be checked completely" in only(Exploding())[1]
    assert nested_problems([1, 2]) == []  # type: ignore[arg-type]
    assert nested_problems({"assistant": b"bytes", "customer": None}) == []


# -- the generated table -----------------------------------------------------------------------
def _generator() -> ModuleType:
    path = REPO_ROOT / "scripts" / "gen_spec_table.py"
    spec = importlib.util.spec_from_file_location("gen_spec_table", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_table_is_what_the_spec_generates() -> None:
    generator = _generator()
    committed = Path(generator.OUTPUT).read_text()
    assert generator.render(openapi_spec()) == committed, (
        "airflow_provider_vapi/spec_table.py is out of date with the spec: "
        "run `python scripts/gen_spec_table.py` and commit the result"
    )
    assert len(committed.encode()) < 100_000, "keep the table small: prune what cannot be checked"


def test_the_table_is_data_only() -> None:
    """Both validators read it; the emulator loads it as a file: it may import nothing but typing."""
    tree = ast.parse((REPO_ROOT / "airflow_provider_vapi" / "spec_table.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(node) for node in imports] == ["from typing import Final"]
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)]


def _names(expr: str) -> Iterator[str]:
    for part in re.split(r"[\[\]|]", expr):
        if part and part not in ("str", "num", "int", "bool", "obj", "any", "date"):
            yield part


def test_every_name_in_the_table_resolves() -> None:
    expressions = [*CALL_ROOTS.values(), *(t for props in SCHEMAS.values() for t in props.values())]
    expressions += [t for _, members in UNIONS.values() for t in members.values()]
    for expr in expressions:
        for name in _names(expr):
            assert (name[1:] in UNIONS) if name.startswith("~") else (name in SCHEMAS), (expr, name)
    assert set(BODIES.values()) <= set(SCHEMAS)
    assert "assistant" in SCHEMAS["CreateCallDTO"] and "customer" in SCHEMAS["CreateCallDTO"]


def test_every_schema_whitelists_exactly_the_spec_properties() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    for name, props in SCHEMAS.items():
        members = name.split("+")  # a merged schema: the properties of all its members
        assert set(props) == {p for m in members for p in schemas[m].get("properties", {})}, name


def test_free_form_objects_are_objects_whose_keys_are_not_checked() -> None:
    assert SCHEMAS["CreateStructuredOutputDTO"]["schema"] == "obj"
    assert SCHEMAS["OpenAIFunction"]["parameters"] == "obj"
    assert SCHEMAS["CreateGcpCredentialDTO"]["gcpKey"] == "obj"
    assert "JsonSchema" not in SCHEMAS
    assert messages(
        {"assistant": {"artifactPlan": {"structuredOutputs": [{"name": "n", "schema": "x"}]}}}
    ) == {
        ("assistant", "artifactPlan", "structuredOutputs", 0, "schema"): (
            "assistant.artifactPlan.structuredOutputs[0].schema must be an object, got str: fix the value "
            "(Vapi would answer 400)"
        )
    }


def test_checking_does_not_modify_the_body() -> None:
    body = {"assistant": full_assistant(), "customer": {"phone": NUMBER}}
    before = copy.deepcopy(body)
    nested_problems(body)
    assert body == before
