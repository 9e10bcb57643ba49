"""An inbound support line: each call that ends on it becomes a warehouse row, and a callback when it needs one.

Event-driven (Airflow 3). The asset ``vapi_support_line_calls`` has an ``AssetWatcher`` whose
``VapiCallEventTrigger`` runs in the triggerer and emits one asset event per inbound call that
ended on the support line, once its summary and structured outputs are in (or its grace period
ran out). Each event starts a run of this DAG, with the compact call as the event's
``extra["payload"]``:

``ended_calls`` -> ``store_calls`` (one row per call in ``vapi_support_calls``: outcome, summary,
what the caller asked for, the follow-up it needs) -> ``place_callback`` (mapped
``PlaceCallOperator``: one outbound call per caller who needs one) -> ``record_callbacks`` (the
callback's call id goes on its row).

* **A run may hold several calls**: Airflow folds the events that arrive between two scheduler
  loops into one run, so every task handles a list.
* **Replay calls by hand**: trigger the DAG with ``{"call_ids": ["<call id>", ...]}``; those calls
  are read from Vapi. ``make demo-inbound`` drives the DAG this way.
* **Nobody is called back twice**: the watcher sends each call once, but a call in flight when a
  triggerer dies comes again after the restart, in another run (flagged ``possibleRepeat``), and a
  replay or a clear runs calls again too. So each row is an upsert by call id, and a caller whose
  row already names a callback is not called again (checked for every call, flagged or not); a
  retried or cleared ``place_callback`` re-attaches to the call it placed.
* **Who needs a callback** (:func:`follow_up`): the call did not complete (an error, a dropped
  line), the caller hung up before the assistant learned anything, or the ``support_request``
  structured output says the problem is not solved or the caller asked to be called back.
  Callbacks are outbound calls, so this inbound-only watcher never sees them.

The support line's assistant must extract the structured output ``support_request``
(:data:`SUPPORT_REQUEST_SCHEMA`; create it once, in the dashboard or with
``POST /structured-output``, and list it in the assistant's ``artifactPlan.structuredOutputIds``).
Rows go to the examples' SQLite results DB in the Airflow home unless the params say otherwise
(``results_db``: a SQLAlchemy URL, ``results_conn_id``: an Airflow SQL connection).

Airflow 2 has no event-driven scheduling: there this file defines no DAG (land inbound calls with a
scheduled ``ExportCallsOperator`` instead, as ``vapi_daily_export`` does).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow import __version__ as AIRFLOW_VERSION
from airflow.providers.common.compat.sdk import DAG, Param, task
from vapi_example_support import DEFAULT_ASSISTANT_ID, DEFAULT_PHONE_NUMBER_ID, POLL_INTERVAL, VAPI_POOL

from airflow_provider_vapi.operators import PlaceCallOperator

#: The support line (a phone number imported into Vapi): the watcher takes calls on it alone.
SUPPORT_LINE_ID = DEFAULT_PHONE_NUMBER_ID
SUPPORT_TABLE = "vapi_support_calls"
#: The structured output the support assistant extracts (its name: its key in ``structuredOutputs``).
SUPPORT_OUTPUT = "support_request"
SUPPORT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "enum": ["billing", "delivery", "technical", "other"]},
        "resolved": {"type": "boolean", "description": "Was the problem solved during the call?"},
        "wantsCallback": {"type": "boolean", "description": "Did the caller ask to be called back?"},
    },
    "required": ["topic", "resolved", "wantsCallback"],
}


def follow_up(call: dict[str, Any]) -> str | None:
    """Why this call needs a callback, or ``None`` (``call``: the compact call of the event)."""
    if call["outcome"] != "completed":
        return f"call failed: {call.get('endedReason')}"
    request = (call.get("structuredOutputs") or {}).get(SUPPORT_OUTPUT)
    if not isinstance(request, dict):
        return "hung up before saying what they needed"
    if request.get("wantsCallback"):
        return "asked to be called back"
    if request.get("resolved") is False:
        return "not solved on the call"
    return None


def support_table(metadata: Any) -> Any:
    """``vapi_support_calls``: one row per call (SQLAlchemy is imported only when a task runs)."""
    import sqlalchemy as sa

    return sa.Table(
        SUPPORT_TABLE,
        metadata,
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("caller", sa.String(32)),
        sa.Column("name", sa.String(128)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("ended_reason", sa.String(160)),
        sa.Column("summary", sa.Text),
        sa.Column("request", sa.JSON),  # the support_request structured output
        sa.Column("follow_up", sa.Text),  # why it needs a callback; NULL: it does not
        sa.Column("callback_call_id", sa.String(64)),  # the callback placed, once it is
        sa.Column("duration_seconds", sa.Float),
        sa.Column("cost", sa.Float),
        sa.Column("ended_at", sa.String(32)),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
    )


@task
def ended_calls(params: dict[str, Any], triggering_asset_events: Any = None) -> list[dict[str, Any]]:
    """The calls of this run: the payloads of its asset events, or the calls ``call_ids`` names."""
    calls = {
        event.extra["payload"]["id"]: event.extra["payload"]
        for events in (triggering_asset_events or {}).values()
        for event in events
    }
    if params.get("call_ids"):
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_vapi.hooks import VapiHook
        from airflow_provider_vapi.results import call_result

        hook = VapiHook()
        for call_id in params["call_ids"]:
            call = hook.get_call(call_id)
            if not call.is_ended:
                raise AirflowFailException(
                    f"Call {call_id} has not ended yet ({call.status}): replay it later."
                )
            calls[call_id] = call_result(call)
    print(f"{len(calls)} call(s): {', '.join(calls)}")
    return list(calls.values())


@task
def store_calls(calls: list[dict[str, Any]], params: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """Upsert one row per call; the ``PlaceCallOperator`` kwargs of each callback still to place."""
    import sqlalchemy as sa
    from vapi_example_support import results_engine

    now = datetime.now(UTC).isoformat(timespec="seconds")
    rows = [
        {
            "call_id": call["id"],
            "caller": (call.get("customer") or {}).get("number"),
            "name": (call.get("customer") or {}).get("name"),
            "outcome": call["outcome"],
            "ended_reason": call.get("endedReason"),
            "summary": (call.get("analysis") or {}).get("summary"),
            "request": (call.get("structuredOutputs") or {}).get(SUPPORT_OUTPUT),
            "follow_up": follow_up(call),
            "duration_seconds": call.get("durationSeconds"),
            "cost": call.get("cost"),
            "ended_at": call.get("endedAt"),
            "run_id": run_id,
            "recorded_at": now,
        }
        for call in calls
    ]
    metadata = sa.MetaData()
    table = support_table(metadata)
    engine = results_engine(params["results_db"] or None, params["results_conn_id"] or None)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            ids = [row["call_id"] for row in rows]
            # A call seen before keeps the callback already placed for it.
            earlier = sa.select(table.c.call_id, table.c.callback_call_id).where(table.c.call_id.in_(ids))
            placed = dict(conn.execute(earlier).tuples().all())
            for row in rows:
                row["callback_call_id"] = placed.get(row["call_id"])
            conn.execute(table.delete().where(table.c.call_id.in_(ids)))
            if rows:
                conn.execute(table.insert(), rows)
    finally:
        engine.dispose()
    due = [row for row in rows if row["follow_up"] and row["caller"] and not row["callback_call_id"]]
    print(f"{len(rows)} row(s) in {SUPPORT_TABLE}; {len(due)} callback(s) to place")
    return [
        {
            "customer": {"number": row["caller"], **({"name": row["name"]} if row["name"] else {})},
            # {{reason}} and {{summary}} in the callback assistant's prompt, filled by Vapi.
            "variable_values": {"reason": row["follow_up"], "summary": row["summary"] or ""},
            "metadata": {"inboundCallId": row["call_id"]},
        }
        for row in due
    ]


@task
def record_callbacks(callbacks: list[dict[str, Any]], placed: Any, params: dict[str, Any]) -> dict[str, str]:
    """Note each callback's call id on the row of the call it answers: ``{inbound id: callback id}``."""
    import sqlalchemy as sa
    from vapi_example_support import results_engine

    # Map index i placed callbacks[i]. Index rather than iterate: mapped XComs are fetched one by one.
    done = {callbacks[i]["metadata"]["inboundCallId"]: placed[i] for i in range(len(callbacks))}
    table = support_table(sa.MetaData())
    engine = results_engine(params["results_db"] or None, params["results_conn_id"] or None)
    try:
        with engine.begin() as conn:
            for call_id, callback_id in done.items():
                conn.execute(
                    table.update().where(table.c.call_id == call_id).values(callback_call_id=callback_id)
                )
    finally:
        engine.dispose()
    return done


