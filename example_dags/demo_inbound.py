"""``make demo-inbound``: an inbound support line, end to end, with no Vapi account and no network.

1. starts the bundled Vapi emulator and prepares a throw-away Airflow home in ``.demo/``, as
   ``make demo`` does (its helpers, :mod:`example_dags.demo`);
2. parses the example DAGs and takes the ``VapiCallEventTrigger`` of the asset watcher of
   ``vapi_inbound_support_line``;
3. runs that trigger (``trigger.run()``, what the triggerer runs; here its ledger is in memory)
   while six customers call the support line, with mixed outcomes: one event per ended call;
4. runs the DAG on those calls with ``dag.test(run_conf={"call_ids": [...]})`` (the manual
   replay: the same tasks a run started by the events runs), which writes one row per call into
   ``.demo/vapi_call_results.db`` and calls back the customers who need it;
5. prints a row per call, checks it against the emulator's script, and stops the emulator.

Needs Airflow 3 (event-driven scheduling). Exit status 0 only when every step worked. Task logs
go to ``.demo/dag_test_inbound.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import Any

from example_dags.demo import (
    DEMO_DIR,
    EMULATOR_SPEED,
    EXAMPLES,
    HOME,
    RESULTS_DB,
    DemoError,
    Steps,
    _airflow_version,
    _cached_metadata_db,
    _copy_sqlite,
    _create_pool,
    _migrate,
    _output_to,
    _prepare_environment,
    _rel,
    dag_bag,
)

DAG_ID = "vapi_inbound_support_line"
TASK_LOG = DEMO_DIR / "dag_test_inbound.log"
EVENT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Caller:
    """A customer who calls the support line, and what the emulator is scripted to do with it."""

    name: str
    number: str  # the last four digits script the call (0007: hangs up at once, 0004: a platform fault)
    resolved: bool = True  # the support_request structured output says so ...
    wants_callback: bool = False  # ... when the call gets that far
    follow_up: bool = False  # what the DAG should decide


CALLERS = (
    Caller("Ada", "+15550104242"),
    Caller("Grace", "+15550101010", resolved=False, follow_up=True),
    Caller("Alan", "+15550102022", wants_callback=True, follow_up=True),
    Caller("Barbara", "+15550103033"),
    Caller("Edsger", "+15550100007", follow_up=True),  # hangs up before saying anything
    Caller("Linus", "+15550100004", follow_up=True),  # the line fails mid-call
)


def _watcher_trigger(dag: Any) -> Any:
    """The ``VapiCallEventTrigger`` of the DAG's asset watcher: the one the triggerer would run."""
    triggers = [w.trigger for asset in dag.timetable.asset_condition.objects for w in asset.watchers]
    if len(triggers) != 1:
        raise DemoError(f"{DAG_ID} should have one asset watcher, found {len(triggers)}")
    return triggers[0]


async def _collect_events(
    trigger: Any, handle: Any, output_id: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Run the trigger while the callers call; the calls placed and the events' payloads."""
    events: list[dict[str, Any]] = []

    async def watch() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    watching = asyncio.get_running_loop().create_task(watch())
    try:
        # The trigger's first look sets where it starts (calls that end later are delivered).
        deadline = time.monotonic() + EVENT_TIMEOUT
        while not handle.requests(method="GET", path="/call"):
            if watching.done() or time.monotonic() > deadline:
                watching.result()
                raise DemoError("the trigger never listed the calls")
            await asyncio.sleep(0.05)
        call_ids = []
        for caller in CALLERS:
            call = await asyncio.to_thread(
                handle.inject_inbound_call,
                caller.number,
                customer={"name": caller.name},
                assistant_overrides={
                    "artifactPlan": {"structuredOutputIds": [output_id]},
                    # The emulator's "caller" says what these variables hold.
                    "variableValues": {"resolved": caller.resolved, "wantsCallback": caller.wants_callback},
                },
            )
            call_ids.append(call["id"])
        while len(events) < len(call_ids):
            if watching.done() or time.monotonic() > deadline:
                watching.result()
                raise DemoError(f"{len(events)} of {len(call_ids)} events after {EVENT_TIMEOUT:.0f}s")
            await asyncio.sleep(0.05)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    return call_ids, events


def _run(dag: Any, call_ids: list[str]) -> Any:
    with _output_to(TASK_LOG):
        dag_run = dag.test(run_conf={"call_ids": call_ids, "results_db": f"sqlite:///{RESULTS_DB}"})
    states = {f"{ti.task_id}[{ti.map_index}]": ti.state for ti in dag_run.get_task_instances()}
    failed = [name for name, state in states.items() if state != "success"]
    if dag_run.state != "success" or failed:
        raise DemoError(
            f"the DAG run ended {dag_run.state}; not successful: {', '.join(failed) or 'none'}. "
            f"Task logs: {_rel(TASK_LOG)}"
        )
    return dag_run


def _drop_support_table() -> None:
    RESULTS_DB.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(RESULTS_DB)) as db:
        db.execute("DROP TABLE IF EXISTS vapi_support_calls")
        db.commit()


