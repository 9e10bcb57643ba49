"""Shared by the example DAGs: data files, the results table, the pool, and a few knobs.

DAG files import this at parse time, so the top of this module imports only the standard library
and Airflow's compat layer; SQLAlchemy and pydantic are imported inside the functions that run in
tasks. Airflow puts the DAGs folder on ``sys.path``, which is how ``import vapi_example_support``
works from a DAG file (copy this file next to the DAGs).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.engine import Engine

#: CSV and other files shipped with the examples.
DATA_DIR = Path(__file__).resolve().parent / "data"

#: The pool every call-placing task runs in. Create it once, sized to your Vapi concurrency limit
#: (10 simultaneous calls per account by default):
#:     airflow pools set vapi 10 "Vapi: simultaneous calls"
VAPI_POOL = "vapi"
VAPI_CONCURRENCY_LIMIT = 10

#: Seconds between status checks while waiting for a call. Real calls last minutes, so 10 s is
#: plenty; the demo and the tests, against a fast emulator, set ``VAPI_EXAMPLES_POLL_INTERVAL``.
POLL_INTERVAL = float(os.environ.get("VAPI_EXAMPLES_POLL_INTERVAL", "10"))

#: The seeded assistant and phone number of the bundled emulator (``vapi-emulator`` prints them).
#: Against Vapi, pass your own ids as DAG params (or change these defaults).
DEFAULT_ASSISTANT_ID = "a55157a0-0000-4000-8000-000000000001"
DEFAULT_PHONE_NUMBER_ID = "b0b0f0e0-0000-4000-8000-000000000001"

#: One row per call, written by the survey and the reminder DAGs.
RESULTS_TABLE = "vapi_call_results"
#: The asset event downstream DAGs can be scheduled on (``schedule=[RESULTS_ASSET]``).
RESULTS_ASSET = Asset("vapi://call-results")
RESULTS_DB_FILE = "vapi_call_results.db"


def default_results_db_url() -> str:
    """A SQLite file in the Airflow home: works anywhere, no server needed."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return f"sqlite:///{Path(home) / RESULTS_DB_FILE}"


def results_engine(db_url: str | None = None, conn_id: str | None = None) -> Engine:
    """The SQLAlchemy engine of the results database.

    ``conn_id`` (an Airflow connection whose hook is SQL-capable, e.g. ``postgres`` with its
    provider installed) wins over ``db_url`` (any SQLAlchemy URL); with neither, a SQLite file in
    the Airflow home.
    """
    from sqlalchemy import create_engine

    if conn_id:
        from airflow.providers.common.compat.sdk import BaseHook

        hook = BaseHook.get_connection(conn_id).get_hook()
        get_engine = getattr(hook, "get_sqlalchemy_engine", None)
        if get_engine is None:
            raise ValueError(
                f"Connection {conn_id!r} (type {type(hook).__name__}) has no SQLAlchemy engine: use a "
                "SQL connection (postgres, mysql, sqlite ... with its provider) or pass results_db."
            )
        engine: Engine = get_engine()
        return engine
    return create_engine(db_url or default_results_db_url())


