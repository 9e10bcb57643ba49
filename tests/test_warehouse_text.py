"""Text a database cannot store, and bad input refused before the database is reached, on a real
SQLite file and a real PostgreSQL server (the ``warehouse`` fixture runs each test on both).

NUL characters (U+0000) reach calls as Vapi records them (a customer's name typed into a CRM, a
transcript, a structured output, a metadata key): PostgreSQL refuses them in ``TEXT`` and ``JSONB``,
so one such call used to block every load of its table. They are loaded with the NUL removed, on
both databases alike; unpaired surrogates (a hand-edited file) become U+FFFD.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, BaseHook

from airflow_provider_vapi.exceptions import VapiInvalidRequestError
from airflow_provider_vapi.landing.rows import COLUMN_NAMES
from airflow_provider_vapi.landing.warehouse import dialect_of
from airflow_provider_vapi.operators import LoadCampaignContactsOperator
from airflow_provider_vapi.wire.skew import CLOCK_SKEW
from tests.test_warehouse import export, load, query, warehouse  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("vapi_conn", "warehouse")  # SQLite, then PostgreSQL

SECRET = "sk-live-WAREHOUSE-TEXT-4d4d"
SCHEMA = {"type": "object", "properties": {"note": {"type": "string"}}}


def nul_call(emu: Any) -> dict[str, Any]:
    """An ended inbound call with NUL in its customer's name, transcript, analysis, a structured
    output (its name and result), metadata (a key and a value); moved a minute past the settle
    margin into the past (its window can be exported now)."""
    output = emu.create_structured_output("probe\x00name", SCHEMA)
    call = emu.inject_inbound_call(
        "+15550101000",
        ended=True,
        customer={"name": "Ann\x00 Lee"},
        assistant_overrides={
            "firstMessage": "Hello\x00 there",
            "variableValues": {"note": "a\x00b"},
            "metadata": {"k\x00ey": "v\x00al"},
            "analysisPlan": {"structuredDataPlan": {"enabled": True, "schema": SCHEMA}},
            "artifactPlan": {"structuredOutputIds": [output["id"]]},
        },
    )
    return emu.backdate_call(call["id"], (CLOCK_SKEW + timedelta(minutes=1)).total_seconds())


def seed_recent(emu: Any, count: int) -> None:
    now = datetime.now(UTC)
    emu.seed_calls(count, now - CLOCK_SKEW - timedelta(minutes=30), now - CLOCK_SKEW - timedelta(minutes=2))


def export_recent(path: Path, **kwargs: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return export(path, now - CLOCK_SKEW - timedelta(hours=1), now - CLOCK_SKEW, **kwargs)


def rows(table: str) -> list[dict[str, Any]]:
    names = ", ".join(COLUMN_NAMES)
    return [
        dict(zip(COLUMN_NAMES, r, strict=True)) for r in query(f"SELECT {names} FROM {table} ORDER BY id")
    ]


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # SQLite: text; PostgreSQL: JSONB


def tables() -> set[str]:
    hook = BaseHook.get_hook("warehouse")
    if dialect_of(hook) == "sqlite":
        return {r[0] for r in hook.get_records("SELECT name FROM sqlite_master WHERE type = 'table'")}
    sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    return {r[0] for r in hook.get_records(sql)}


def test_nul_characters_are_loaded_removed_not_blocking_the_table(vapi_emulator, tmp_path):
    call = nul_call(vapi_emulator)
    seed_recent(vapi_emulator, 5)
    assert load(export_recent(tmp_path))["rows"] == 6
    (row,) = [r for r in rows("vapi_calls") if r["id"] == call["id"]]
    assert row["customer_name"] == "Ann Lee"
    assert row["transcript"].startswith("AI: Hello there\nUser:")
    assert "Ann Lee" in row["summary"]
    assert as_json(row["structured_data"]) == {"note": "ab"}
    assert as_json(row["structured_outputs"]) == {"probename": {"note": "ab"}}
    assert as_json(row["metadata"]) == {"key": "val"}
    stored = json.dumps([list(r.values()) for r in rows("vapi_calls")], default=str)
    assert "\\u0000" not in stored


def test_parquet_exports_load_the_same_clean_rows(vapi_emulator, tmp_path):
    pytest.importorskip("pyarrow")
    nul_call(vapi_emulator)
    load(export_recent(tmp_path / "jsonl"), table="from_jsonl")
    load(export_recent(tmp_path / "parquet", format="parquet"), table="from_parquet")
    assert rows("from_jsonl") == rows("from_parquet")
    assert rows("from_jsonl")[0]["customer_name"] == "Ann Lee"


def test_unpaired_surrogates_in_a_file_are_loaded_as_replacement_characters(vapi_emulator, tmp_path):
    """A file edited by hand (or written by another tool) can hold a lone ``\\ud800`` escape,
    which no database can encode as UTF-8."""
    call = nul_call(vapi_emulator)
    (line,) = Path(export_recent(tmp_path)["path"]).read_text().splitlines()
    edited = json.loads(line)
    edited["artifact"]["transcript"] = "AI: caf\ud800!"
    edited["assistantOverrides"]["metadata"] = {"k\udc00": "v\ud83d"}
    path = tmp_path / "edited.jsonl"
    path.write_text(json.dumps(edited) + "\n")  # ensure_ascii: the surrogates as \u escapes
    load(str(path))
    (row,) = rows("vapi_calls")
    assert row["id"] == call["id"]
    assert row["transcript"] == "AI: caf\ufffd!"
    assert as_json(row["metadata"]) == {"k\ufffd": "v\ufffd"}


def test_nul_in_a_campaign_contact_is_loaded_removed(vapi_emulator):
    customers = [{"number": "+15550201000", "name": "Bo\x00b"}, {"number": "+15550201001"}]
    campaign = vapi_emulator.create_campaign([], customers=customers)
    op = LoadCampaignContactsOperator(task_id="contacts", campaign_id=campaign["id"], conn_id="warehouse")
    assert op.execute({})["rows"] == 2
    assert query("SELECT name FROM vapi_campaign_contacts ORDER BY position") == [("Bob",), (None,)]


BAD_TABLES = [
    ("order", "reserved word"),
    ("select", "reserved word"),
    ("Order", "reserved word"),
    ("analytics.user", "reserved word"),
    ("vapi_calls\n", "not a plain table name"),
    ("vapi_calls ", "not a plain table name"),
    ("", "not a plain table name"),
    (None, "not a plain table name"),
    ("x" * 64, "not a plain table name"),
]


@pytest.mark.parametrize(("table", "why"), BAD_TABLES, ids=[repr(t)[:20] for t, _ in BAD_TABLES])
def test_a_table_name_the_database_would_refuse_is_refused_first(vapi_emulator, tmp_path, table, why):
    seed_recent(vapi_emulator, 3)
    summary = export_recent(tmp_path)
    before = tables()
    with pytest.raises(AirflowFailException, match=why) as caught:
        load(summary, table=table)
    assert "table=" in str(caught.value) and "e.g. 'vapi_" in str(caught.value)
    with pytest.raises(AirflowFailException, match=why):
        LoadCampaignContactsOperator(
            task_id="contacts", campaign_id=vapi_emulator.create_campaign(["+15550301000"])["id"],
            conn_id="warehouse", table=table,
        ).execute({})  # fmt: skip
    assert tables() == before


@pytest.mark.parametrize("campaign_id", ["None", "", "  ", "{{ ti.xcom_pull('c') }}", "../call"])
def test_a_campaign_id_that_rendered_wrong_is_refused_before_the_database(vapi_emulator, campaign_id):
    before = tables()
    vapi_emulator.clear_requests()
    op = LoadCampaignContactsOperator(task_id="contacts", campaign_id=campaign_id, conn_id="warehouse")
    with pytest.raises(VapiInvalidRequestError, match=r"campaign_id=.* is not a Vapi campaign id"):
        op.execute({})
    assert tables() == before
    assert vapi_emulator.requests() == []


def test_a_bad_line_names_the_file_and_line_and_the_table_is_unchanged(vapi_emulator, tmp_path):
    seed_recent(vapi_emulator, 4)
    summary = export_recent(tmp_path)
    load(summary)
    lines = Path(summary["path"]).read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        "\n".join([lines[0], lines[1], f"number,token\n+14155550100,{SECRET}", *lines[2:]]) + "\n"
    )
    BaseHook.get_hook("warehouse").run("UPDATE vapi_calls SET ended_reason = 'kept'")
    with pytest.raises(json.JSONDecodeError) as caught:  # still one, for code that caught it before
        load(str(broken))
    message = str(caught.value)
    assert f"{broken}, line 3: not JSON" in message and "export.output" in message
    assert SECRET not in message
    assert isinstance(caught.value, AirflowFailException)  # final: the same file fails every retry
    assert query("SELECT COUNT(*) FROM vapi_calls WHERE ended_reason = 'kept'") == [(4,)]