def _rows(call_ids: list[str]) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(RESULTS_DB)) as db:
        db.row_factory = sqlite3.Row
        marks = ",".join("?" * len(call_ids))
        found = db.execute(f"SELECT * FROM vapi_support_calls WHERE call_id IN ({marks})", call_ids)
        by_id = {row["call_id"]: dict(row) for row in found}
    return [by_id[call_id] for call_id in call_ids if call_id in by_id]


def _check(
    call_ids: list[str], events: list[dict[str, Any]], rows: list[dict[str, Any]], posted: int
) -> None:
    if sorted(e["id"] for e in events) != sorted(call_ids):
        raise DemoError(f"the events are not one per call: {[e['id'] for e in events]} for {call_ids}")
    if [row["call_id"] for row in rows] != call_ids:
        raise DemoError(f"expected one row per call, got {len(rows)} rows for {len(call_ids)} calls")
    for caller, row in zip(CALLERS, rows, strict=True):
        if (
            bool(row["follow_up"]) is not caller.follow_up
            or bool(row["callback_call_id"]) is not caller.follow_up
        ):
            raise DemoError(
                f"{caller.name}: follow-up {row['follow_up']!r}, callback {row['callback_call_id']!r}"
            )
    wanted = sum(c.follow_up for c in CALLERS)
    if posted != wanted:
        raise DemoError(f"{posted} callbacks placed, expected {wanted}")


def _short(value: Any, width: int) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[dict[str, Any]]) -> str:
    header = ["Call", "Caller", "Outcome", "Summary", "Follow-up", "Callback", "Duration"]
    body = [
        [
            row["call_id"][:8],
            caller.name,
            row["outcome"],
            _short(row["summary"], 44),
            f"yes, {row['follow_up']}" if row["follow_up"] else "no",
            (row["callback_call_id"] or "-")[:8],
            "-" if row["duration_seconds"] is None else f"{row['duration_seconds'] * EMULATOR_SPEED:.1f}s",
        ]
        for caller, row in zip(CALLERS, rows, strict=True)
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        cells = [c.rjust(widths[i]) if i == len(line) - 1 else c.ljust(widths[i]) for i, c in enumerate(line)]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(line) for line in body)])


