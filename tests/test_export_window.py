"""The export's window rule, proven with real ``dag.test()`` runs against the emulator.

A window ``[updated_after, updated_before)`` is exported once it has settled, at
``updated_before + CLOCK_SKEW`` by Airflow's clock (:mod:`airflow_provider_vapi.landing.export`):

* a call's final state always lands in some window's file, with Vapi's clock as far behind
  Airflow's as the margin allows (it used to be lost: the warehouse kept ``in-progress``);
* one window is one file: a window that has not closed is refused, never cut at now and written
  under a second name; a rerun replaces the one file, waiting for the window in the triggerer
  (``deferrable=True``) as well as in the worker;
* what a killed export leaves (``.part-*``) is removed by the next run;
* ``LoadCallsOperator``'s ``changed`` counts only rows whose content changed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_vapi.operators import ExportCallsOperator, LoadCallsOperator
from airflow_provider_vapi.wire.skew import CLOCK_SKEW
from tests.dag_runner import load_dag, run_dag, states, xcom
from tests.test_warehouse import query, warehouse  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("vapi_conn", "airflow_db")

ROOT = Path(__file__).resolve().parents[1]
DAY = datetime(2026, 11, 20, tzinfo=UTC)
#: A number whose call stays in progress until it is ended (the emulator's outcome table).
HOLDS = "+15550100006"

WINDOW_DAG = """
from airflow_provider_vapi.operators import ExportCallsOperator, LoadCallsOperator
with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    export = ExportCallsOperator(
        task_id="export", path={path!r}, updated_after={after!r}, updated_before={before!r}, {extra}
    )
    LoadCallsOperator(task_id="load", source=export.output, conn_id={conn!r})
