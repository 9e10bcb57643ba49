"""Run a DAG written by a test with ``dag.test()``, then read task states and XComs back.

``dag.test()`` in Airflow 3 needs the DAG file inside the configured DAGs folder, so the source is
written there and imported from there.
"""

from __future__ import annotations

import importlib.util
import os
import textwrap
from pathlib import Path
from typing import Any

HEADER = """
from datetime import datetime, timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_vapi.operators import PlaceCallOperator, RunStructuredOutputOperator
from airflow_provider_vapi.sensors import CallStatusSensor
"""


def load_dag(dag_id: str, body: str) -> Any:
    """Write ``HEADER + body`` as ``<dags folder>/<dag_id>.py``, import it, return its ``dag``."""
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    spec = importlib.util.spec_from_file_location(f"test_dag_{dag_id}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run_dag(dag_id: str, body: str, logical_date: Any = None) -> Any:
    """``dag.test()`` a DAG written by a test (at ``logical_date`` when given); returns the DagRun."""
    dag = load_dag(dag_id, body)
    if logical_date is None:
        return dag.test()
    try:
        return dag.test(logical_date=logical_date)
    except TypeError:  # Airflow 2
        return dag.test(execution_date=logical_date)


def states(dag_run: Any) -> dict[tuple[str, int], str]:
    """``{(task_id, map_index): state}`` of a finished run."""
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def tries(dag_run: Any) -> dict[tuple[str, int], int]:
    return {(ti.task_id, ti.map_index): ti.try_number for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """One XCom value of a finished run, deserialized (Airflow 3, and 2.11 through the TI)."""
    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2
        ti = dag_run.get_task_instance(task_id, map_index=map_index)
        return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index)
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=dag_run.run_id, key=key, task_ids=task_id, dag_ids=dag_run.dag_id, map_indexes=map_index
        )
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def reset_log_masker() -> None:
    """Forget every secret registered with Airflow's log masker so far.

    The masker is process-wide: a word another test registered as a secret (``{{name}}``, a default
    connection's ``password``) would be hidden inside any later test's rendered text. Tests that
    read the Rendered tab call this first (Airflow 3 has a masker per shared-library copy; 2.11 one
    logging filter).
    """
    import importlib

    for module_name in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        module._secrets_masker().reset_masker()
    try:
        from airflow.utils.log.secrets_masker import _secrets_masker
    except ImportError:
        return
    try:
        masker = _secrets_masker()
    except RuntimeError:  # no logging filter installed: nothing registered
        return
    if hasattr(masker, "reset_masker"):
        masker.reset_masker()
    else:  # Airflow 2.11
        masker.patterns = set()
        masker.replacer = None