def main() -> int:
    print("Vapi provider demo: an inbound support line against the bundled emulator")
    print("(no Vapi account, no network: every call comes in on a local emulator)\n")
    version = _airflow_version()
    if int(version.split(".")[0]) < 3:
        print(
            f"demo failed: needs Airflow 3 (event-driven scheduling); this is Airflow {version}",
            file=sys.stderr,
        )
        return 1
    steps = Steps(total=5)
    from airflow_provider_vapi.emulator.server import EmulatorProcess

    emulator = EmulatorProcess(speed=EMULATOR_SPEED)
    try:
        with steps.step("Starting the Vapi emulator") as note:
            handle = emulator.start()
            note.append(f"{handle.url}, {EMULATOR_SPEED:g}x speed")

        with steps.step("Preparing a throw-away Airflow home") as note:
            shutil.rmtree(HOME, ignore_errors=True)
            HOME.mkdir(parents=True)
            TASK_LOG.unlink(missing_ok=True)
            _drop_support_table()  # the survey's table (make demo) stays
            if _cached_metadata_db().exists():  # before Airflow opens the file
                _copy_sqlite(_cached_metadata_db(), HOME / "airflow.db")
            _prepare_environment(handle.url, handle.api_key)
            with _output_to(TASK_LOG):
                how = _migrate()
                sys.path.insert(0, str(EXAMPLES))  # Airflow does this for its DAGs folder, too
                _create_pool()
            note.append(f"{_rel(HOME)}, metadata DB {how}")

        with steps.step("Parsing the example DAGs") as note:
            with _output_to(TASK_LOG):
                bag = dag_bag(EXAMPLES)
            if bag.import_errors or DAG_ID not in bag.dags:
                raise DemoError(f"{DAG_ID} did not parse: {bag.import_errors}")
            dag = bag.dags[DAG_ID]
            trigger = _watcher_trigger(dag)
            if handle.requests():
                raise DemoError("parsing the DAGs sent requests to Vapi")
            filters = {
                k: v for k, v in trigger.serialize()[1].items() if k in ("direction", "phone_number_id")
            }
            note.append(f"watcher: VapiCallEventTrigger({', '.join(f'{k}={v}' for k, v in filters.items())})")

        with steps.step(f"Watching the line while {len(CALLERS)} customers call") as note:
            from vapi_inbound_support_line import SUPPORT_OUTPUT, SUPPORT_REQUEST_SCHEMA

            # On Vapi: created once and listed in the support assistant's artifactPlan.
            output = handle.create_structured_output(SUPPORT_OUTPUT, SUPPORT_REQUEST_SCHEMA)
            began = time.monotonic()
            with _output_to(TASK_LOG):
                call_ids, events = asyncio.run(_collect_events(trigger, handle, output["id"]))
            note.append(f"{len(events)} asset events, one per ended call, in {time.monotonic() - began:.1f}s")

        with steps.step(f"Running {DAG_ID} on those calls with dag.test()") as note:
            handle.clear_requests()
            dag_run = _run(dag, call_ids)
            posted = len(handle.requests(method="POST", path="/call"))
            rows = _rows(call_ids)
            _check(call_ids, events, rows, posted)
            tis = len(dag_run.get_task_instances())
            note.append(f"{tis} task instances succeeded, {len(rows)} rows, {posted} callbacks placed")
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if TASK_LOG.exists():
            print(f"Task logs: {_rel(TASK_LOG)}", file=sys.stderr)
        return 1
    finally:
        emulator.stop()

    callbacks = sum(1 for row in rows if row["callback_call_id"])
    print(f"\n{_table(rows)}\n")
    print(f"Calls:      {len(rows)} inbound, {len(rows) - callbacks} settled, {callbacks} called back")
    took = max(row["duration_seconds"] or 0 for row in rows)
    print(
        f"Durations:  in emulated time; the emulator's clock runs {EMULATOR_SPEED:g}x "
        f"(a call of {took * EMULATOR_SPEED:.0f}s took {took:.2f}s here)"
    )
    print(f"Database:   {_rel(RESULTS_DB)} (table vapi_support_calls, one row per call)")
    print(
        f'Query it:   sqlite3 {_rel(RESULTS_DB)} "SELECT call_id, outcome, follow_up, callback_call_id '
        'FROM vapi_support_calls"'
    )
    print(f"Task logs:  {_rel(TASK_LOG)}")
    print(f"\nDone in {time.monotonic() - steps.started:.1f}s.")
    return 0


if __name__ == "__main__":
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # As make demo: skip tearing down Airflow's large import graph at interpreter exit.
    os._exit(code)
