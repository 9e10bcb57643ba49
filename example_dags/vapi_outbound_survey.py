"""An outbound survey campaign: one Vapi call per person of a CSV, results into a database table.

``read_contacts`` -> ``place_call`` (mapped, one call per person, in the ``vapi`` pool)
-> ``wait_for_call`` (mapped, deferrable) -> ``store_results`` (pydantic-validated answers, one row
per call in ``vapi_call_results``; emits the ``vapi://call-results`` asset event) -> ``summarize``.

* The answers are a structured output (``artifactPlan.structuredOutputs``), Vapi's replacement
  for the deprecated ``analysisPlan.structuredDataPlan``: the sensor waits until it is written
  and hands it on by name. (``vapi_appointment_reminders`` still shows the ``analysisPlan`` way.)

* The assistant is inline (transient). Its prompt uses Vapi placeholders (``{{name}}``,
  ``{{product}}``): the operator renders Airflow's own expressions and sends these untouched; Vapi
  fills them from ``variable_values`` (one set per person) when the call starts.
* Busy, unanswered and voicemail calls are data, not failures: only the ``error`` outcome fails a
  sensor (its default ``failure_outcomes``), so a campaign finishes and reports every person.
* Retries never dial twice: each mapped call carries an idempotency key made of dag, run, task and
  map index, and a retried task re-attaches to the call its earlier try placed.
* Results go to a SQLite file in the Airflow home unless the run's params say otherwise:
  ``results_db`` (any SQLAlchemy URL) or ``results_conn_id`` (an Airflow SQL connection).

The shipped CSV is made for the bundled emulator, whose outcome is scripted by the last four digits
of the number (0001 busy, 0002 no answer, 0003 voicemail, 0007 hangs up at once); against Vapi,
point ``contacts_csv`` at your own file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from airflow.providers.common.compat.sdk import DAG, Param, task
from pydantic import BaseModel, ConfigDict, Field
from vapi_example_support import (
    DATA_DIR,
    DEFAULT_PHONE_NUMBER_ID,
    POLL_INTERVAL,
    RESULTS_ASSET,
    VAPI_POOL,
)

from airflow_provider_vapi.operators import PlaceCallOperator
from airflow_provider_vapi.sensors import CallStatusSensor

#: What the assistant must extract from each conversation: a structured output's JSON Schema.
SURVEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "satisfaction": {"type": "integer", "minimum": 1, "maximum": 5, "description": "1 (bad) to 5"},
        "wouldRecommend": {"type": "boolean", "description": "Would they recommend us to a friend?"},
        "mainTopic": {
            "type": "string",
            "enum": ["price", "quality", "delivery", "support"],
            "description": "What matters most to them.",
        },
    },
    "required": ["satisfaction", "wouldRecommend", "mainTopic"],
}


#: The structured output's name: its key in the sensor's ``result["structuredOutputs"]``.
SURVEY_OUTPUT = "survey_answers"


class SurveyAnswers(BaseModel):
    """The same contract on our side: what ``store_results`` accepts as a valid answer."""

    model_config = ConfigDict(populate_by_name=True)

    satisfaction: int = Field(ge=1, le=5)
    would_recommend: bool = Field(alias="wouldRecommend")
    main_topic: Literal["price", "quality", "delivery", "support"] = Field(alias="mainTopic")


#: An inline assistant. ``{{name}}``, ``{{product}}`` and ``{{customer_since}}`` are Vapi's
#: placeholders, filled from each call's ``variable_values``; Airflow leaves them alone.
SURVEY_ASSISTANT: dict[str, Any] = {
    "name": "Acme satisfaction survey",
    "firstMessage": "Hi {{name}}, this is Acme calling about your {{product}}. "
    "Do you have one minute for three quick questions?",
    "model": {
        "provider": "openai",
        "model": "gpt-4o",
        "messages": [
            {
                "role": "system",
                "content": "You run a short satisfaction survey with {{name}}, a customer since "
                "{{customer_since}} who uses {{product}}. Ask how satisfied they are from 1 to 5, "
                "whether they would recommend Acme, and what matters most to them: price, quality, "
                "delivery or support. Be brief and polite, then end the call.",
            }
        ],
    },
    "voice": {"provider": "vapi", "voiceId": "Elliot"},
    "transcriber": {"provider": "deepgram", "model": "nova-3", "language": "en"},
    "maxDurationSeconds": 300,
    # Vapi's current way to extract data: a structured output, here inline. With a saved one
    # (POST /structured-output, or the dashboard), give "structuredOutputIds": ["<its id>"]. The
    # result reaches the sensor's XCom as result["structuredOutputs"]["survey_answers"].
    "artifactPlan": {
        "structuredOutputs": [
            {
                "name": SURVEY_OUTPUT,
                "description": "The three survey answers.",
                "schema": SURVEY_SCHEMA,
            }
        ]
    },
    "analysisPlan": {"summaryPlan": {"enabled": True}, "successEvaluationPlan": {"enabled": False}},
}

with DAG(
    dag_id="vapi_outbound_survey",
    description="Call everyone in a CSV with a survey assistant; load the answers into a table.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["vapi", "example"],
    params={
        "contacts_csv": Param(
            str(DATA_DIR / "survey_contacts.csv"),
            type="string",
            description="CSV with person_id, name, number (E.164), product, customer_since",
        ),
        "phone_number_id": Param(DEFAULT_PHONE_NUMBER_ID, type="string", description="caller line"),
        "results_db": Param("", type="string", description="SQLAlchemy URL; empty: SQLite in AIRFLOW_HOME"),
        "results_conn_id": Param("", type="string", description="Airflow SQL connection (wins over URL)"),
    },
) as dag:

    @task
    def read_contacts(**context: Any) -> list[dict[str, Any]]:
        """One set of PlaceCallOperator arguments per CSV row (read at run time, not parse time)."""
        import csv

        params = context["params"]
        with open(params["contacts_csv"], newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise ValueError(f"{params['contacts_csv']} has no rows")
        return [
            {
                "customer": {"number": row["number"].strip(), "name": row["name"]},
                "variable_values": {
                    "name": row["name"].split()[0],
                    "product": row["product"],
                    "customer_since": row["customer_since"],
                },
                # Echoed back on the call: how each result finds its person again.
                "metadata": {"personId": row["person_id"], "personName": row["name"]},
            }
            for row in rows
        ]

    contacts = read_contacts()

    place_call = PlaceCallOperator.partial(
        task_id="place_call",
        assistant=SURVEY_ASSISTANT,
        phone_number_id="{{ params.phone_number_id }}",
        name="Acme survey",
        pool=VAPI_POOL,  # sized to Vapi's concurrency limit: airflow pools set vapi 10 "..."
        retries=2,  # safe: a retry re-attaches to the call already placed, never dials again
    ).expand_kwargs(contacts)

    wait_for_call = CallStatusSensor.partial(
        task_id="wait_for_call",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=60 * 60,
        pool=VAPI_POOL,
    ).expand(call_id=place_call.output)

    @task(outlets=[RESULTS_ASSET])
    def store_results(calls: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        """Validate each call's survey answers and upsert one row per call; emit the asset event."""
        from vapi_example_support import store_call_results

        params = context["params"]
        return store_call_results(
            calls,
            campaign="survey",
            answers_model=SurveyAnswers,
            answers_output=SURVEY_OUTPUT,
            context=context,
            db_url=params["results_db"] or None,
            conn_id=params["results_conn_id"] or None,
        )

    @task
    def summarize_campaign(summary: dict[str, Any]) -> None:
        """The campaign report, as the last task's log shows it."""
        print(f"Survey finished: {summary['calls']} calls, total cost ${summary['total_cost']:.4f}")
        for outcome, count in summary["by_outcome"].items():
            print(f"  {outcome:<12} {count}")
        print(f"Valid answers: {summary['with_answers']}; rows in {summary['database']}")

    summarize_campaign(store_results(wait_for_call.output))
