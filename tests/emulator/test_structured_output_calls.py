"""Structured outputs on calls (``artifact.structuredOutputs``, ``skippedStructuredOutputs``) and
``POST /structured-output/run``, over real HTTP, every answer checked against the spec."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from tests.emulator.conftest import create, error, get_call, stable, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "confirmed": {"type": "boolean"},
        "outcome": {"type": "string", "enum": ["confirmed", "rescheduled", "cancelled"]},
        "appointmentDate": {"type": "string", "format": "date"},
        "partySize": {"type": "integer"},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["confirmed", "outcome", "appointmentDate", "partySize"],
}
TALKS = "+15550001234"  # a completed conversation
NO_CONVERSATION = ("+15550100002", "+15550100003", "+15550100005")  # no answer, voicemail, start error
GATE = {"type": "minMessages", "count": 2}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def satisfies(value: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(value)


def validate_preview(body: dict[str, Any]) -> None:
    """The spec's 200 schema of a preview is ``allOf`` ``StructuredOutputRunPreviewResponse`` (only
    ``skipped``) and ``additionalProperties: StructuredOutputRunResult``: taken literally, no key
    can satisfy both (``skipped`` would have to be a run result too), so each part is checked
    against its own schema."""
    for key, value in body.items():
        if key == "skipped":
            validate({"skipped": value}, "StructuredOutputRunPreviewResponse")
        else:
            validate(value, "StructuredOutputRunResult")


def new_output(http, name: str = "appointment", schema: dict | None = None, **fields) -> dict:
    answer = http.post("/structured-output", json={"name": name, "schema": schema or SCHEMA, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def with_outputs(ids: Sequence[str] = (), inline: Sequence[dict] = ()) -> dict:
    """``assistantOverrides`` asking for these outputs."""
    return {"artifactPlan": {"structuredOutputIds": list(ids), "structuredOutputs": list(inline)}}


def settled(emu, http, number: str = TALKS) -> dict:
    """An ended call with nothing pending (its analysis, if any, arrived)."""
    call = create(http, emu.call_body(number))
    return emu.wait_for(call["id"], analysis=number == TALKS, timeout=30)


def run(http, body: dict, status: int = 200) -> Any:
    answer = http.post("/structured-output/run", json=body)
    assert answer.status_code == status, answer.text
    return answer.json()


def wait_key(emu, call_id: str, key: str) -> dict:
    return emu.wait_for(
        call_id, lambda c: key in c.get("artifact", {}).get("structuredOutputs", {}), timeout=30
    )


# -- at the end of a call ---------------------------------------------------------------------------


def test_an_assistant_s_saved_outputs_arrive_after_the_delay(emu, http):
    emu.configure(analysis_delay=1, structured_output_delay=4)
    outcome, summary = new_output(http), new_output(http, "summary", {"type": "string"})
    assistant = http.post(
        "/assistant",
        json={
            "name": "with outputs",
            "artifactPlan": {"structuredOutputIds": [outcome["id"], summary["id"]]},
        },
    ).json()
    call = create(http, {**emu.call_body(TALKS), "assistantId": assistant["id"]})
    emu.wait_for(call["id"], structured_outputs=True, timeout=30)
    done = get_call(http, call["id"])
    artifact = done["artifact"]
    assert set(artifact["structuredOutputs"]) == {outcome["id"], summary["id"]}
    for output in (outcome, summary):
        entry = artifact["structuredOutputs"][output["id"]]
        assert set(entry) == {"name", "result"} and entry["name"] == output["name"]
        satisfies(entry["result"], output["schema"])
    lag = timedelta(milliseconds=int(4 * 1000 / emu.config()["speed"]))
    assert ts(artifact["structuredOutputsLastUpdatedAt"]) - ts(done["endedAt"]) == lag
    assert done["updatedAt"] == artifact["structuredOutputsLastUpdatedAt"]
    assert "skippedStructuredOutputs" not in artifact and "analysis" in done
    [cost] = [c for c in done["costs"] if c.get("analysisType") == "structuredOutput"]
    assert {b["structuredOutputId"] for b in cost["structuredOutputBreakdown"]} == set(
        artifact["structuredOutputs"]
    )
    assert done["costBreakdown"]["analysisCostBreakdown"]["structuredOutput"] == cost["cost"] > 0
    assert done["cost"] == done["costBreakdown"]["total"]


def test_results_never_arrive_before_the_delay(emu, http):
    emu.configure(analysis_delay=0, structured_output_delay=3600)
    output = new_output(http)
    call = create(http, emu.call_body(TALKS, assistantOverrides=with_outputs([output["id"]])))
    analysed = emu.wait_for(call["id"], analysis=True, timeout=30)
    assert "structuredOutputs" not in analysed["artifact"]
    assert "structuredOutputsLastUpdatedAt" not in analysed["artifact"]


def test_inline_outputs_get_a_runtime_id_per_call(emu, http):
    saved = new_output(http)
    inline = [
        {"name": "party size", "schema": {"type": "integer"}},
        {"name": "said", "type": "regex", "regex": "/(bye)/i", "schema": {"type": "string"}},
    ]
    overrides = with_outputs([saved["id"]], inline)
    calls = [create(http, emu.call_body(n, assistantOverrides=overrides)) for n in (TALKS, "+15550004321")]
    runtime_ids: list[set[str]] = []
    for call in calls:
        outputs = emu.wait_for(call["id"], structured_outputs=True, timeout=30)["artifact"][
            "structuredOutputs"
        ]
        validate(get_call(http, call["id"]), "Call")
        runtime = set(outputs) - {saved["id"]}
        assert saved["id"] in outputs and len(runtime) == 2
        assert all(uuid.UUID(key).version == 4 for key in runtime)
        by_name = {outputs[key]["name"]: outputs[key]["result"] for key in runtime}
        satisfies(by_name["party size"], {"type": "integer"})
        assert by_name["said"] == "bye"  # the regex found it in the transcript ("Thanks, bye.")
        runtime_ids.append(runtime)
    assert not runtime_ids[0] & runtime_ids[1]


@pytest.mark.parametrize("number", NO_CONVERSATION)
def test_calls_without_a_conversation_skip_their_outputs_when_they_end(emu, http, number):
    saved = new_output(http)
    overrides = with_outputs([saved["id"]], [{"name": "inline", "schema": {"type": "boolean"}}])
    call = create(http, emu.call_body(number, assistantOverrides=overrides))
    emu.wait_for(call["id"], timeout=30)
    ended = get_call(http, call["id"])
    artifact = ended["artifact"]
    skipped = artifact["skippedStructuredOutputs"]
    assert saved["id"] in skipped and len(skipped) == 2
    assert {entry["name"] for entry in skipped.values()} == {"appointment", "inline"}
    assert all(entry["unmetCondition"] == GATE for entry in skipped.values())
    assert "structuredOutputs" not in artifact and "structuredOutputsLastUpdatedAt" not in artifact
    assert ended["updatedAt"] == ended["endedAt"]  # written when it ended


def test_overrides_replace_the_assistant_s_output_ids(emu, http):
    first, second = new_output(http, "first"), new_output(http, "second", {"type": "boolean"})
    assistant = http.post(
        "/assistant", json={"name": "first only", "artifactPlan": {"structuredOutputIds": [first["id"]]}}
    ).json()
    base = {**emu.call_body(TALKS), "assistantId": assistant["id"]}
    replaced = create(http, {**base, "assistantOverrides": with_outputs([second["id"]])})
    batch = create(
        http,
        {
            **{k: v for k, v in base.items() if k != "customer"},
            "customers": [
                {"number": "+15550002222", "assistantOverrides": with_outputs([second["id"]])},
                {"number": "+15550003333"},
            ],
        },
    )
    expected = [
        (replaced["id"], second),
        *zip([c["id"] for c in batch["results"]], [second, first], strict=True),
    ]
    for call_id, output in expected:
        outputs = emu.wait_for(call_id, structured_outputs=True, timeout=30)["artifact"]["structuredOutputs"]
        assert list(outputs) == [output["id"]]


def test_a_create_naming_an_unknown_output_is_refused_before_any_call(emu, http):
    unknown = str(uuid.uuid4())
    message = f"Couldn't Get Structured Output. `structuredOutputId` {unknown} Does Not Exist."
    body = emu.call_body(TALKS, assistantOverrides=with_outputs([unknown]))
    assert error(http.post("/call", json=body)) == message
    batch = {k: v for k, v in emu.call_body().items() if k != "customer"}
    batch["customers"] = [
        {"number": TALKS},
        {"number": "+15550002222", "assistantOverrides": with_outputs([unknown])},
    ]
    assert error(http.post("/call", json=batch)) == message
    gone = new_output(http)
    http.delete(f"/structured-output/{gone['id']}").raise_for_status()
    assistant = http.post("/assistant", json={"artifactPlan": {"structuredOutputIds": [gone["id"]]}}).json()
    refused = http.post("/call", json={**emu.call_body(TALKS), "assistantId": assistant["id"]})
    assert gone["id"] in error(refused)
    inline = emu.call_body(TALKS, assistantOverrides=with_outputs([], [{"name": "no schema"}]))
    assert error(http.post("/call", json=inline)) == [
        "assistantOverrides.artifactPlan.structuredOutputs.0.schema must be an object"
    ]
    assert emu.calls() == []


def test_an_output_s_own_conditions_are_honoured(emu, http):
    conditions = {
        "enough messages": ([{"type": "minMessages", "count": 2}], True),
        "too few messages": ([{"type": "minMessages", "count": 100}], False),
        "voicemail only": ([{"type": "endedReason", "operator": "oneOf", "values": ["voicemail"]}], False),
        "not voicemail": ([{"type": "endedReason", "operator": "notOneOf", "values": ["voicemail"]}], True),
        "any length": ([{"type": "minCallDuration", "seconds": 0}], True),
        "too short": ([{"type": "minCallDuration", "seconds": 86400}], False),
    }
    ids = {
        name: new_output(http, name, {"type": "string"}, conditions=c)["id"]
        for name, (c, _) in conditions.items()
    }
    call = create(http, emu.call_body(TALKS, assistantOverrides=with_outputs(list(ids.values()))))
    emu.wait_for(call["id"], structured_outputs=True, timeout=30)
    artifact = get_call(http, call["id"])["artifact"]
    for name, (condition, passes) in conditions.items():
        if passes:
            assert artifact["structuredOutputs"][ids[name]]["name"] == name
        else:
            assert artifact["skippedStructuredOutputs"][ids[name]] == {
                "name": name,
                "unmetCondition": condition[0],
            }


def test_results_are_deterministic(emu, http):
    output = new_output(http)
    overrides = with_outputs([output["id"]])
    calls = [create(http, emu.call_body(TALKS, assistantOverrides=overrides)) for _ in range(2)]
    results = [
        emu.wait_for(c["id"], structured_outputs=True, timeout=30)["artifact"]["structuredOutputs"][
            output["id"]
        ]
        for c in calls
    ]
    assert results[0] == results[1]  # the same number (the seed) and the same output
    body = {"callIds": [calls[0]["id"]], "structuredOutputId": output["id"], "previewEnabled": True}
    assert run(http, body) == run(http, body) == {output["id"]: results[0]}


# -- POST /structured-output/run --------------------------------------------------------------------


def test_a_preview_answers_at_once_and_writes_nothing(emu, http):
    saved = new_output(http)
    call = settled(emu, http)
    silent = settled(emu, http, "+15550100005")
    before = [stable(emu.call(call["id"])), stable(emu.call(silent["id"]))]
    answer = run(http, {"callIds": [call["id"]], "structuredOutputId": saved["id"], "previewEnabled": True})
    validate_preview(answer)
    assert list(answer) == [saved["id"]] and answer[saved["id"]]["name"] == "appointment"
    satisfies(answer[saved["id"]]["result"], SCHEMA)
    inline = {"name": "inline", "schema": {"type": "number"}}
    answer = run(http, {"callIds": [call["id"]], "structuredOutput": inline, "previewEnabled": True})
    validate_preview(answer)
    [key] = answer
    assert uuid.UUID(key).version == 4 and key != saved["id"] and answer[key]["name"] == "inline"
    answer = run(http, {"callIds": [silent["id"]], "structuredOutputId": saved["id"], "previewEnabled": True})
    validate_preview(answer)
    assert answer == {"skipped": {saved["id"]: {"name": "appointment", "unmetCondition": GATE}}}
    assert [stable(emu.call(call["id"])), stable(emu.call(silent["id"]))] == before
    two = {"callIds": [call["id"], silent["id"]], "structuredOutputId": saved["id"], "previewEnabled": True}
    assert "Exactly 1 Call Id" in error(http.post("/structured-output/run", json=two))


def test_a_run_writes_its_result_after_the_delay_and_the_latest_run_wins(emu, http):
    output = new_output(http)
    call = settled(emu, http)
    before = stable(emu.call(call["id"]))
    body = {"callIds": [call["id"]], "structuredOutputId": output["id"]}
    emu.configure(structured_output_delay=3600)
    answer = run(http, {"callIds": [call["id"]], "structuredOutput": {"name": "never", "schema": SCHEMA}})
    validate(answer, "StructuredOutputRerunResponse")
    assert uuid.UUID(answer["workflowId"]) and answer["message"]
    assert stable(emu.call(call["id"])) == before  # an hour (at speed 1) to go
    emu.configure(structured_output_delay=10)
    validate(run(http, body), "StructuredOutputRerunResponse")  # due in 10 s (at speed 1)...
    http.patch(f"/structured-output/{output['id']}", json={"schema": {"type": "integer"}}).raise_for_status()
    emu.configure(structured_output_delay=0)
    run(http, body)  # ...but this later run replaces it
    ran = wait_key(emu, call["id"], output["id"])
    satisfies(ran["artifact"]["structuredOutputs"][output["id"]]["result"], {"type": "integer"})
    emu.configure(structured_output_delay=10)
    now = datetime.now(UTC)
    start = now.replace(microsecond=now.microsecond // 1000 * 1000)
    probe = run(
        http, {"callIds": [call["id"]], "structuredOutput": {"name": "probe", "schema": {"type": "boolean"}}}
    )
    assert probe["workflowId"] != answer["workflowId"]
    done = emu.wait_for(
        call["id"], lambda c: len(c["artifact"].get("structuredOutputs", {})) == 2, timeout=30
    )
    validate(get_call(http, call["id"]), "Call")
    outputs = done["artifact"]["structuredOutputs"]
    [probe_key] = set(outputs) - {output["id"]}
    assert outputs[probe_key]["name"] == "probe" and uuid.UUID(probe_key).version == 4
    satisfies(outputs[output["id"]]["result"], {"type": "integer"})  # the 10 s run never landed
    last = ts(done["artifact"]["structuredOutputsLastUpdatedAt"])
    assert done["updatedAt"] == done["artifact"]["structuredOutputsLastUpdatedAt"]
    assert last >= start + timedelta(milliseconds=int(10 * 1000 / emu.config()["speed"]))
    assert last > ts(ran["artifact"]["structuredOutputsLastUpdatedAt"]) > ts(before["updatedAt"])
    assert done["costs"] == before["costs"]  # runs are not billed on the call


def test_a_run_takes_up_to_100_calls_and_skips_those_without_a_conversation(emu, http):
    output = new_output(http)
    batch = {k: v for k, v in emu.call_body().items() if k != "customer"}
    batch["customers"] = [{"number": f"+1555{i:03d}0005"} for i in range(101)]  # start errors: ended at once
    ids = [c["id"] for c in create(http, batch)["results"]]
    too_many = http.post("/structured-output/run", json={"callIds": ids, "structuredOutputId": output["id"]})
    assert error(too_many) == ["callIds must contain no more than 100 elements"]
    emu.configure(structured_output_delay=0)
    validate(
        run(http, {"callIds": ids[:100], "structuredOutputId": output["id"]}), "StructuredOutputRerunResponse"
    )
    for call_id in ids[:100]:
        ran = emu.wait_for(call_id, lambda c: "skippedStructuredOutputs" in c["artifact"], timeout=30)
        assert ran["artifact"]["skippedStructuredOutputs"] == {
            output["id"]: {"name": "appointment", "unmetCondition": GATE}
        }
        assert "structuredOutputs" not in ran["artifact"]
    validate(get_call(http, ids[0]), "Call")
    assert "skippedStructuredOutputs" not in emu.call(ids[100])["artifact"]


def test_run_refusals_name_what_is_wrong(emu, http):
    output = new_output(http)
    call = settled(emu, http, "+15550100005")
    live = create(http, emu.call_body("+15550100006"))  # stays in progress
    unknown_calls = [str(uuid.uuid4()), "not-a-call"]
    unknown_output = str(uuid.uuid4())
    saved = {"structuredOutputId": output["id"]}
    cases: list[tuple[Any, Any]] = [
        ({}, ["callIds must be an array"]),
        ({"callIds": [], **saved}, ["callIds must contain at least 1 elements"]),
        ({"callIds": [5], **saved}, ["each value in callIds must be a string"]),
        (
            {"callIds": [call["id"]], "previewEnabled": "yes", **saved},
            ["previewEnabled must be a boolean value"],
        ),
        (
            {"callIds": [call["id"]], "structuredOutput": {"schema": SCHEMA}},
            ["structuredOutput.name must be a string"],
        ),
        ([call["id"]], ["body must be an object"]),
        (
            {"callIds": [call["id"]], "structuredOutput": {"name": "n", "schema": SCHEMA}, **saved},
            "Couldn't Run Structured Output. Need Either `structuredOutputId` Or `structuredOutput`, Not Both.",
        ),
        (
            {"callIds": [call["id"]]},
            "Couldn't Run Structured Output. Need Either `structuredOutputId` Or `structuredOutput`.",
        ),
        (
            {"callIds": [call["id"]], "structuredOutputId": unknown_output},
            f"Couldn't Get Structured Output. `structuredOutputId` {unknown_output} Does Not Exist.",
        ),
        (
            {"callIds": [call["id"], *unknown_calls], **saved},
            f"Couldn't Run Structured Output. `callIds` {', '.join(unknown_calls)} Do Not Exist.",
        ),
        (
            {"callIds": [call["id"], live["id"]], **saved},
            f"Couldn't Run Structured Output. Calls {live['id']} Have Not Ended Yet.",
        ),
    ]
    before = emu.call(call["id"])
    for body, message in cases:
        assert error(http.post("/structured-output/run", json=body)) == message, body
    assert emu.call(call["id"]) == before


def test_a_run_is_in_the_request_log(emu, http):
    output = new_output(http)
    call = settled(emu, http, "+15550100005")
    emu.clear_requests()
    emu.run_structured_output([call["id"]], output["id"], preview=True)
    [entry] = emu.requests(path="/structured-output/run")
    assert (entry["method"], entry["status"]) == ("POST", 200)
    assert entry["body"] == {
        "callIds": [call["id"]],
        "previewEnabled": True,
        "structuredOutputId": output["id"],
    }
