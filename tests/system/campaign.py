"""Running the survey campaign example DAG and checking "nothing lost, nothing doubled".

Each test calls its own people (numbers built from a test code), so calls at the shared emulator
can be attributed to one test without resetting it. The CSV is written per test and passed as the
run's ``contacts_csv`` param; the results go to a SQLite file per test (``results_db``).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_vapi.emulator.client import EmulatorHandle

from .deployment import AirflowApi
from .procs import wait_until

SURVEY = "vapi_outbound_survey"
#: The survey assistant's structured output holding the answers (see the example DAG).
ANSWERS = "survey_answers"
POOL = "vapi"


@dataclass(frozen=True)
class Contact:
    person_id: str
    name: str
    number: str


def contacts(code: int, count: int, *, suffix: str | None = None) -> list[Contact]:
    """``count`` people with numbers unique to test ``code`` (two digits).

    ``suffix`` picks the emulator's scripted outcome by the last four digits (``0006``: the call
    stays in progress until ended). Without it, the last four digits are ``4xxx``: a completed
    conversation with analysis.
    """
    out = []
    for i in range(count):
        tail = f"{i:02d}{suffix}" if suffix else f"004{i:03d}"
        out.append(Contact(f"t{code:02d}-{i:03d}", f"Person{code:02d} No{i:03d}", f"+1555{code:02d}{tail}"))
    return out


def write_csv(path: Path, people: list[Contact]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["person_id", "name", "number", "product", "customer_since"])
        for p in people:
            writer.writerow([p.person_id, p.name, p.number, "System Test Kit", "2024"])
    return path


@dataclass
class SurveyRun:
    api: AirflowApi
    run_id: str
    people: list[Contact]
    results_db: Path

    def wait(self, timeout: float = 240.0) -> dict[str, Any]:
        return self.api.wait_for_run(SURVEY, self.run_id, timeout)

    def tis(self, task_id: str) -> list[dict[str, Any]]:
        return sorted(self.api.task_instances(SURVEY, self.run_id, task_id), key=lambda t: t["map_index"])

    def wait_deferred(self, count: int, timeout: float = 180.0) -> list[dict[str, Any]]:
        """Until ``count`` wait_for_call instances are deferred AND picked up by a triggerer."""
        found: list[dict[str, Any]] = []

        def deferred() -> bool:
            found[:] = [
                t for t in self.tis("wait_for_call") if t["state"] == "deferred" and t["triggerer_job"]
            ]
            return len(found) >= count

        try:
            wait_until(deferred, timeout, 1.0, f"{count} deferred waits")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {self.api.states(SURVEY, self.run_id)}") from None
        return found

    def placed_ids(self) -> dict[int, str]:
        return {
            ti["map_index"]: self.api.xcom(SURVEY, self.run_id, "place_call", map_index=ti["map_index"])
            for ti in self.tis("place_call")
        }

    def table_rows(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.results_db) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM vapi_call_results WHERE run_id = ?", (self.run_id,)).fetchall()
        return [dict(r) for r in rows]


#: Every run a test started: the suite's cleanup finishes those a failing test left running, so
#: that (``max_active_runs=1``) the next test's run is not queued behind it.
STARTED: list[SurveyRun] = []


def finish_leftover_runs(emulator: EmulatorHandle) -> list[str]:
    """Fail the runs still going and end their live calls; returns their ids."""
    leftovers = []
    while STARTED:
        run = STARTED.pop()
        if run.api.dag_run(SURVEY, run.run_id)["state"] in ("success", "failed"):
            continue
        leftovers.append(run.run_id)
        run.api.call("PATCH", f"/dags/{SURVEY}/dagRuns/{run.run_id}", json={"state": "failed"})
        for calls in calls_for(emulator, run.people).values():
            for call in calls:
                if call.get("status") != "ended":
                    hang_up(emulator, call["id"])
    return leftovers


def ensure_pool(api: AirflowApi, slots: int = 10) -> None:
    resp = api.request("GET", f"/pools/{POOL}")
    if resp.status_code == 404:
        api.call("POST", "/pools", json={"name": POOL, "slots": slots, "include_deferred": False})


def start_survey(api: AirflowApi, workdir: Path, name: str, people: list[Contact]) -> SurveyRun:
    csv_path = write_csv(workdir / f"{name}.csv", people)
    results_db = workdir / f"{name}-results.sqlite"
    run_id = api.trigger(
        SURVEY,
        {"contacts_csv": str(csv_path), "results_db": f"sqlite:///{results_db}"},
        run_id=f"{name}__{Path(workdir).name}",
    )
    run = SurveyRun(api, run_id, people, results_db)
    STARTED.append(run)
    return run


def calls_for(emulator: EmulatorHandle, people: list[Contact]) -> dict[str, list[dict[str, Any]]]:
    """The emulator's calls (its admin view: every call it ever created) per person's number."""
    numbers = {p.number for p in people}
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in numbers}
    for call in emulator.calls():
        number = (call.get("customer") or {}).get("number")
        if number in numbers:
            out[number].append(call)
    return out


def assert_nothing_lost_nothing_doubled(
    run: SurveyRun,
    emulator: EmulatorHandle,
    *,
    ended_reason: str | None = None,
    require_analysis: bool = True,
) -> dict[str, Any]:
    """The campaign's guarantee, checked from Airflow's REST API, the emulator and the table.

    * exactly one call per person at the emulator (nothing doubled);
    * every place_call and wait_for_call instance succeeded, one per person (nothing lost);
    * each wait's XCom is the call its place_call created, for the right person, ended, with the
      survey answers (the ``survey_answers`` structured output) the emulator holds for that call
      (``require_analysis=False``: calls the test hung up itself, which may have no conversation:
      the answers, when present, must still be the emulator's);
    * the table has one row per person with that call id; the asset event of this run exists.
    """
    api = run.api
    per_number = calls_for(emulator, run.people)
    counts = Counter({n: len(c) for n, c in per_number.items()})
    doubled = {n: c for n, c in counts.items() if c != 1}
    assert not doubled, f"calls per customer at the emulator should be exactly 1: {doubled}"

    state = api.dag_run(SURVEY, run.run_id)["state"]
    assert state == "success", f"run {run.run_id} is {state}: {api.states(SURVEY, run.run_id)}"
    places, waits = run.tis("place_call"), run.tis("wait_for_call")
    assert [t["map_index"] for t in places] == list(range(len(run.people)))
    assert [t["map_index"] for t in waits] == list(range(len(run.people)))
    assert {t["state"] for t in places + waits} == {"success"}

    placed = run.placed_ids()
    by_id = {c["id"]: c for calls in per_number.values() for c in calls}
    waited = {
        i: _checked_wait(run, emulator, i, placed[i], by_id, ended_reason, require_analysis)
        for i in range(len(run.people))
    }
    rows = _checked_rows(run, placed, waited)
    event = _checked_asset_event(run)
    return {"calls": by_id, "placed": placed, "rows": rows, "event": event}


def _checked_wait(
    run: SurveyRun,
    emulator: EmulatorHandle,
    i: int,
    call_id: str,
    by_id: dict[str, Any],
    ended_reason: str | None,
    require_analysis: bool,
) -> Any:
    """``wait_for_call[i]``'s XCom against the call ``place_call[i]`` made; its survey answers."""
    person = run.people[i]
    truth = by_id.get(call_id)
    assert truth is not None, f"place_call[{i}] returned {call_id}, unknown to the emulator"
    assert truth["customer"]["number"] == person.number, f"place_call[{i}] called the wrong person"
    result = run.api.xcom("vapi_outbound_survey", run.run_id, "wait_for_call", map_index=i)
    assert result["id"] == call_id, f"wait_for_call[{i}] waited on {result['id']}, not {call_id}"
    assert result["status"] == "ended"
    assert result["customer"]["number"] == person.number
    if ended_reason:
        assert result["endedReason"] == ended_reason, (i, result["endedReason"])
    final = emulator.call(call_id)
    outputs = ((final.get("artifact") or {}).get("structuredOutputs") or {}).values()
    want = next((o["result"] for o in outputs if o.get("name") == ANSWERS), None)
    got = (result.get("structuredOutputs") or {}).get(ANSWERS)
    if require_analysis:
        assert want, f"the emulator has no {ANSWERS} for call {call_id}: {final.get('endedReason')}"
        assert got == want, f"wait_for_call[{i}] data: {got} != {want}"
    else:
        assert got is None or got == want, f"wait_for_call[{i}] data: {got} != {want}"
    return got


def _checked_rows(run: SurveyRun, placed: dict[int, str], waited: dict[int, Any]) -> dict[str, Any]:
    """One table row per person, with the call placed for them and the answers their wait saw."""
    rows = {r["phone_number"]: r for r in run.table_rows()}
    assert sorted(rows) == sorted(p.number for p in run.people), "one table row per person"
    for i, person in enumerate(run.people):
        row = rows[person.number]
        assert row["call_id"] == placed[i]
        assert row["person_id"] == person.person_id
        stored = json.loads(row["structured_data"]) if isinstance(row["structured_data"], str) else None
        assert stored == waited[i], f"table row of {person.number}: {stored} != {waited[i]}"
    return rows


def _checked_asset_event(run: SurveyRun) -> dict[str, Any]:
    """The run's one asset event, counting every person's row."""
    events = run.api.get("/assets/events", source_dag_id=SURVEY, source_run_id=run.run_id)["asset_events"]
    assert len(events) == 1, f"one asset event per run, got {events}"
    assert events[0]["name"] == "vapi://call-results", events[0]
    assert events[0]["extra"].get("rows") == len(run.people)
    event: dict[str, Any] = events[0]
    return event


def hang_up(emulator: EmulatorHandle, call_id: str) -> dict[str, Any]:
    """The person hangs up: end the call through the emulator's admin API (NOT recorded in its
    request log, unlike the control URL, so tests can tell it from an end the provider sent)."""
    import httpx

    resp = httpx.post(f"{emulator.url}/_emulator/calls/{call_id}/end", headers=emulator.headers, timeout=10)
    resp.raise_for_status()
    result: dict[str, Any] = resp.json()
    return result
