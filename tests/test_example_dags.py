"""The example DAGs: they parse without touching the network, and each one runs green end to end
against the emulator (``dag.test()``: deferrable sensors run their triggers inline), with the
results checked against what the emulator itself reports through ``GET /call/{id}``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dag_runner import xcom

EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"
DAG_IDS = {
    "vapi_call_and_wait",
    "vapi_outbound_survey",
    "vapi_appointment_reminders",
    "vapi_structured_output_backfill",
    "vapi_daily_export",
    "vapi_campaign_from_table",
}

# Short waits against a fast emulator; read when the examples' helper module is first imported.
os.environ["VAPI_EXAMPLES_POLL_INTERVAL"] = "0.1"


def _examples_on_path() -> None:
    """Airflow puts the DAGs folder on sys.path; the examples import their helper module from it."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))


def _dag_bag() -> Any:
    """A DagBag of the example folder alone (on sys.path, as Airflow does for its DAGs)."""
    _examples_on_path()
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=str(EXAMPLES), include_examples=False)
    return DagBag(dag_folder=str(EXAMPLES))


@pytest.fixture(scope="module")
def migrated_db() -> None:
    """The metadata DB of the throw-away Airflow home, migrated once for this module."""
    from airflow.utils.db import upgradedb

    upgradedb()


_BUNDLE_CONFIG = json.dumps(
    [
        {
            "name": "vapi-example-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(EXAMPLES)},
        }
    ]
)


def _test_dag(dag_id: str, **conf: Any) -> Any:
    """``dag.test()`` one example; asserts every task instance succeeded; returns the DagRun.

    ``dag.test()`` serializes DAGs from the configured DAG bundles, so the caller points
    ``AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST`` at the example folder first.
    """
    bag = _dag_bag()
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.dags[dag_id].test(run_conf=conf)
    states = {f"{ti.task_id}[{ti.map_index}]": ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}, states
    return dag_run


