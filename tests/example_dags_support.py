"""What the example-DAG tests share (a pytest plugin, see tests/conftest.py): the example folder,
a DagBag of it, a migrated metadata DB, ``run_dag`` (a checked ``dag.test()`` of one example) and
readers of what a run left behind (its CSV input, the results table, the calls Vapi holds)."""

from __future__ import annotations

import csv
import json
import os
import sys
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"
DAG_IDS = {
    "vapi_call_and_wait",
    "vapi_outbound_survey",
    "vapi_appointment_reminders",
    "vapi_structured_output_backfill",
    "vapi_daily_export",
    "vapi_campaign_from_table",
}
# Event-driven scheduling (AssetWatcher): this example defines its DAG on Airflow 3 only.
if int(_version("apache-airflow").split(".")[0]) >= 3:
    DAG_IDS.add("vapi_inbound_support_line")

# Short waits against a fast emulator; read when the examples' helper module is first imported.
os.environ["VAPI_EXAMPLES_POLL_INTERVAL"] = "0.1"


def examples_on_path() -> None:
    """Airflow puts the DAGs folder on sys.path; the examples import their helper module from it."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))


def dag_bag() -> Any:
    """A DagBag of the example folder alone (on sys.path, as Airflow does for its DAGs)."""
    examples_on_path()
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


BUNDLE_CONFIG = json.dumps(
    [
        {
            "name": "vapi-example-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(EXAMPLES)},
        }
    ]
)


def checked_dag_test(dag_id: str, **conf: Any) -> Any:
    """``dag.test()`` one example; asserts every task instance succeeded; returns the DagRun.

    ``dag.test()`` serializes DAGs from the configured DAG bundles, so the caller points
    ``AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST`` at the example folder first.
    """
    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.dags[dag_id].test(run_conf=conf)
    states = {f"{ti.task_id}[{ti.map_index}]": ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}, states
    return dag_run


@pytest.fixture
def run_dag(migrated_db: None, vapi_conn: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run_dag(dag_id, **conf)``: the finished DagRun of a ``dag.test()`` of that example."""
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", BUNDLE_CONFIG)
    return checked_dag_test


def example_csv(name: str) -> list[dict[str, str]]:
    with open(EXAMPLES / "data" / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def scripted_outcome(number: str) -> str:
    """The outcome class the emulator's script gives a number (independent of the DAG's code)."""
    from airflow_provider_vapi.emulator.outcomes import outcome_for
    from airflow_provider_vapi.models import classify_ended_reason

    return classify_ended_reason(outcome_for(number).ended_reason).value


def get_call(emulator: Any, call_id: str) -> dict[str, Any]:
    """The call as Vapi's own API (the emulator's ``GET /call/{id}``) reports it."""
    with emulator.client() as http:
        response = http.get(f"/call/{call_id}")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def results_rows(db_url: str, run_id: str) -> list[dict[str, Any]]:
    examples_on_path()
    from vapi_example_support import read_results, results_engine

    engine = results_engine(db_url)
    try:
        return read_results(engine, run_id=run_id)
    finally:
        engine.dispose()


def post_bodies(emulator: Any) -> list[dict[str, Any]]:
    return [entry["body"] for entry in emulator.requests(method="POST", path="/call")]