"""


def window_dag(dag_id: str, path: Path, after: datetime, before: datetime, conn: str, extra: str = "") -> str:
    return WINDOW_DAG.format(
        dag_id=dag_id,
        path=str(path),
        after=after.isoformat(),
        before=before.isoformat(),
        conn=conn,
        extra=extra,
    )


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def exported(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("calls_*"))


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout}s")
        time.sleep(0.05)
    return result


@pytest.fixture
def sqlite_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    return db


# -- hole 1: a call's final state is never lost -------------------------------------------------


def test_a_call_ending_just_after_its_window_was_exported_reaches_the_warehouse_ended(
    vapi_emulator, tmp_path, sqlite_warehouse
):
    """Vapi's clock 10 minutes behind Airflow's (the most the margin allows). A call is live when
    window 1 is exported, and ends right after: its end is stamped before window 1's end by Vapi's
    clock. Exported (and loaded) at once, window 1 holds the call ``in-progress`` and window 2
    never sees the end; exported once settled, the end is stamped after window 1's end and window
    2 carries it to the warehouse."""
    # Airflow 3's first dag.test() in a process spends ~30 s starting its API server: paid here, so
    # that window 1's run below starts its export within seconds (as a worker does).
    warm = run_dag(
        "vapi_warm_up", window_dag("vapi_warm_up", tmp_path / "warm", DAY, DAY + timedelta(hours=1), "wh")
    )
    assert states(warm)[("export", -1)] == "success"
    vapi_emulator.set_clock_offset(-CLOCK_SKEW.total_seconds())
    call = vapi_emulator.create_call(HOLDS, assistantOverrides={"maxDurationSeconds": 43200})
    live = vapi_emulator.wait_for(call["id"], status="in-progress", timeout=60)
    # Window 1 ends a minute after the live call's last stamp (by Vapi's clock, so 9 minutes ago by
    # Airflow's): exported at once, the call's end a few seconds later still falls inside it.
    end_1 = stamp(live["updatedAt"]) + timedelta(minutes=1)
    first = run_dag(
        "vapi_window_1", window_dag("vapi_window_1", tmp_path, end_1 - timedelta(hours=1), end_1, "wh")
    )
    assert states(first) == {("export", -1): "success", ("load", -1): "success"}
    assert [
        json.loads(line)["status"] for line in Path(xcom(first, "export")["path"]).read_text().splitlines()
    ] == ["in-progress"]
    vapi_emulator.end_call(call["id"])
    vapi_emulator.wait_for(call["id"], analysis=True, timeout=60)  # its last change
    # Window 2: from window 1's end to a moment that settles 5 s from now.
    end_2 = max(end_1, datetime.now(UTC) - CLOCK_SKEW) + timedelta(seconds=5)
    second = run_dag("vapi_window_2", window_dag("vapi_window_2", tmp_path, end_1, end_2, "wh"))
    assert states(second) == {("export", -1): "success", ("load", -1): "success"}
    versions = {
        json.loads(line)["updatedAt"]: json.loads(line)["status"]
        for name in exported(tmp_path)
        for line in (tmp_path / name).read_text().splitlines()
        if json.loads(line)["id"] == call["id"]
    }
    final = vapi_emulator.call(call["id"])
    assert versions.get(final["updatedAt"]) == "ended", (final["updatedAt"], end_1, versions)
    with sqlite3.connect(sqlite_warehouse) as db:
        assert db.execute(
            "SELECT status, ended_reason FROM vapi_calls WHERE id = ?", (call["id"],)
        ).fetchall() == [("ended", "manually-canceled")]


# -- hole 2: one window, one file -----------------------------------------------------------------


def test_a_window_that_has_not_closed_is_refused_and_never_written_under_a_second_name(
    vapi_emulator, tmp_path, sqlite_warehouse
):
    """The same window, ending an hour from now, run twice: each run used to cut it at its own
    "now" and write it under that name (two files holding the same calls). Now each run fails,
    says when the window can be exported, and writes nothing."""
    now = datetime.now(UTC)
    vapi_emulator.seed_calls(20, now - timedelta(hours=1), now - timedelta(minutes=1))
    body = window_dag("vapi_open_window", tmp_path, now - timedelta(hours=2), now + timedelta(hours=1), "wh")
    vapi_emulator.clear_requests()
    for day in (1, 2):
        run = run_dag("vapi_open_window", body, logical_date=DAY + timedelta(days=day))
        assert states(run)[("export", -1)] == "failed"
        assert exported(tmp_path) == [] and temporaries(tmp_path) == []
    assert vapi_emulator.requests("GET", "/call") == []
    op = ExportCallsOperator(
        task_id="export",
        path=str(tmp_path),
        updated_after=now - timedelta(hours=2),
        updated_before=now + timedelta(hours=1),
    )
    ready = (now + timedelta(hours=1) + CLOCK_SKEW).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with pytest.raises(Exception, match=rf"has not closed.*from {ready}.*give an updated_before in the past"):
        op.execute({})


def test_a_window_rerun_waits_for_it_to_settle_in_the_triggerer_and_replaces_its_one_file(
    vapi_emulator, tmp_path, sqlite_warehouse
):
    """A window that closed but has not settled, exported with ``deferrable=True``: the task waits
    in the triggerer (nothing is listed before ``updated_before + CLOCK_SKEW``), then writes the
    window's file; a second run (the file damaged in between) rewrites that same file whole."""
    now = datetime.now(UTC)
    before = now - CLOCK_SKEW + timedelta(seconds=4)
    vapi_emulator.seed_calls(30, now - timedelta(hours=1), before - timedelta(minutes=1))
    body = window_dag("vapi_settling", tmp_path, now - timedelta(hours=1), before, "wh", "deferrable=True")
    vapi_emulator.clear_requests()
    first = run_dag("vapi_settling", body, logical_date=DAY)
    assert states(first) == {("export", -1): "success", ("load", -1): "success"}
    listings = vapi_emulator.requests("GET", "/call")
    assert listings and min(stamp(r["timestamp"]) for r in listings) >= before + CLOCK_SKEW
    summary = xcom(first, "export")
    (name,) = exported(tmp_path)
    assert summary["calls"] == 30 and Path(summary["path"]).name == name
    whole = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(whole[: len(whole) // 2])
    second = run_dag("vapi_settling", body, logical_date=DAY + timedelta(days=1))
    assert states(second) == {("export", -1): "success", ("load", -1): "success"}
    assert exported(tmp_path) == [name] and (tmp_path / name).read_bytes() == whole
    assert xcom(second, "load")["changed"] == 0


# -- hole 3: temporary files --------------------------------------------------------------------


def run_again(dag_id: str, body: str, when: datetime) -> Any:
    """``dag.test()`` of the dag run of ``when`` (run id and all): a retry of the same task
    instance, as a worker's next try or a clear runs it."""
    dag = load_dag(dag_id, body)
    try:
        return dag.test(logical_date=when, run_after=when)
    except TypeError:  # Airflow 2: the run id is the logical date's
        return dag.test(execution_date=when)


KILLED_RUN = """
import sys
from datetime import datetime
from tests.test_export_window import run_again
run_again(sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]))
"""


def test_a_killed_exports_temporary_file_is_removed_by_the_next_run(
    vapi_emulator, tmp_path, sqlite_warehouse
):
    """A worker running the export is killed (SIGKILL) while page 2 of the listing is on its way:
    its ``.part-*`` file stays. The next run of the task removes it and writes the window whole."""
    vapi_emulator.seed_calls(2500, DAY, DAY + timedelta(days=1))
    body = window_dag("vapi_killed_export", tmp_path, DAY, DAY + timedelta(days=1), "wh")
    vapi_emulator.faults(["ok", "stall:300"], method="GET", path="/call")
    argv = [sys.executable, "-c", KILLED_RUN, "vapi_killed_export", body, DAY.isoformat()]
    worker = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: [p for p in tmp_path.iterdir() if ".part-" in p.name and p.stat().st_size > 0],
            timeout=180,
            what="temporary file with the first page",
        )
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=60)
    leftover = temporaries(tmp_path)
    assert leftover and exported(tmp_path) == []
    vapi_emulator.clear_faults()
    run = run_again("vapi_killed_export", body, DAY)
    assert states(run) == {("export", -1): "success", ("load", -1): "success"}
    assert temporaries(tmp_path) == []
    assert xcom(run, "export")["calls"] == 2500
    assert len((tmp_path / exported(tmp_path)[0]).read_text().splitlines()) == 2500


