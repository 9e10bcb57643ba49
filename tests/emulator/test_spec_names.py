"""The emulator's whitelists are the spec's: a moved spec fails here, not silently in users' tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_vapi.emulator import spec_names
from tests.shared_data import openapi_spec

SOURCE = Path(spec_names.__file__).read_text()
# "# SchemaName" comment lines name the schema of the table that follows them.
TABLES = re.findall(r"^# (\w+)[^\n]*\n([A-Z_]+): frozenset", SOURCE, re.M)


def test_every_table_names_its_schema() -> None:
    names = {table for _, table in TABLES}
    assert names == {n for n in dir(spec_names) if n.endswith("_KEYS")}


@pytest.mark.parametrize(("schema", "table"), TABLES, ids=[t for _, t in TABLES])
def test_whitelist_equals_the_schema_properties(schema: str, table: str) -> None:
    properties = set(openapi_spec()["components"]["schemas"][schema].get("properties", {}))
    assert getattr(spec_names, table) == properties
