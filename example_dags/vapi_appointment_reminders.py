"""Daily appointment reminders: call everyone booked for tomorrow, within business hours.

``load_appointments`` (stands in for your booking system: copies the shipped sample into an
``appointments`` table) -> ``select_tomorrows_appointments`` (SQL) and ``call_window`` (the
``schedulePlan``) -> ``place_reminder`` (mapped, ``schedule_plan``: Vapi holds each call as
``scheduled`` until the window opens) -> ``wait_for_reminder`` (mapped, deferrable: a call
scheduled for 09:00 costs no worker slot until then) -> ``store_results`` (the same
``vapi_call_results`` table as the survey, ``campaign = 'reminders'``).

The call window: ``call_window="business_hours"`` (default) rings between ``business_hours_start``
and ``business_hours_end`` today in ``timezone``, and skips the calls when the run comes too late
for that; ``call_window="now"`` opens the window at once (what the tests and the emulator use).

The saved assistant's first message is overridden with Vapi placeholders (``{{name}}``,
``{{appointmentDate}}`` ...), filled per call from ``variable_values``; Airflow leaves them alone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from airflow.providers.common.compat.sdk import DAG, Param, task
from pydantic import BaseModel, ConfigDict, Field
from vapi_example_support import (
    DATA_DIR,
    DEFAULT_ASSISTANT_ID,
    DEFAULT_PHONE_NUMBER_ID,
    POLL_INTERVAL,
    RESULTS_ASSET,
    VAPI_POOL,
)

from airflow_provider_vapi.operators import PlaceCallOperator
from airflow_provider_vapi.sensors import CallStatusSensor

APPOINTMENTS_TABLE = "appointments"


class AppointmentConfirmation(BaseModel):
    """The structuredData the assistant's analysisPlan extracts, as this DAG accepts it."""

    model_config = ConfigDict(populate_by_name=True)

    confirmed: bool
    outcome: Literal["confirmed", "rescheduled", "cancelled", "no-decision"]
    appointment_date: date = Field(alias="appointmentDate")
    party_size: int = Field(alias="partySize", ge=1)


def _today(context: dict[str, Any]) -> date:
    """The run's own date in the clinic's timezone (not the wall clock: backfills stay right)."""
    from zoneinfo import ZoneInfo

    moment = context.get("data_interval_end") or context["dag_run"].run_after
    return moment.astimezone(ZoneInfo(context["params"]["timezone"])).date()


def _engine(params: dict[str, Any]) -> Any:
    from vapi_example_support import results_engine

    return results_engine(params["results_db"] or None, params["results_conn_id"] or None)