def test_a_temporary_file_abandoned_a_day_ago_by_another_window_is_removed(vapi_emulator, tmp_path):
    """A temporary file of another window, untouched for a day (its export was killed and the
    window never run again), is removed by the next export into the folder; one still being
    written (touched recently) is left to its writer."""
    vapi_emulator.seed_calls(5, DAY, DAY + timedelta(hours=1))
    stale = tmp_path / ".calls_20261101T000000Z_20261102T000000Z.jsonl.part-0123456789ab"
    fresh = tmp_path / ".calls_20261102T000000Z_20261103T000000Z.jsonl.part-ba9876543210"
    for path in (stale, fresh):
        path.write_text('{"id": "half')
    day_ago = time.time() - timedelta(days=1, minutes=1).total_seconds()
    os.utime(stale, (day_ago, day_ago))
    ExportCallsOperator(
        task_id="export", path=str(tmp_path), updated_after=DAY, updated_before=DAY + timedelta(hours=1)
    ).execute({})
    assert temporaries(tmp_path) == [fresh.name]


# -- hole 4: "changed" counts changes -----------------------------------------------------------


@pytest.mark.usefixtures("warehouse")  # SQLite, then PostgreSQL: the connection "warehouse"
def test_loading_a_file_twice_changes_nothing_and_changed_says_so(vapi_emulator, tmp_path):
    """The same window exported and loaded twice (SQLite and PostgreSQL): the second load changes
    no row and reports ``changed == 0``; a file whose call differs at the same ``updatedAt`` (a
    row computed differently) counts that one row."""
    vapi_emulator.seed_calls(40, DAY, DAY + timedelta(hours=1))
    body = window_dag("vapi_load_twice", tmp_path, DAY, DAY + timedelta(hours=1), "warehouse")
    loads = [
        xcom(run_dag("vapi_load_twice", body, logical_date=DAY + timedelta(days=d)), "load") for d in (1, 2)
    ]
    assert [(load["rows"], load["changed"]) for load in loads] == [(40, 40), (40, 0)]
    (name,) = exported(tmp_path)
    calls = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
    calls[3]["artifact"]["transcript"] = "AI: edited"
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(call) + "\n" for call in calls))
    again = LoadCallsOperator(task_id="load", source=str(edited), conn_id="warehouse").execute({})
    assert (again["rows"], again["changed"]) == (40, 1)
    assert query(f"SELECT transcript FROM vapi_calls WHERE id = '{calls[3]['id']}'") == [("AI: edited",)]
