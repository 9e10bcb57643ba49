"""What a call awaits, when it has it, and the XCom it hands on (no I/O: Call objects as Vapi sends them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import (
    AwaitedResults,
    awaited_from,
    call_result,
    check_xcom_detail,
    outputs_by_name,
)
from airflow_provider_vapi.waiting.task import is_settled

ENDED = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SAVED = "5b0a1d2c-0000-4000-8000-000000000001"


def ended_call(messages: int = 6, analysis: dict[str, Any] | None = None, **artifact: Any) -> Call:
    body: dict[str, Any] = {
        "id": "c1",
        "status": "ended",
        "endedReason": "customer-ended-call",
        "createdAt": "2026-11-24T11:49:00Z",
        "startedAt": "2026-11-24T11:50:00Z",
        "endedAt": "2026-11-24T12:00:00Z",
        "updatedAt": "2026-11-24T12:00:00Z",
        "artifact": {"messages": [{"role": "user", "message": "hi"}] * messages, **artifact},
    }
    if analysis is not None:
        body["analysis"] = analysis
    return Call.model_validate(body)


OUTPUTS = {SAVED: {"name": "confirmed", "result": True}}
ASSISTANT = {"artifactPlan": {"structuredOutputIds": [SAVED]}}


def test_a_call_whose_assistant_has_outputs_waits_for_them_not_only_for_the_analysis() -> None:
    awaited = awaited_from(ASSISTANT)
    assert awaited.output_ids == (SAVED,) and awaited.analysis
    analysed = ended_call(analysis={"summary": "ok"})
    assert not is_settled(analysed, 60, awaited, now=ENDED + timedelta(seconds=5)), "outputs still to come"
    assert is_settled(analysed, 60, awaited, now=ENDED + timedelta(seconds=61)), "the grace period ends it"
    done = ended_call(analysis={"summary": "ok"}, structuredOutputs=OUTPUTS)
    assert is_settled(done, 60, awaited, now=ENDED)
    assert not is_settled(ended_call(structuredOutputs=OUTPUTS), 60, awaited, now=ENDED), "analysis too"


def test_outputs_alone_settle_an_assistant_without_analysis() -> None:
    plan = {"summaryPlan": {"enabled": False}, "successEvaluationPlan": {"enabled": False}}
    awaited = awaited_from({**ASSISTANT, "analysisPlan": plan})
    assert not awaited.analysis
    assert is_settled(ended_call(structuredOutputs=OUTPUTS), 60, awaited, now=ENDED)


def test_a_skipped_output_counts_as_arrived_and_a_silent_call_awaits_nothing() -> None:
    awaited = awaited_from({**ASSISTANT, "analysisPlan": {"summaryPlan": {"enabled": False},
                                                          "successEvaluationPlan": {"enabled": False}}})  # fmt: skip
    skipped = {SAVED: {"name": "confirmed", "unmetCondition": {"type": "minMessages", "min": 2}}}
    assert is_settled(ended_call(skippedStructuredOutputs=skipped), 60, awaited, now=ENDED)
    assert is_settled(ended_call(messages=1), 60, awaited, now=ENDED), "nobody spoke: nothing comes"


def test_inline_outputs_are_awaited_by_name_and_overrides_replace_the_list() -> None:
    inline = {
        "artifactPlan": {"structuredOutputs": [{"name": "callback_time", "schema": {"type": "string"}}]}
    }
    awaited = awaited_from(ASSISTANT, overrides=inline)
    assert awaited.output_ids == (SAVED,) and awaited.output_names == ("callback_time",)
    replaced = awaited_from(ASSISTANT, overrides={"artifactPlan": {"structuredOutputIds": []}})
    assert replaced.output_ids == ()
    runtime = {"9f0e": {"name": "callback_time", "result": "tomorrow"}, **OUTPUTS}
    assert awaited.arrived(ended_call(analysis={"summary": "s"}, structuredOutputs=runtime))
    assert not awaited.arrived(ended_call(analysis={"summary": "s"}, structuredOutputs=OUTPUTS))


def test_an_unknown_configuration_keeps_the_analysis_rule() -> None:
    unknown = AwaitedResults()
    assert not unknown.arrived(ended_call())
    assert unknown.arrived(ended_call(analysis={"summary": "ok"}))
    assert awaited_from({"analysisPlan": {"minMessagesThreshold": 10}}).arrived(ended_call(messages=6))


def test_a_reextraction_counts_only_results_written_since_it_asked() -> None:
    asked = ENDED + timedelta(days=3)
    awaited = AwaitedResults(analysis=False, output_ids=(SAVED,), since=asked, requested_at=asked)
    old = ended_call(structuredOutputs=OUTPUTS, structuredOutputsLastUpdatedAt="2026-11-24T12:00:05Z")
    assert not awaited.arrived(old)
    assert not is_settled(old, 300, awaited, now=asked + timedelta(seconds=10)), "grace counts from the ask"
    assert is_settled(old, 300, awaited, now=asked + timedelta(seconds=301))
    new = ended_call(
        structuredOutputs=OUTPUTS, structuredOutputsLastUpdatedAt=(asked + timedelta(seconds=2)).isoformat()
    )
    assert awaited.arrived(new)
    assert AwaitedResults.from_json(json.loads(json.dumps(awaited.to_json()))) == awaited
    skipped = {SAVED: {"name": "confirmed", "unmetCondition": {"type": "minCallDuration", "seconds": 900}}}
    assert awaited.arrived(ended_call(skippedStructuredOutputs=skipped)), (
        "a gated output is not awaited forever"
    )


def test_outputs_by_name_keeps_every_output() -> None:
    outputs = {**OUTPUTS, "x2": {"name": "confirmed", "result": False}, "x3": {"name": "score", "result": 7}}
    assert outputs_by_name(ended_call(structuredOutputs=outputs)) == {
        "confirmed": True,
        "confirmed (x2)": False,
        "score": 7,
    }


def ten_minute_call() -> Call:
    """A settled ten-minute conversation as Vapi returns it: 150 messages, a long transcript, a
    recording, costs, analysis and structured outputs."""
    messages = [
        {"role": "bot" if i % 2 else "user", "message": f"sentence number {i} " * 8, "time": 1.7e12 + i,
         "secondsFromStart": i * 4.0, "duration": 3500, "endTime": 1.7e12 + i + 3500}
        for i in range(150)
    ]  # fmt: skip
    transcript = "\n".join(f"{m['role'].upper()}: {m['message']}" for m in messages)
    return Call.model_validate(
        {
            "id": "c-10min", "orgId": "org", "type": "outboundPhoneCall", "status": "ended",
            "endedReason": "customer-ended-call", "createdAt": "2026-11-24T11:49:58Z",
            "startedAt": "2026-11-24T11:50:00Z", "endedAt": "2026-11-24T12:00:00Z",
            "updatedAt": "2026-11-24T12:00:09Z", "assistantId": "asst", "phoneNumberId": "pn",
            "customer": {"number": "+14155550123", "name": "Ann Lee", "externalId": "crm-991"},
            "assistantOverrides": {"metadata": {"crm_id": "991", "vapi_idempotency_key": "d/r/t/-1"},
                                   "variableValues": {"name": "Ann"}},
            "cost": 0.8731,
            "costBreakdown": {"transport": 0.1, "stt": 0.1, "llm": 0.3, "tts": 0.2, "vapi": 0.5,
                              "total": 0.8731, "llmPromptTokens": 40000, "llmCompletionTokens": 3000,
                              "ttsCharacters": 9000},
            "costs": [{"type": "model", "cost": 0.3, "model": {"provider": "openai", "model": "gpt-4o"}}] * 6,
            "messages": messages,
            "analysis": {"summary": "The customer confirmed the appointment and asked for a text reminder. " * 3,
                         "successEvaluation": "true"},
            "artifact": {"messages": messages, "transcript": transcript,
                         "recording": {"stereoUrl": "https://storage.vapi.ai/" + "r" * 120},
                         "structuredOutputs": {SAVED: {"name": "confirmed", "result": True},
                                               "x9": {"name": "reminder", "result": {"channel": "sms", "when": "day-before"}}},
                         "structuredOutputsLastUpdatedAt": "2026-11-24T12:00:09Z"},
        }
    )  # fmt: skip


def test_the_default_xcom_of_a_ten_minute_call_is_small_and_holds_what_it_learned() -> None:
    call = ten_minute_call()
    full = json.dumps(call_result(call, "full"))
    compact = call_result(call)
    size = len(json.dumps(compact))
    assert size <= 4096, f"compact XCom is {size} bytes"
    assert len(full) > 10 * size, "the full call is what compact leaves out"
    assert compact["structuredOutputs"] == {
        "confirmed": True,
        "reminder": {"channel": "sms", "when": "day-before"},
    }
    assert compact["analysis"]["successEvaluation"] == "true"
    assert compact["outcome"] == "completed" and compact["durationSeconds"] == 600.0
    assert compact["customer"] == {"number": "+14155550123", "name": "Ann Lee", "externalId": "crm-991"}
    assert compact["metadata"]["crm_id"] == "991"
    assert compact["dashboardUrl"].endswith("/c-10min")
    assert "transcript" not in compact and "messages" not in compact and "artifact" not in compact
    with_transcript = call_result(call, "transcript")
    assert with_transcript["transcript"] == call.transcript
    assert json.loads(full)["artifact"]["messages"] == call.artifact["messages"]  # type: ignore[index]


def test_a_misspelt_xcom_detail_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'compact'.*'transcript'.*'full'"):
        check_xcom_detail("compat")