if int(AIRFLOW_VERSION.split(".")[0]) >= 3:  # AssetWatcher: event-driven scheduling is Airflow 3's
    from airflow.sdk import Asset, AssetWatcher

    from airflow_provider_vapi.triggers import VapiCallEventTrigger

    SUPPORT_CALLS = Asset(
        "vapi_support_line_calls",
        watchers=[
            AssetWatcher(
                name="vapi_support_line",
                trigger=VapiCallEventTrigger(
                    direction="inbound", phone_number_id=SUPPORT_LINE_ID, poll_interval=POLL_INTERVAL
                ),
            )
        ],
    )

    with DAG(
        dag_id="vapi_inbound_support_line",
        description="Each inbound Vapi call that ends: a warehouse row, and a callback when it needs one.",
        schedule=[SUPPORT_CALLS],
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["vapi", "example", "inbound"],
        params={
            "call_ids": Param([], type="array", description="replay these calls (empty: the run's events)"),
            "callback_assistant_id": Param(DEFAULT_ASSISTANT_ID, type="string"),
            "results_db": Param(
                "", type="string", description="SQLAlchemy URL (empty: SQLite in AIRFLOW_HOME)"
            ),
            "results_conn_id": Param("", type="string", description="or an Airflow SQL connection"),
        },
    ) as dag:
        callbacks = store_calls(ended_calls())
        place_callback = PlaceCallOperator.partial(
            task_id="place_callback",
            assistant_id="{{ params.callback_assistant_id }}",
            phone_number_id=SUPPORT_LINE_ID,  # the caller sees the support number call back
            name="Support callback",
            pool=VAPI_POOL,
            retries=2,  # safe: a retry re-attaches to the call already placed, never dials again
        ).expand_kwargs(callbacks)
        record_callbacks(callbacks, place_callback.output)
