"""The emulator's request schemas are the spec's: a moved spec fails here, not silently in users' tests."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_vapi.emulator import spec_schemas, spec_table_gen
from tests.shared_data import openapi_spec


def test_the_carried_table_is_what_the_generator_makes_of_the_spec() -> None:
    objects, unions = spec_table_gen.build(openapi_spec())
    assert objects == spec_schemas.OBJECTS
    assert unions == spec_schemas.UNIONS
    assert Path(spec_schemas.__file__).read_text() == spec_table_gen.render(objects, unions)


def test_every_request_dto_whitelists_exactly_the_schema_properties() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    for name, props in spec_schemas.OBJECTS.items():
        assert set(props) == set(schemas[name].get("properties", {})), name


def test_the_tables_cover_what_a_call_can_carry() -> None:
    objects, unions = spec_schemas.OBJECTS, spec_schemas.UNIONS
    assert objects["CreateCallDTO"]["assistant"] == "#CreateAssistantDTO"
    assert objects["CreateCallDTO"]["customers"] == "[]#CreateCustomerDTO"
    assert objects["SquadMemberDTO"]["assistant"] == "#CreateAssistantDTO"
    assert objects["CreateAssistantDTO"]["firstMessage"] == "string"
    model = objects["CreateAssistantDTO"]["model"]
    prop, branches = unions[model[1:]]
    assert (prop, branches["openai"]) == ("provider", "OpenAIModel")
    credentials = unions[objects["CreateAssistantDTO"]["credentials"][3:]]
    assert credentials[0] == "provider" and "11labs" in credentials[1]