@pytest.fixture
def run_dag(migrated_db: None, vapi_conn: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run_dag(dag_id, **conf)``: the finished DagRun of a ``dag.test()`` of that example."""
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", _BUNDLE_CONFIG)
    return _test_dag


def _csv(name: str) -> list[dict[str, str]]:
    with open(EXAMPLES / "data" / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _scripted_outcome(number: str) -> str:
    """The outcome class the emulator's script gives a number (independent of the DAG's code)."""
    from airflow_provider_vapi.emulator.outcomes import outcome_for
    from airflow_provider_vapi.models import classify_ended_reason

    return classify_ended_reason(outcome_for(number).ended_reason).value


def _get_call(emulator: Any, call_id: str) -> dict[str, Any]:
    """The call as Vapi's own API (the emulator's ``GET /call/{id}``) reports it."""
    with emulator.client() as http:
        response = http.get(f"/call/{call_id}")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def _results(db_url: str, run_id: str) -> list[dict[str, Any]]:
    _examples_on_path()
    from vapi_example_support import read_results, results_engine

    engine = results_engine(db_url)
    try:
        return read_results(engine, run_id=run_id)
    finally:
        engine.dispose()


def _post_bodies(emulator: Any) -> list[dict[str, Any]]:
    return [entry["body"] for entry in emulator.requests(method="POST", path="/call")]


# -- parsing ------------------------------------------------------------------------------------


def test_examples_parse_without_errors_and_without_calling_vapi(vapi_emulator, vapi_conn):
    bag = _dag_bag()

    assert bag.import_errors == {}
    assert set(bag.dags) == DAG_IDS
    # The connection points at the emulator, yet parsing sent it nothing: no API call at parse time.
    assert vapi_emulator.requests() == []
    for dag in bag.dags.values():
        assert "vapi" in dag.tags
        assert dag.description


def test_examples_parse_with_no_connection_configured(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VAPI_DEFAULT", raising=False)
    bag = _dag_bag()
    assert bag.import_errors == {}
    assert set(bag.dags) == DAG_IDS


def test_example_defaults_are_the_emulators_seeded_ids():
    _examples_on_path()  # not left to whichever test ran before
    from vapi_example_support import DEFAULT_ASSISTANT_ID, DEFAULT_PHONE_NUMBER_ID, VAPI_CONCURRENCY_LIMIT

    from airflow_provider_vapi.emulator import constants

    assert DEFAULT_ASSISTANT_ID == constants.ASSISTANT_ID
    assert DEFAULT_PHONE_NUMBER_ID == constants.PHONE_NUMBER_ID
    assert VAPI_CONCURRENCY_LIMIT == constants.DEFAULT_CONCURRENCY_LIMIT


def test_call_placing_tasks_run_in_the_vapi_pool_and_wait_deferrably():
    bag = _dag_bag()
    survey = bag.dags["vapi_outbound_survey"]
    reminders = bag.dags["vapi_appointment_reminders"]
    for task in (survey.get_task("place_call"), reminders.get_task("place_reminder")):
        assert task.partial_kwargs["pool"] == "vapi"
    for task in (survey.get_task("wait_for_call"), reminders.get_task("wait_for_reminder")):
        assert task.partial_kwargs["deferrable"] is True
    assert bag.dags["vapi_call_and_wait"].get_task("wait_for_call").deferrable is True


# -- vapi_call_and_wait -------------------------------------------------------------------------


def test_call_and_wait_places_one_call_and_reports_its_structured_data(vapi_emulator, run_dag):
    dag_run = run_dag("vapi_call_and_wait", customer_number="+15550104242", customer_name="Ada")

    bodies = _post_bodies(vapi_emulator)
    assert len(bodies) == 1
    body = bodies[0]
    assert body["assistantId"] == vapi_emulator.assistant_id
    assert body["phoneNumberId"] == vapi_emulator.phone_number_id
    assert body["customer"] == {"number": "+15550104242", "name": "Ada"}
    assert body["assistantOverrides"]["variableValues"] == {"name": "Ada"}
    assert body["assistantOverrides"]["metadata"]["run"] == dag_run.run_id

    call_id = xcom(dag_run, "place_call")
    call = _get_call(vapi_emulator, call_id)
    report = xcom(dag_run, "report")
    assert report == {"outcome": "completed", "structured_data": call["analysis"]["structuredData"]}
    assert set(report["structured_data"]) == {"confirmed", "outcome", "appointmentDate", "partySize"}


# -- vapi_structured_output_backfill ------------------------------------------------------------


def test_backfill_extracts_the_output_from_every_call_of_the_window(vapi_emulator, run_dag):
    emu = vapi_emulator
    emu.configure(speed=1000)
    talked = [emu.create_call("+15550101010")["id"] for _ in range(3)]
    silent = emu.create_call("+15550100001")["id"]  # busy: nobody spoke
    for call_id in [*talked, silent]:
        emu.wait_for(call_id, timeout=30)
    output = emu.create_structured_output("wants_callback", {"type": "boolean"})
    dag_run = run_dag(
        "vapi_structured_output_backfill",
        structured_output_id=output["id"],
        created_after="2000-01-01T00:00:00+00:00",
        created_before="2999-01-01T00:00:00+00:00",
    )
    extracted = xcom(dag_run, "extract")
    assert set(extracted["results"]) == set(talked) and set(extracted["skipped"]) == {silent}
    for call_id in talked:
        on_call = _get_call(emu, call_id)["artifact"]["structuredOutputs"][output["id"]]["result"]
        assert extracted["results"][call_id] is on_call
    assert xcom(dag_run, "report") == {"results": 3, "skipped": 1, "missing": 0}


# -- vapi_outbound_survey -----------------------------------------------------------------------


@dataclass
class SurveyRun:
    """What one ``dag.test()`` of the survey left behind, read back before anything resets."""

    run_id: str
    rows: list[dict[str, Any]]
    calls: dict[str, dict[str, Any]]  # call id -> the call from GET /call/{id}
    bodies: list[dict[str, Any]]  # every POST /call body the emulator received
    summary: dict[str, Any]
    asset_extras: list[dict[str, Any]]


def _asset_extras(run_id: str) -> list[dict[str, Any]]:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        event_fk = Event.asset_id
    except ImportError:  # Airflow 2: assets were called datasets
        from airflow.models.dataset import DatasetEvent as Event  # type: ignore[no-redef]
        from airflow.models.dataset import DatasetModel as Model

        event_fk = Event.dataset_id
    with create_session() as session:
        events = session.scalars(
            select(Event)
            .join(Model, event_fk == Model.id)
            .where(Model.uri.in_(["vapi://call-results/", "vapi://call-results"]), Event.source_run_id == run_id)
        ).all()
        return [dict(e.extra) for e in events]


@pytest.fixture(scope="module")
def survey(
    vapi_emulator_server: Any, migrated_db: None, tmp_path_factory: pytest.TempPathFactory
) -> SurveyRun:
    """One run of the survey DAG shared by the tests below (it is the slowest example)."""
    from tests.conftest import vapi_conn_json

    emulator = vapi_emulator_server
    emulator.reset()
    db_url = f"sqlite:///{tmp_path_factory.mktemp('survey') / 'results.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", _BUNDLE_CONFIG)
        patch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", vapi_conn_json(emulator.url, emulator.api_key, timeout=5))
        dag_run = _test_dag("vapi_outbound_survey", results_db=db_url)
        rows = _results(db_url, dag_run.run_id)
        return SurveyRun(
            run_id=dag_run.run_id,
            rows=rows,
            calls={row["call_id"]: _get_call(emulator, row["call_id"]) for row in rows},
            bodies=_post_bodies(emulator),
            summary=xcom(dag_run, "store_results"),
            asset_extras=_asset_extras(dag_run.run_id),
        )


def test_outbound_survey_loads_one_correct_row_per_person(survey):
    people = _csv("survey_contacts.csv")
    assert sorted(r["person_id"] for r in survey.rows) == sorted(p["person_id"] for p in people)
    by_person = {r["person_id"]: r for r in survey.rows}
    for person in people:
        row = by_person[person["person_id"]]
        call = survey.calls[row["call_id"]]
        assert row["person_name"] == person["name"]
        assert row["phone_number"] == person["number"] == call["customer"]["number"]
        assert row["campaign"] == "survey"
        assert row["dag_id"] == "vapi_outbound_survey"
        assert row["outcome"] == _scripted_outcome(person["number"])
        assert row["ended_reason"] == call["endedReason"]
        assert row["cost"] == pytest.approx(call["cost"])
        outputs = (call.get("artifact") or {}).get("structuredOutputs") or {}
        answers = [o["result"] for o in outputs.values() if o["name"] == "survey_answers"]
        assert row["structured_data"] == (answers[0] if answers else None), "the structured output"
        assert row["summary"] == (call.get("analysis") or {}).get("summary")
        assert row["answers_valid"] is (True if row["structured_data"] is not None else None)
        started, ended = (
            datetime.fromisoformat(call[k].replace("Z", "+00:00")) for k in ("startedAt", "endedAt")
        )
        assert row["duration_seconds"] == pytest.approx((ended - started).total_seconds())


def test_outbound_survey_outcome_counts_are_the_ones_the_csv_scripts(survey):
    # 0001 busy, 0002 no answer, 0003 voicemail, 0007 hangs up at once (no analysis), 6 others talk.
    assert Counter(r["outcome"] for r in survey.rows) == {"completed": 7, "not_reached": 2, "voicemail": 1}
    assert sum(1 for r in survey.rows if r["structured_data"] is not None) == 6
    assert survey.summary["by_outcome"] == {"completed": 7, "not_reached": 2, "voicemail": 1}
    assert survey.summary["with_answers"] == 6
    assert survey.summary["total_cost"] == pytest.approx(round(sum(r["cost"] for r in survey.rows), 4))


def test_outbound_survey_sends_vapi_placeholders_untouched(survey):
    people = {p["number"]: p for p in _csv("survey_contacts.csv")}
    assert len(survey.bodies) == len(people)
    keys = set()
    for body in survey.bodies:
        person = people[body["customer"]["number"]]
        assistant = body["assistant"]
        assert assistant["firstMessage"].startswith(
            "Hi {{name}}, this is Acme calling about your {{product}}."
        )
        assert "{{customer_since}}" in assistant["model"]["messages"][0]["content"]
        overrides = body["assistantOverrides"]
        assert overrides["variableValues"] == {
            "name": person["name"].split()[0],
            "product": person["product"],
            "customer_since": person["customer_since"],
        }
        assert overrides["metadata"]["personId"] == person["person_id"]
        keys.add(overrides["metadata"]["airflowIdempotencyKey"])
    assert len(keys) == len(survey.bodies)  # one key per mapped task instance

    # Vapi (here the emulator) filled the placeholders when the calls started.
    ada = next(c for c in survey.calls.values() if c["customer"]["number"] == "+15550101010")
    assert ada["artifact"]["messages"][0]["message"].startswith(
        "Hi Ada, this is Acme calling about your Analytical Engine."
    )


def test_outbound_survey_emits_the_results_asset_event(survey):
    from airflow import __version__ as airflow_version

    if airflow_version.startswith("2."):
        pytest.skip("Airflow 2's dag.test() does not sync datasets to the DB, so no event is recorded")
    assert survey.asset_extras == [{"run_id": survey.run_id, "campaign": "survey", "rows": 10}]


def test_writing_results_again_rewrites_rows_instead_of_doubling_them(survey, tmp_path):
    from vapi_example_support import results_engine, write_results

    db_url = f"sqlite:///{tmp_path / 'results.db'}"
    engine = results_engine(db_url)
    try:
        write_results(survey.rows, engine)
        write_results(survey.rows, engine)  # a cleared-and-rerun store_results task
    finally:
        engine.dispose()
    assert _results(db_url, survey.run_id) == survey.rows


def test_invalid_structured_data_is_recorded_as_invalid_not_dropped():
    from vapi_example_support import result_row
    from vapi_outbound_survey import SurveyAnswers

    call = {
        "id": "c1",
        "status": "ended",
        "endedReason": "customer-ended-call",
        "customer": {"number": "+15550101010"},
        "analysis": {"structuredData": {"satisfaction": 9, "wouldRecommend": True, "mainTopic": "price"}},
    }
    row = result_row(
        call,
        campaign="survey",
        dag_id="d",
        run_id="r",
        person={"person_id": "p"},
        answers_model=SurveyAnswers,
    )
    assert row["answers_valid"] is False
    assert "satisfaction" in row["validation_error"]
    assert row["structured_data"] == call["analysis"]["structuredData"]


# -- vapi_appointment_reminders -----------------------------------------------------------------


def test_appointment_reminders_call_tomorrows_appointments(vapi_emulator, run_dag, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'results.db'}"

    dag_run = run_dag("vapi_appointment_reminders", results_db=db_url, call_window="now", timezone="UTC")

    tomorrow = (dag_run.data_interval_end.astimezone(UTC).date() + timedelta(days=1)).isoformat()
    due = [a for a in _csv("appointments.csv") if a["days_ahead"] == "1"]
    bodies = _post_bodies(vapi_emulator)
    assert sorted(b["customer"]["number"] for b in bodies) == sorted(a["number"] for a in due)
    for body in bodies:
        plan = body["schedulePlan"]
        earliest, latest = (datetime.fromisoformat(plan[k]) for k in ("earliestAt", "latestAt"))
        assert latest - earliest == timedelta(hours=1)
        assert body["assistantOverrides"]["firstMessage"].startswith(
            "Hello {{name}}, this is the clinic calling about your appointment tomorrow, {{appointmentDate}}"
        )
        assert body["assistantOverrides"]["variableValues"]["appointmentDate"] == tomorrow

    rows = _results(db_url, dag_run.run_id)
    assert sorted(r["person_id"] for r in rows) == sorted(a["patient_id"] for a in due)
    party = {a["patient_id"]: int(a["party_size"]) for a in due}
    for row in rows:
        call = _get_call(vapi_emulator, row["call_id"])
        assert row["campaign"] == "reminders"
        assert row["outcome"] == _scripted_outcome(call["customer"]["number"])
        assert row["structured_data"] == (call.get("analysis") or {}).get("structuredData")
        if row["structured_data"] is not None:
            # The emulator's assistant "hears" the values the DAG sent; the answers validate.
            assert row["answers_valid"] is True
            assert row["structured_data"]["appointmentDate"] == tomorrow
            assert row["structured_data"]["partySize"] == party[row["person_id"]]
    assert Counter(r["outcome"] for r in rows) == {"completed": 2, "not_reached": 1}


def _call_window(run_day: date, **params: Any) -> dict[str, str]:
    bag = _dag_bag()
    task = bag.dags["vapi_appointment_reminders"].get_task("call_window")
    defaults = {"call_window": "business_hours", "timezone": "America/New_York"}
    defaults |= {"business_hours_start": "09:00", "business_hours_end": "17:00"}
    moment = datetime(run_day.year, run_day.month, run_day.day, 12, 0, tzinfo=UTC)
    return task.python_callable(params={**defaults, **params}, data_interval_end=moment)  # type: ignore[no-any-return]


def test_call_window_is_the_business_hours_of_the_run_day_in_the_clinics_timezone():
    from zoneinfo import ZoneInfo

    day = datetime.now(UTC).date() + timedelta(days=3)
    clinic = ZoneInfo("America/New_York")
    opens = datetime(day.year, day.month, day.day, 9, 0, tzinfo=clinic)
    closes = datetime(day.year, day.month, day.day, 17, 0, tzinfo=clinic)
    window = _call_window(day)
    assert window == {"earliestAt": opens.isoformat(), "latestAt": closes.isoformat()}
    assert window["earliestAt"].startswith(f"{day}T09:00:00-0")  # local time with its UTC offset


def test_call_window_skips_when_business_hours_are_over():
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="Too late to call today"):
        _call_window(datetime.now(UTC).date() - timedelta(days=2))


# -- make demo ----------------------------------------------------------------------------------


@pytest.mark.system
def test_make_demo_runs_the_survey_end_to_end(tmp_path):
    """``python -m example_dags.demo`` on its own: emulator subprocess, fresh Airflow home, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VAPI_EXAMPLES"))}
    env["VAPI_DEMO_DIR"] = str(tmp_path / "demo")
    done = subprocess.run(
        [sys.executable, "-m", "example_dags.demo"],
        cwd=EXAMPLES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Outcomes:   completed 7, not_reached 2, voicemail 1  (10 calls)" in done.stdout
    assert (tmp_path / "demo" / "vapi_call_results.db").exists()