with DAG(
    dag_id="vapi_appointment_reminders",
    description="Every day, call tomorrow's appointments within business hours; record the answers.",
    schedule="0 7 * * *",  # early enough that the business-hours window is still ahead
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["vapi", "example"],
    params={
        "appointments_csv": Param(str(DATA_DIR / "appointments.csv"), type="string"),
        "assistant_id": Param(DEFAULT_ASSISTANT_ID, type="string"),
        "phone_number_id": Param(DEFAULT_PHONE_NUMBER_ID, type="string"),
        "timezone": Param("America/New_York", type="string", description="the clinic's timezone"),
        "call_window": Param("business_hours", enum=["business_hours", "now"]),
        "business_hours_start": Param("09:00", type="string", pattern=r"^\d\d:\d\d$"),
        "business_hours_end": Param("17:00", type="string", pattern=r"^\d\d:\d\d$"),
        "results_db": Param("", type="string", description="SQLAlchemy URL; empty: SQLite in AIRFLOW_HOME"),
        "results_conn_id": Param("", type="string", description="Airflow SQL connection (wins over URL)"),
    },
) as dag:

    @task
    def load_appointments(**context: Any) -> int:
        """Upsert the shipped sample bookings (dated relative to the run) into ``appointments``."""
        import csv
        from datetime import timedelta

        import sqlalchemy as sa

        today = _today(context)
        with open(context["params"]["appointments_csv"], newline="", encoding="utf-8") as handle:
            rows = [
                {
                    "appointment_id": f"{row['patient_id']}@{today + timedelta(days=int(row['days_ahead']))}",
                    "patient_id": row["patient_id"],
                    "name": row["name"],
                    "number": row["number"].strip(),
                    "appointment_date": str(today + timedelta(days=int(row["days_ahead"]))),
                    "appointment_time": row["time"],
                    "party_size": int(row["party_size"]),
                }
                for row in csv.DictReader(handle)
            ]
        metadata = sa.MetaData()
        table = sa.Table(
            APPOINTMENTS_TABLE,
            metadata,
            sa.Column("appointment_id", sa.String(80), primary_key=True),
            sa.Column("patient_id", sa.String(64), nullable=False),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("number", sa.String(32), nullable=False),
            sa.Column("appointment_date", sa.String(10), nullable=False, index=True),
            sa.Column("appointment_time", sa.String(5), nullable=False),
            sa.Column("party_size", sa.Integer, nullable=False),
        )
        engine = _engine(context["params"])
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                ids = [r["appointment_id"] for r in rows]
                conn.execute(table.delete().where(table.c.appointment_id.in_(ids)))
                conn.execute(table.insert(), rows)
        finally:
            engine.dispose()
        return len(rows)

    @task
    def select_tomorrows_appointments(**context: Any) -> list[dict[str, Any]]:
        """PlaceCallOperator arguments for every appointment of tomorrow (run date + 1)."""
        from datetime import timedelta

        import sqlalchemy as sa

        tomorrow = str(_today(context) + timedelta(days=1))
        engine = _engine(context["params"])
        try:
            with engine.connect() as conn:
                found = conn.execute(
                    sa.text(
                        f"SELECT patient_id, name, number, appointment_date, appointment_time, party_size "
                        f"FROM {APPOINTMENTS_TABLE} WHERE appointment_date = :day ORDER BY appointment_time"
                    ),
                    {"day": tomorrow},
                ).all()
        finally:
            engine.dispose()
        print(f"{len(found)} appointment(s) on {tomorrow}")
        return [
            {
                "customer": {"number": row.number, "name": row.name},
                "variable_values": {
                    "name": row.name.split()[0],
                    "appointmentDate": row.appointment_date,
                    "appointmentTime": row.appointment_time,
                    "partySize": row.party_size,
                },
                "metadata": {"personId": row.patient_id, "personName": row.name},
            }
            for row in found
        ]

    @task
    def call_window(**context: Any) -> dict[str, str]:
        """Vapi's ``schedulePlan``: today's business hours in the clinic's timezone (or now)."""
        from datetime import timedelta
        from zoneinfo import ZoneInfo

        from airflow.providers.common.compat.sdk import AirflowSkipException

        params = context["params"]
        now = datetime.now(ZoneInfo(params["timezone"]))
        if params["call_window"] == "now":
            start, end = now, now + timedelta(hours=1)
        else:
            today = _today(context)

            def at(hhmm: str) -> datetime:
                hour, minute = map(int, hhmm.split(":"))
                return datetime(today.year, today.month, today.day, hour, minute, tzinfo=now.tzinfo)

            start = max(now, at(params["business_hours_start"]))
            end = at(params["business_hours_end"])
            if end - start < timedelta(minutes=15):
                raise AirflowSkipException(f"Too late to call today: business hours end at {end:%H:%M %Z}.")
        return {"earliestAt": start.isoformat(), "latestAt": end.isoformat()}

    loaded = load_appointments()
    appointments = select_tomorrows_appointments()
    window = call_window()
    loaded >> appointments

    place_reminder = PlaceCallOperator.partial(
        task_id="place_reminder",
        assistant_id="{{ params.assistant_id }}",
        phone_number_id="{{ params.phone_number_id }}",
        # Vapi placeholders, filled per call from variable_values when the call starts.
        assistant_overrides={
            "firstMessage": "Hello {{name}}, this is the clinic calling about your appointment "
            "tomorrow, {{appointmentDate}} at {{appointmentTime}}, for {{partySize}}. "
            "Can you still make it?"
        },
        schedule_plan=window,
        pool=VAPI_POOL,
        retries=2,
    ).expand_kwargs(appointments)

    wait_for_reminder = CallStatusSensor.partial(
        task_id="wait_for_reminder",
        deferrable=True,  # a call scheduled for 09:00 waits in the triggerer, not on a worker
        poke_interval=POLL_INTERVAL,
        timeout=14 * 60 * 60,
        pool=VAPI_POOL,
    ).expand(call_id=place_reminder.output)

    @task(outlets=[RESULTS_ASSET])
    def store_results(calls: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        """One validated row per call in the shared results table; emits the asset event."""
        from vapi_example_support import store_call_results

        params = context["params"]
        return store_call_results(
            calls,
            campaign="reminders",
            answers_model=AppointmentConfirmation,
            context=context,
            db_url=params["results_db"] or None,
            conn_id=params["results_conn_id"] or None,
        )

    store_results(wait_for_reminder.output)
