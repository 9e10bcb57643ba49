"""The example DAGs: they parse without touching the network, and each one runs green end to end
against the emulator (``dag.test()``: deferrable sensors run their triggers inline), with the
results checked against what the emulator itself reports through ``GET /call/{id}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.dag_runner import xcom
from tests.example_dags_support import (
    BUNDLE_CONFIG,
    DAG_IDS,
    checked_dag_test,
    dag_bag,
    example_csv,
    examples_on_path,
    get_call,
    post_bodies,
    results_rows,
    scripted_outcome,
)

# -- parsing ------------------------------------------------------------------------------------


def test_examples_parse_without_errors_and_without_calling_vapi(vapi_emulator, vapi_conn):
    bag = dag_bag()

    assert bag.import_errors == {}
    assert set(bag.dags) == DAG_IDS
    # The connection points at the emulator, yet parsing sent it nothing: no API call at parse time.
    assert vapi_emulator.requests() == []
    for dag in bag.dags.values():
        assert "vapi" in dag.tags
        assert dag.description


def test_examples_parse_with_no_connection_configured(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VAPI_DEFAULT", raising=False)
    bag = dag_bag()
    assert bag.import_errors == {}
    assert set(bag.dags) == DAG_IDS


def test_example_defaults_are_the_emulators_seeded_ids():
    examples_on_path()  # not left to whichever test ran before
    from vapi_example_support import DEFAULT_ASSISTANT_ID, DEFAULT_PHONE_NUMBER_ID, VAPI_CONCURRENCY_LIMIT

    from airflow_provider_vapi.emulator import constants

    assert DEFAULT_ASSISTANT_ID == constants.ASSISTANT_ID
    assert DEFAULT_PHONE_NUMBER_ID == constants.PHONE_NUMBER_ID
    assert VAPI_CONCURRENCY_LIMIT == constants.DEFAULT_CONCURRENCY_LIMIT


def test_call_placing_tasks_run_in_the_vapi_pool_and_wait_deferrably():
    bag = dag_bag()
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

    bodies = post_bodies(vapi_emulator)
    assert len(bodies) == 1
    body = bodies[0]
    assert body["assistantId"] == vapi_emulator.assistant_id
    assert body["phoneNumberId"] == vapi_emulator.phone_number_id
    assert body["customer"] == {"number": "+15550104242", "name": "Ada"}
    assert body["assistantOverrides"]["variableValues"] == {"name": "Ada"}
    assert body["assistantOverrides"]["metadata"]["run"] == dag_run.run_id

    call_id = xcom(dag_run, "place_call")
    call = get_call(vapi_emulator, call_id)
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
        on_call = get_call(emu, call_id)["artifact"]["structuredOutputs"][output["id"]]["result"]
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
            .where(
                Model.uri.in_(["vapi://call-results/", "vapi://call-results"]), Event.source_run_id == run_id
            )
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
        patch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", BUNDLE_CONFIG)
        patch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", vapi_conn_json(emulator.url, emulator.api_key, timeout=5))
        dag_run = checked_dag_test("vapi_outbound_survey", results_db=db_url)
        rows = results_rows(db_url, dag_run.run_id)
        return SurveyRun(
            run_id=dag_run.run_id,
            rows=rows,
            calls={row["call_id"]: get_call(emulator, row["call_id"]) for row in rows},
            bodies=post_bodies(emulator),
            summary=xcom(dag_run, "store_results"),
            asset_extras=_asset_extras(dag_run.run_id),
        )


def test_outbound_survey_loads_one_correct_row_per_person(survey):
    people = example_csv("survey_contacts.csv")
    assert sorted(r["person_id"] for r in survey.rows) == sorted(p["person_id"] for p in people)
    by_person = {r["person_id"]: r for r in survey.rows}
    for person in people:
        row = by_person[person["person_id"]]
        call = survey.calls[row["call_id"]]
        assert row["person_name"] == person["name"]
        assert row["phone_number"] == person["number"] == call["customer"]["number"]
        assert row["campaign"] == "survey"
        assert row["dag_id"] == "vapi_outbound_survey"
        assert row["outcome"] == scripted_outcome(person["number"])
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
    people = {p["number"]: p for p in example_csv("survey_contacts.csv")}
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
    assert results_rows(db_url, survey.run_id) == survey.rows


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