def _table(metadata: Any) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        RESULTS_TABLE,
        metadata,
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("campaign", sa.String(64), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("person_id", sa.String(64)),
        sa.Column("person_name", sa.String(128)),
        sa.Column("phone_number", sa.String(32)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("ended_reason", sa.String(160)),
        sa.Column("answers_valid", sa.Boolean),
        sa.Column("validation_error", sa.Text),
        sa.Column("structured_data", sa.JSON),
        sa.Column("summary", sa.Text),
        sa.Column("success_evaluation", sa.String(64)),
        sa.Column("cost", sa.Float),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("ended_at", sa.String(32)),
        sa.Column("recorded_at", sa.String(32), nullable=False),
    )


def result_row(
    call: Mapping[str, Any],
    *,
    campaign: str,
    dag_id: str,
    run_id: str,
    person: Mapping[str, Any],
    answers_model: type[BaseModel],
    answers_output: str | None = None,
) -> dict[str, Any]:
    """One table row from a finished call (the sensor's XCom) and the person it was for.

    The answers are the structured output named ``answers_output`` (``call["structuredOutputs"]``),
    or the analysis' ``structuredData`` for an assistant still on ``analysisPlan``. They are
    validated against ``answers_model``; the row keeps what Vapi sent and says whether it was
    valid, so a bad answer is visible instead of silently dropped.
    """
    from pydantic import ValidationError

    from airflow_provider_vapi.models import Call

    parsed = Call.model_validate(dict(call))
    outputs = call.get("structuredOutputs") or {}
    data = outputs.get(answers_output) if answers_output else parsed.structured_data
    valid: bool | None = None
    error: str | None = None
    if data is not None:
        try:
            answers_model.model_validate(data)
            valid = True
        except ValidationError as exc:
            valid = False
            error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    evaluation = parsed.success_evaluation
    return {
        "call_id": parsed.id,
        "campaign": campaign,
        "dag_id": dag_id,
        "run_id": run_id,
        "person_id": person.get("person_id"),
        "person_name": person.get("name"),
        "phone_number": (parsed.customer or {}).get("number"),
        "outcome": parsed.outcome.value,
        "ended_reason": parsed.ended_reason,
        "answers_valid": valid,
        "validation_error": error,
        "structured_data": data,
        "summary": parsed.summary,
        "success_evaluation": None if evaluation is None else str(evaluation),
        "cost": parsed.cost,
        "duration_seconds": parsed.duration_seconds,
        "ended_at": call.get("endedAt"),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(rows: list[dict[str, Any]], engine: Engine) -> int:
    """Create the table if needed and upsert the rows by call id (a re-run rewrites, never doubles)."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    table = _table(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        ids = [row["call_id"] for row in rows]
        if ids:
            conn.execute(table.delete().where(table.c.call_id.in_(ids)))
            conn.execute(table.insert(), rows)
    return len(rows)


def read_results(engine: Engine, run_id: str | None = None) -> list[dict[str, Any]]:
    """The rows of the results table (of one DAG run when ``run_id`` is given), oldest person first."""
    import sqlalchemy as sa

    table = _table(sa.MetaData())
    query = sa.select(table).order_by(table.c.person_id, table.c.call_id)
    if run_id is not None:
        query = query.where(table.c.run_id == run_id)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def store_call_results(
    calls: Any,
    *,
    campaign: str,
    answers_model: type[BaseModel],
    context: Mapping[str, Any],
    answers_output: str | None = None,
    db_url: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """What a results task does: one validated row per finished call, upserted; the asset event.

    ``calls`` is the XCom of a (mapped) ``CallStatusSensor``: each call's compact result. Each
    call finds its person through the ``personId`` / ``personName`` its ``metadata`` carried.
    Call it from a task that has ``outlets=[RESULTS_ASSET]``.
    """
    dag_run = context["dag_run"]
    rows = []
    # Index rather than iterate: mapped XComs are fetched one by one, and iterating past the last
    # one logs a harmless but alarming "XCom not found".
    for call in (calls[i] for i in range(len(calls))):
        meta = call.get("metadata") or (call.get("assistantOverrides") or {}).get("metadata") or {}
        rows.append(
            result_row(
                call,
                campaign=campaign,
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
                person={"person_id": meta.get("personId"), "name": meta.get("personName")},
                answers_model=answers_model,
                answers_output=answers_output,
            )
        )
    engine = results_engine(db_url, conn_id)
    try:
        write_results(rows, engine)
    finally:
        engine.dispose()
    summary = summarize(rows)
    print(format_summary(summary))
    context["outlet_events"][RESULTS_ASSET].extra = {
        "run_id": dag_run.run_id,
        "campaign": campaign,
        "rows": len(rows),
    }
    return {**summary, "database": engine.url.render_as_string(hide_password=True)}


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts by outcome, invalid answers and total cost: what a campaign report starts with."""
    rows = list(rows)
    by_outcome = Counter(str(r["outcome"]) for r in rows)
    return {
        "calls": len(rows),
        "by_outcome": dict(sorted(by_outcome.items())),
        "with_answers": sum(1 for r in rows if r.get("answers_valid")),
        "invalid_answers": sum(1 for r in rows if r.get("answers_valid") is False),
        "total_cost": round(sum(float(r.get("cost") or 0) for r in rows), 4),
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """A one-line, log-friendly rendering of :func:`summarize`."""
    counts = ", ".join(f"{k}={v}" for k, v in summary["by_outcome"].items())
    return (
        f"{summary['calls']} call(s): {counts}; {summary['with_answers']} with valid answers, "
        f"{summary['invalid_answers']} invalid; total cost ${summary['total_cost']:.4f}"
    )


def dumps(value: Any) -> str:
    """Compact JSON for logs."""
    return json.dumps(value, sort_keys=True, default=str)
