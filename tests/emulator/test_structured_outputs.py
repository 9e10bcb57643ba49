"""``/structured-output``: saved outputs (CRUD, list filters, pagination), their persistence and
reset, the ``structuredOutputDelaySeconds`` setting, and the handle's helpers. What outputs do on
calls and ``POST /structured-output/run`` are in ``test_structured_output_calls.py``."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from airflow_provider_vapi.emulator.cli import parser
from airflow_provider_vapi.emulator.constants import DEFAULT_STRUCTURED_OUTPUT_DELAY_S
from airflow_provider_vapi.emulator.server import EmulatorProcess, EmulatorServer, build_runtime
from tests.emulator.conftest import error, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "confirmed": {"type": "boolean"},
        "outcome": {"type": "string", "enum": ["confirmed", "rescheduled", "cancelled"]},
    },
    "required": ["confirmed", "outcome"],
}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def new_output(http, name: str = "appointment", schema: dict | None = None, **fields) -> dict:
    answer = http.post("/structured-output", json={"name": name, "schema": schema or SCHEMA, **fields})
    assert answer.status_code == 201, answer.text
    validate(answer.json(), "StructuredOutput")
    return answer.json()


def listed(http, **params) -> dict:
    answer = http.get("/structured-output", params=params)
    assert answer.status_code == 200, answer.text
    validate(answer.json(), "StructuredOutputPaginatedResponse")
    return answer.json()


def test_create_get_update_delete_round_trip(emu, http):
    created = new_output(http, description="What the customer decided.", assistantIds=[emu.assistant_id])
    assert uuid.UUID(created["id"]).version == 4
    assert created["type"] == "ai" and created["name"] == "appointment" and created["schema"] == SCHEMA
    assert created["description"] == "What the customer decided."
    assert created["assistantIds"] == [emu.assistant_id]
    assert created["createdAt"] == created["updatedAt"]

    fetched = http.get(f"/structured-output/{created['id']}")
    assert fetched.status_code == 200 and fetched.json() == created
    validate(fetched.json(), "StructuredOutput")
    assert [o["id"] for o in listed(http)["results"]] == [created["id"]]

    conditions = [{"type": "minMessages", "count": 4}]
    patched = http.patch(
        f"/structured-output/{created['id']}",
        params={"schemaOverride": "anything"},  # the spec marks it required: accepted, not needed
        json={"name": "renamed", "schema": {"type": "string"}, "conditions": conditions},
    )
    assert patched.status_code == 200, patched.text
    validate(patched.json(), "StructuredOutput")
    assert patched.json()["name"] == "renamed" and patched.json()["schema"] == {"type": "string"}
    assert patched.json()["conditions"] == conditions
    assert ts(patched.json()["updatedAt"]) > ts(created["updatedAt"])
    assert patched.json()["createdAt"] == created["createdAt"]

    cleared = http.patch(f"/structured-output/{created['id']}", json={"conditions": None})
    assert cleared.status_code == 200 and "conditions" not in cleared.json()
    assert ts(cleared.json()["updatedAt"]) > ts(patched.json()["updatedAt"])
    assert http.get(f"/structured-output/{created['id']}").json() == cleared.json()

    deleted = http.delete(f"/structured-output/{created['id']}")
    assert deleted.status_code == 200 and deleted.json() == cleared.json()
    validate(deleted.json(), "StructuredOutput")
    assert error(http.get(f"/structured-output/{created['id']}"), 404) == "Structured Output not found"
    assert error(http.delete(f"/structured-output/{created['id']}"), 404) == "Structured Output not found"
    assert listed(http)["results"] == []


def test_a_regex_output_with_every_optional_field_is_echoed(emu, http):
    body = {
        "type": "regex",
        "regex": "/(\\d+) people/i",
        "model": {"provider": "openai", "model": "gpt-4.1"},
        "compliancePlan": {"forceStoreOnHipaaEnabled": True},
        "conditions": [
            {"type": "minCallDuration", "seconds": 0},
            {"type": "endedReason", "operator": "notOneOf", "values": ["voicemail"]},
        ],
        "workflowIds": [],
    }
    created = new_output(http, "party size", {"type": "integer"}, **body)
    assert {k: created[k] for k in body} == body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ["name must be a string", "schema must be an object"]),
        ({"name": "", "schema": SCHEMA}, ["name must be longer than or equal to 1 characters"]),
        ({"name": "x" * 41, "schema": SCHEMA}, ["name must be shorter than or equal to 40 characters"]),
        ({"name": "n", "schema": SCHEMA, "extra": 1}, ["property extra should not exist"]),
        ({"name": 5, "schema": SCHEMA}, ["name must be a string"]),
        (
            {"name": "n", "schema": {"type": "date"}},
            [
                "schema.type must be one of the following values: string, number, integer, boolean, array, object"
            ],
        ),
        (
            {"name": "n", "schema": {"type": "object", "properties": {"a": {}}}},
            [
                "schema.properties.a.type must be one of the following values: "
                "string, number, integer, boolean, array, object"
            ],
        ),
        (
            {"name": "n", "schema": SCHEMA, "type": "llm"},
            ["type must be one of the following values: ai, regex"],
        ),
        (
            {"name": "n", "schema": SCHEMA, "conditions": [{"type": "minTurns"}]},
            [
                "conditions.0.type must be one of the following values: "
                "endedReason, minCallDuration, minMessages"
            ],
        ),
        (
            {"name": "n", "schema": SCHEMA, "conditions": [{"type": "minMessages", "count": -1}]},
            ["conditions.0.count must not be less than 0"],
        ),
        (
            {"name": "n", "schema": SCHEMA, "conditions": [{"type": "endedReason", "operator": "is"}]},
            [
                "conditions.0.values must be an array",
                "conditions.0.operator must be one of the following values: oneOf, notOneOf",
            ],
        ),
        ([{"name": "n"}], ["body must be an object"]),
    ],
)
def test_invalid_creates_are_refused_naming_the_field(emu, http, body, expected):
    assert error(http.post("/structured-output", json=body)) == expected
    assert listed(http)["results"] == []


def test_unknown_and_malformed_ids_and_bad_updates(emu, http):
    created = new_output(http)
    unknown = str(uuid.uuid4())
    for method in ("GET", "DELETE"):
        assert (
            error(http.request(method, f"/structured-output/{unknown}"), 404) == "Structured Output not found"
        )
        assert (
            error(http.request(method, "/structured-output/nope")) == "Validation failed (uuid is expected)"
        )
    assert error(http.patch(f"/structured-output/{unknown}", json={"name": "x"}), 404)
    bad = http.patch(f"/structured-output/{created['id']}", json={"name": "", "schema": {"type": "x"}})
    assert error(bad) == [
        "name must be longer than or equal to 1 characters",
        "schema.type must be one of the following values: string, number, integer, boolean, array, object",
    ]
    assert error(http.patch(f"/structured-output/{created['id']}", json=[1])) == ["body must be an object"]
    assert http.get(f"/structured-output/{created['id']}").json() == created  # nothing changed


def test_the_routes_need_the_api_key(emu):
    with emu.client(headers={"Authorization": "Bearer wrong"}) as http:
        assert error(http.get("/structured-output"), 401).startswith("Invalid Key")
        assert error(http.post("/structured-output", json={"name": "n", "schema": SCHEMA}), 401)
        assert error(http.post("/structured-output/run", json={"callIds": ["x"]}), 401)
    assert emu.structured_outputs() == []


def test_list_filters_sorting_and_pages(emu, http):
    first, second, third = (new_output(http, f"output {i}") for i in range(3))
    everything = listed(http)
    assert [o["id"] for o in everything["results"]] == [third["id"], second["id"], first["id"]]
    assert everything["metadata"] == {
        "itemsPerPage": 100,
        "totalItems": 3,
        "currentPage": 1,
        "totalPages": 1,
        "hasNextPage": False,
        "sortOrder": "DESC",
    }
    page1, page2 = (
        listed(http, limit="2", sortOrder="ASC"),
        listed(http, limit="2", page="2", sortOrder="ASC"),
    )
    assert [o["id"] for o in page1["results"]] == [first["id"], second["id"]]
    assert page1["metadata"]["hasNextPage"] is True and page1["metadata"]["totalPages"] == 2
    assert [o["id"] for o in page2["results"]] == [third["id"]] and page2["metadata"]["hasNextPage"] is False
    assert listed(http, page="3", limit="2")["results"] == []
    assert [o["id"] for o in listed(http, name="output 1")["results"]] == [second["id"]]
    assert [o["id"] for o in listed(http, id=third["id"])["results"]] == [third["id"]]
    assert {o["id"] for o in listed(http, createdAtGt=first["createdAt"])["results"]} <= {
        second["id"],
        third["id"],
    }
    assert listed(http, createdAtLt="2000-01-01T00:00:00Z")["results"] == []
    assert listed(http, limit="0")["metadata"]["totalPages"] == 0
    assert len(listed(http, sortBy="createdAt")["results"]) == 3


def test_invalid_list_queries_are_refused(emu, http):
    answer = http.get(
        "/structured-output",
        params={"page": "0", "sortOrder": "UP", "sortBy": "name", "limit": "5000", "assistantId": "x"},
    )
    assert error(answer) == [
        "page must not be less than 1",
        "sortOrder must be one of the following values: ASC, DESC",
        "sortBy must be one of the following values: createdAt, duration, cost",
        "limit must not be greater than 1000",
        "property assistantId should not exist",
    ]
    assert error(http.get("/structured-output", params={"page": "two"})) == [
        "page must be a number conforming to the specified constraints"
    ]
    # the other list routes take no paging parameters
    assert error(http.get("/assistant", params={"page": "1"})) == ["property page should not exist"]


def test_reset_forgets_saved_outputs(emu, http):
    new_output(http)
    emu.reset()
    assert emu.structured_outputs() == []


def test_saved_outputs_and_pending_runs_survive_a_restart_and_reset_clears_them(tmp_path):
    state = tmp_path / "vapi.sqlite"
    first = EmulatorServer(state_file=state, structured_output_delay=10)  # 0.5 s at speed 20
    emu = first.start()
    try:
        output = emu.create_structured_output("kept", SCHEMA)
        call = emu.create_call("+15550100005")  # a start error: ended at once, no conversation
        emu.run_structured_output([call["id"]], output["id"])
    finally:
        first.stop()
    second = EmulatorServer(state_file=state)
    emu = second.start()
    try:
        assert emu.structured_outputs() == [output]
        ran = emu.wait_for(call["id"], lambda c: "skippedStructuredOutputs" in c["artifact"])
        assert ran["artifact"]["skippedStructuredOutputs"][output["id"]]["name"] == "kept"
        emu.reset()
    finally:
        second.stop()
    with EmulatorServer(state_file=state) as emu:
        assert emu.structured_outputs() == [] and emu.calls() == []


def test_the_delay_setting_through_the_admin_api_the_cli_and_the_handle(emu, http):
    assert emu.config()["structuredOutputDelaySeconds"] == DEFAULT_STRUCTURED_OUTPUT_DELAY_S
    assert emu.configure(structured_output_delay=7.5)["structuredOutputDelaySeconds"] == 7.5
    refused = httpx.patch(
        f"{emu.url}/_emulator/config", headers=emu.headers, json={"structuredOutputDelaySeconds": -1}
    )
    assert refused.status_code == 400 and "structured output delay must be >= 0" in refused.text
    emu.reset()
    assert emu.config()["structuredOutputDelaySeconds"] == DEFAULT_STRUCTURED_OUTPUT_DELAY_S
    assert parser().parse_args(["--structured-output-delay", "2"]).structured_output_delay == 2.0
    assert parser().parse_args([]).structured_output_delay == DEFAULT_STRUCTURED_OUTPUT_DELAY_S
    runtime = build_runtime(structured_output_delay=4.0)
    assert runtime.engine.config.to_wire()["structuredOutputDelaySeconds"] == 4.0
    runtime.engine.close()
    args = EmulatorProcess(structured_output_delay=1.5).args
    assert args[args.index("--structured-output-delay") + 1] == "1.5"


def test_the_handle_helpers_speak_the_public_api(emu):
    created = emu.create_structured_output("helper", SCHEMA, description="d")
    assert created["description"] == "d"
    assert emu.structured_outputs() == [created]
    paths = [(r["method"], r["path"]) for r in emu.requests(path="/structured-output*")]
    assert paths == [("POST", "/structured-output"), ("GET", "/structured-output")]
