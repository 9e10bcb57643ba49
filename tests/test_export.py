"""ExportCallsOperator against the emulator: every call of a window, once, in a file named by the
window; a rerun replaces it byte for byte; nothing half-written survives; no secret is stored."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_vapi.exceptions import VapiError
from airflow_provider_vapi.operators import ExportCallsOperator
from airflow_provider_vapi.wire.skew import CLOCK_SKEW
from tests.dag_runner import run_dag, states, xcom

pytestmark = pytest.mark.usefixtures("vapi_conn")

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def export(path: Any, after: datetime, before: datetime, **kwargs: Any) -> dict[str, Any]:
    op = ExportCallsOperator(task_id="export", path=str(path), updated_after=after, updated_before=before, **kwargs)
    result: dict[str, Any] = op.execute({})
    return result


def lines(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path.removeprefix("file://")).read_text().splitlines()]


def in_window(emu: Any, after: datetime, before: datetime) -> set[str]:
    """The ids of the calls the emulator itself holds with ``after <= updatedAt < before``."""
    return {
        c["id"]
        for c in emu.calls()
        if after <= datetime.fromisoformat(c["updatedAt"].replace("Z", "+00:00")) < before
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".part-" in p.name)


def test_a_window_of_2500_calls_is_exported_whole_once_and_identically_twice(vapi_emulator, tmp_path):
    """2,500 calls in the window (pages past 1,000) and 300 outside: the file holds exactly the
    window's calls, each once, sorted by updatedAt; a second export gives the same bytes."""
    vapi_emulator.seed_calls(2500, DAY, DAY + timedelta(days=1))
    vapi_emulator.seed_calls(150, DAY - timedelta(days=1), DAY)
    vapi_emulator.seed_calls(150, DAY + timedelta(days=1), DAY + timedelta(days=2))
    first = export(tmp_path, DAY, DAY + timedelta(days=1))
    body = Path(first["path"]).read_bytes()
    calls = lines(first["path"])
    ids = [c["id"] for c in calls]
    assert first["calls"] == len(ids) == 2500
    assert set(ids) == in_window(vapi_emulator, DAY, DAY + timedelta(days=1))
    assert max(Counter(ids).values()) == 1
    assert [c["updatedAt"] for c in calls] == sorted(c["updatedAt"] for c in calls)
    assert Path(first["path"]).name == "calls_20261120T000000Z_20261121T000000Z.jsonl"
    again = export(tmp_path, DAY, DAY + timedelta(days=1))
    assert again == first
    assert Path(again["path"]).read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(first["path"]).name]


def test_the_window_is_half_open_on_updated_at(vapi_emulator, tmp_path):
    """A call updated exactly at ``updated_before`` belongs to the next interval, one updated
    exactly at ``updated_after`` to this one: consecutive intervals never share a call."""
    vapi_emulator.seed_calls(10, DAY, DAY + timedelta(hours=1))
    stamps = sorted(c["updatedAt"] for c in vapi_emulator.calls())
    edge = datetime.fromisoformat(stamps[5].replace("Z", "+00:00"))
    low = export(tmp_path / "low", DAY, edge)
    high = export(tmp_path / "high", edge, DAY + timedelta(hours=1))
    low_ids = {c["id"] for c in lines(low["path"])}
    high_ids = {c["id"] for c in lines(high["path"])}
    assert low["calls"] == 5 and high["calls"] == 5
    assert not low_ids & high_ids
    assert min(c["updatedAt"] for c in lines(high["path"])) == stamps[5]


def test_inbound_campaign_and_dashboard_calls_are_exported_and_can_be_filtered(vapi_emulator, tmp_path):
    vapi_emulator.seed_calls(30, DAY, DAY + timedelta(hours=1), call_type="inboundPhoneCall")
    vapi_emulator.seed_calls(20, DAY, DAY + timedelta(hours=1), campaign_id="c4a1b000-0000-4000-8000-000000000001")
    vapi_emulator.seed_calls(10, DAY, DAY + timedelta(hours=1))
    everything = lines(export(tmp_path / "all", DAY, DAY + timedelta(hours=1))["path"])
    assert Counter(c["type"] for c in everything) == {"inboundPhoneCall": 30, "outboundPhoneCall": 30}
    inbound = export(tmp_path / "in", DAY, DAY + timedelta(hours=1), call_type="inboundPhoneCall")
    assert inbound["calls"] == 30
    assert {c["type"] for c in lines(inbound["path"])} == {"inboundPhoneCall"}
    campaign = export(
        tmp_path / "campaign", DAY, DAY + timedelta(hours=1), campaign_id="c4a1b000-0000-4000-8000-000000000001"
    )
    assert campaign["calls"] == 20


