"""The emulator's request schemas are the spec's: a moved spec fails here, not silently in users' tests.

The table is the one the client reads too (``airflow_provider_vapi/spec_table.py``, generated
by ``scripts/gen_spec_table.py``; ``tests/test_nested_validation.py`` checks it is what the spec
generates). The emulator loads it as data and validates with its own code (:mod:`.schema_check`).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from airflow_provider_vapi.emulator import schema_check
from tests.shared_data import REPO_ROOT, openapi_spec


def test_the_emulator_reads_the_generated_table() -> None:
    from airflow_provider_vapi import spec_table

    assert schema_check.SCHEMAS is spec_table.SCHEMAS and schema_check.BODIES is spec_table.BODIES
    assert schema_check.SCHEMAS["CreateCallDTO"]["assistant"] == "CreateAssistantDTO"


def test_every_route_checks_the_body_the_spec_names() -> None:
    paths = openapi_spec()["paths"]
    for route, schema in schema_check.BODIES.items():
        method, path = route.split(" ", 1)
        ref = paths[path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[-1] == schema, route
    assert schema_check.BODIES["POST /call"] == "CreateCallDTO"


def test_the_tables_cover_what_a_call_can_carry() -> None:
    objects, unions = schema_check.SCHEMAS, schema_check.UNIONS
    assert objects["CreateCallDTO"]["assistant"] == "CreateAssistantDTO"
    assert objects["CreateCallDTO"]["customers"] == "[CreateCustomerDTO]"
    assert objects["SquadMemberDTO"]["assistant"] == "CreateAssistantDTO"
    assert objects["CreateAssistantDTO"]["firstMessage"] == "str"
    prop, branches = unions[objects["CreateAssistantDTO"]["model"][1:]]
    assert (prop, branches["openai"]) == ("provider", "OpenAIModel")
    credentials = unions[objects["CreateAssistantDTO"]["credentials"][2:-1]]
    assert credentials[0] == "provider" and "11labs" in credentials[1]


def test_json_schema_keywords_pass_where_the_spec_takes_a_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "additionalProperties": False}
    body = {"name": "n", "schema": schema, "model": {"provider": "openai", "model": "gpt-4o"}}
    assert schema_check.object_errors(body, "CreateStructuredOutputDTO") == []
    assert schema_check.object_errors({"name": "n", "schema": "s"}, "CreateStructuredOutputDTO") == [
        "schema must be an object"
    ]


def test_the_emulator_starts_without_the_client_and_without_airflow() -> None:
    """It imports the table (data) and no more: the client's models, validator and Airflow stay unimported."""
    script = textwrap.dedent(
        """
        import sys
        import airflow_provider_vapi.emulator.app, airflow_provider_vapi.emulator.validation
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "airflow" or m.startswith(
            ("airflow_provider_vapi.models", "airflow_provider_vapi.hook", "airflow_provider_vapi.placing")))
        print(loaded)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
