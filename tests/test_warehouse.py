"""LoadCallsOperator on SQLite and on a real PostgreSQL server: one row per call however often a
file is loaded, never a newer row replaced by an older export, all or nothing per load."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, BaseHook

from airflow_provider_vapi.landing.rows import COLUMN_NAMES
from airflow_provider_vapi.operators import ExportCallsOperator, LoadCallsOperator
from airflow_provider_vapi.wire.skew import CLOCK_SKEW

pytestmark = pytest.mark.usefixtures("vapi_conn")

DAY = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``warehouse``: an Airflow connection to a fresh SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        uri = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")})
    else:
        uri = request.getfixturevalue("postgres_uri")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", uri)
    return "warehouse"


def export(path: Path, after: datetime, before: datetime, **kwargs: Any) -> dict[str, Any]:
    op = ExportCallsOperator(task_id="export", path=str(path), updated_after=after, updated_before=before, **kwargs)
    result: dict[str, Any] = op.execute({})
    return result


def load(source: Any, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = LoadCallsOperator(
        task_id="load", source=source, conn_id="warehouse", **kwargs
    ).execute({})
    return result


def query(sql: str) -> list[tuple[Any, ...]]:
    return list(BaseHook.get_hook("warehouse").get_records(sql))


def test_an_export_loaded_twice_gives_one_row_per_call_with_its_facts(vapi_emulator, tmp_path, warehouse):
    vapi_emulator.seed_calls(1200, DAY, DAY + timedelta(days=1))
    summary = export(tmp_path, DAY, DAY + timedelta(days=1))
    assert load(summary)["rows"] == 1200
    assert load(summary)["rows"] == 1200
    assert query("SELECT COUNT(*), COUNT(DISTINCT id) FROM vapi_calls") == [(1200, 1200)]
    call = vapi_emulator.calls()[0]
    names = ", ".join(COLUMN_NAMES)
    row = dict(zip(COLUMN_NAMES, query(f"SELECT {names} FROM vapi_calls WHERE id = '{call['id']}'")[0], strict=True))
    assert row["cost"] == pytest.approx(call["cost"])
    assert row["ended_reason"] == call["endedReason"]
    assert row["type"] == call["type"] and row["status"] == "ended"
    assert row["customer_number"] == call["customer"]["number"]
    assert row["transcript"] == call["artifact"]["transcript"]


def test_an_older_export_loaded_after_a_newer_one_changes_nothing(vapi_emulator, tmp_path, warehouse):
    """A call changed after its first export lands in a later interval; loading the later file
    and then (a late backfill) the earlier one keeps the later version."""
    # Every bound minutes away from the moment of the change, and the changed call named by the id
    # the seeding returned: nothing else in the emulator, and no slow step, can move the result.
    # Each window has settled (ended more than CLOCK_SKEW ago): the change is moved back past it.
    start = datetime.now(UTC) - timedelta(minutes=40)
    changed = vapi_emulator.seed_calls(3, start, start + timedelta(minutes=1), ids=True)["ids"][0]
    middle = start + timedelta(minutes=5)
    old = export(tmp_path / "old", start, middle)
    with vapi_emulator.client() as http:
        patched = http.patch(f"/call/{changed}", json={"name": "renamed"})
    assert patched.status_code == 200
    vapi_emulator.backdate_call(changed, (CLOCK_SKEW + timedelta(minutes=5)).total_seconds())
    new = export(tmp_path / "new", middle, datetime.now(UTC) - CLOCK_SKEW)
    assert new["calls"] == 1, (patched.json()["updatedAt"], new)
    newer = json.loads(Path(new["path"]).read_text())["updatedAt"]
    load(new)
    assert load(old)["rows"] == 3
    (stored,) = query(f"SELECT updated_at FROM vapi_calls WHERE id = '{changed}'")[0]
    stamp = stored if isinstance(stored, str) else stored.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert stamp == newer
    assert query("SELECT COUNT(*) FROM vapi_calls") == [(3,)]


def test_three_intervals_loaded_give_each_call_exactly_one_row(vapi_emulator, tmp_path, warehouse):
    for day in range(3):
        vapi_emulator.seed_calls(300, DAY + timedelta(days=day), DAY + timedelta(days=day + 1))
    summaries = [export(tmp_path, DAY + timedelta(days=d), DAY + timedelta(days=d + 1)) for d in range(3)]
    assert load(summaries) == {"table": "vapi_calls", "files": 3, "rows": 900, "changed": 900}
    load(summaries[1])  # a rerun of the middle day's load
    assert query("SELECT COUNT(*), COUNT(DISTINCT id) FROM vapi_calls") == [(900, 900)]


def test_a_load_that_fails_halfway_leaves_the_table_as_it_was(vapi_emulator, tmp_path, warehouse):
    """The file's last line is cut off (a copy interrupted elsewhere): nothing of it is loaded,
    and the rows an earlier load wrote are still there."""
    vapi_emulator.seed_calls(100, DAY - timedelta(days=1), DAY)
    vapi_emulator.seed_calls(2500, DAY, DAY + timedelta(days=1))
    load(export(tmp_path, DAY - timedelta(days=1), DAY))
    summary = export(tmp_path, DAY, DAY + timedelta(days=1))
    broken = tmp_path / "broken.jsonl"
    shutil.copy(summary["path"], broken)
    with broken.open("a") as handle:
        handle.write('{"id": "cut-of')
    with pytest.raises(json.JSONDecodeError):
        load(str(broken))
    assert query("SELECT COUNT(*) FROM vapi_calls") == [(100,)]


def test_parquet_and_json_lines_load_the_same_rows(vapi_emulator, tmp_path, warehouse):
    pytest.importorskip("pyarrow")
    vapi_emulator.seed_calls(200, DAY, DAY + timedelta(hours=2))
    load(export(tmp_path / "jsonl", DAY, DAY + timedelta(hours=2)), table="from_jsonl")
    load(export(tmp_path / "parquet", DAY, DAY + timedelta(hours=2), format="parquet"), table="from_parquet")
    names = ", ".join(COLUMN_NAMES)
    jsonl = query(f"SELECT {names} FROM from_jsonl ORDER BY id")
    parquet = query(f"SELECT {names} FROM from_parquet ORDER BY id")
    assert len(jsonl) == 200 and jsonl == parquet


def test_a_table_name_that_is_not_a_name_is_refused_before_connecting(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    with pytest.raises(AirflowFailException, match="not a plain table name"):
        load(str(tmp_path / "calls.jsonl"), table="vapi_calls; DROP TABLE users")
    with pytest.raises(AirflowFailException, match="is not an export"):
        load([{"calls": 3}])