def test_no_secret_a_call_echoes_back_is_written(vapi_emulator, tmp_path):
    """Vapi repeats the request in the call, headers included: the file must not hold them."""
    secret = "Bearer sk-live-4f1c7e9a2b"
    vapi_emulator.configure(speed=1000)
    call = vapi_emulator.create_call(
        assistantOverrides={"server": {"url": "https://crm.example.com/hook", "headers": {"Authorization": secret}}}
    )
    vapi_emulator.wait_for(call["id"], timeout=60)
    assert secret in json.dumps(vapi_emulator.call(call["id"]))  # the emulator does echo it
    # Moved past the settle margin, so that its window can be exported now.
    vapi_emulator.backdate_call(call["id"], (CLOCK_SKEW + timedelta(minutes=1)).total_seconds())
    now = datetime.now(UTC)
    result = export(tmp_path, now - CLOCK_SKEW - timedelta(minutes=5), now - CLOCK_SKEW)
    assert result["calls"] == 1
    text = Path(result["path"]).read_text()
    assert secret not in text and "sk-live-4f1c7e9a2b" not in text
    assert lines(result["path"])[0]["assistantOverrides"]["server"]["url"] == "https://crm.example.com/hook"


def test_a_failed_export_leaves_the_previous_file_whole_and_no_part_file(vapi_emulator, tmp_path):
    """The listing dies on its third page (every retry refused): the file from the earlier run is
    still there, unchanged, and no temporary file is left behind."""
    vapi_emulator.seed_calls(2500, DAY, DAY + timedelta(days=1))
    first = export(tmp_path, DAY, DAY + timedelta(days=1))
    body = Path(first["path"]).read_bytes()
    vapi_emulator.faults(["ok", "ok"] + [500] * 20, method="GET", path="/call")
    with pytest.raises(VapiError):
        export(tmp_path, DAY, DAY + timedelta(days=1))
    assert Path(first["path"]).read_bytes() == body
    assert leftovers(tmp_path) == []


def test_bad_parameters_fail_before_any_request(vapi_emulator, tmp_path):
    vapi_emulator.clear_requests()
    with pytest.raises(AirflowFailException, match="updated_after must be before"):
        export(tmp_path, DAY, DAY)
    with pytest.raises(AirflowFailException, match="updated_after must be before"):
        export(tmp_path, DAY + timedelta(hours=1), DAY)
    with pytest.raises(AirflowFailException, match="is not a date and time"):
        export(tmp_path, "yesterday", DAY)  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="no data interval"):
        ExportCallsOperator(task_id="export", path=str(tmp_path)).execute({})
    with pytest.raises(AirflowFailException, match="CronDataIntervalTimetable"):
        ExportCallsOperator(task_id="export", path=str(tmp_path)).execute(
            {"data_interval_start": DAY, "data_interval_end": DAY}
        )
    with pytest.raises(ValueError, match="format='csv'"):
        ExportCallsOperator(task_id="export", path=str(tmp_path), format="csv")
    with pytest.raises(ValueError, match="recordings=\\['video'\\]"):
        ExportCallsOperator(task_id="export", path=str(tmp_path), recording_kinds=["video"])
    assert vapi_emulator.requests() == []


def test_a_window_reaching_into_the_future_is_refused_not_cut(vapi_emulator, tmp_path):
    """A window is never cut at now (a second run would write the rest under a second name): one
    ending more than the skew margin ahead is refused, naming when it can be exported."""
    now = datetime.now(UTC)
    vapi_emulator.seed_calls(5, now - timedelta(hours=1), now - timedelta(minutes=1))
    vapi_emulator.clear_requests()
    with pytest.raises(AirflowFailException, match=r"updated_before=.* is in the future.*settled: from "):
        export(tmp_path, now - timedelta(hours=2), now + timedelta(days=1))
    assert vapi_emulator.requests() == []
    assert list(tmp_path.iterdir()) == []


BACKFILL = """
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow_provider_vapi.operators import ExportCallsOperator
daily = CronDataIntervalTimetable("@daily", timezone="UTC")
with DAG("{dag_id}", schedule=daily, start_date=datetime(2026, 11, 1), catchup=False) as dag:
    ExportCallsOperator(task_id="export", path="{path}")
"""


@pytest.mark.usefixtures("airflow_db")
def test_a_backfill_of_three_days_exports_each_call_exactly_once(vapi_emulator, tmp_path):
    """Three daily runs, each on its own data interval (the default window): every call of the
    three days is in exactly one of the three files."""
    for day in range(3):
        vapi_emulator.seed_calls(400, DAY + timedelta(days=day), DAY + timedelta(days=day + 1))
    body = BACKFILL.format(dag_id="vapi_export_backfill", path=tmp_path)
    seen: Counter[str] = Counter()
    windows = []
    for day in range(3):
        # A manual run at the end of a day covers that day (the last complete interval).
        run = run_dag("vapi_export_backfill", body, logical_date=DAY + timedelta(days=day + 1))
        assert states(run) == {("export", -1): "success"}
        summary = xcom(run, "export")
        windows.append((summary["updated_after"], summary["updated_before"]))
        seen.update(c["id"] for c in lines(summary["path"]))
    days = [f"2026-11-{20 + d}T00:00:00.000Z" for d in range(4)]
    assert windows == list(pairwise(days))
    assert len(seen) == 1200 and set(seen.values()) == {1}
    assert set(seen) == in_window(vapi_emulator, DAY, DAY + timedelta(days=3))
