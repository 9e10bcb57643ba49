"""A schedule through real ``dag.test()`` runs: an upstream task returns the try set's rows, the
operator is mapped over them (``expand``) or given them as a batch; Airflow makes the context, the
retries (``retries``, no delay) and the mapping; a clear is ``dag.test()`` again at the same
logical date (the same dag run, its task instances cleared). The faults and kills are the same
transport's (:mod:`.faults`); a kill surfaces as the try's failure."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from airflow_provider_vapi.operators import PlaceCallOperator, RunCampaignOperator
from tests.simulation.driver import TASK_ID, Outcome, Record, Run, set_skew
from tests.simulation.faults import WorkerKilled
from tests.simulation.plan import Schedule

#: dag_id -> the running schedule (dag.test() runs tasks in this process).
RUNS: dict[str, DagTestRun] = {}
_LOCK = threading.Lock()


def prepare_airflow() -> None:
    """A migrated metadata DB (what the tests' ``airflow_db`` fixture does)."""
    from airflow.utils import db

    db.initdb()


def rows_for(dag_id: str) -> list[Any]:
    """What the upstream task returns in the current try set."""
    run = RUNS[dag_id]
    return list(run.schedule.sets[run.set_index].rows)


class _Simulated:
    """Runs the operator's own ``execute`` with its hook's client on the try's faulty transport."""

    def execute(self, context: Any, **sentinel: Any) -> Any:
        # ``sentinel``: Airflow 2.11's ExecutorSafeguard passes its key to ``execute``, for the
        # operator's own (wrapped) ``execute`` below.
        ti = context["ti"]
        run = RUNS[ti.dag_id]
        map_index = max(int(getattr(ti, "map_index", -1) or 0), 0)
        try_number = int(ti.try_number)
        fate = run.schedule.fate(run.set_index, map_index, try_number)
        fate.overlap_at = None  # two workers: the direct driver's (dag.test runs one try at a time)
        transport = run.driver.instrument(self, fate)
        outcome = Outcome(try_number, False)
        clear_number = getattr(context.get("dag_run"), "clear_number", None)
        try:
            value = super().execute(context, **sentinel)  # type: ignore[misc]
        except WorkerKilled as exc:
            outcome.error = f"killed ({exc})"
            raise RuntimeError(f"the worker died ({exc})") from None
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            raise
        else:
            outcome.ok, outcome.value = True, value
            return value
        finally:
            outcome.trace = transport.trace
            with _LOCK:
                run.driver.note(run.schedule.sets[run.set_index], map_index, outcome, fate,
                                prefix=f"(clear_number {clear_number}) ")  # fmt: skip
            self.hook.close()  # type: ignore[attr-defined]


class SimPlaceCall(_Simulated, PlaceCallOperator):
    pass


class SimCampaign(_Simulated, RunCampaignOperator):
    pass


DAG_BODY = """
from airflow.providers.common.compat.sdk import task
from tests.simulation.dagtest import SimCampaign, SimPlaceCall, rows_for

with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
    @task
    def rows():
        return rows_for({dag_id!r})

    common = dict(task_id={task_id!r}, vapi_conn_id={conn_id!r}, retries={retries},
                  retry_delay=timedelta(seconds=0))
    if {kind!r} == "mapped":
        SimPlaceCall.partial(
            **common, assistant_id={assistant!r}, phone_number_id={line!r}, wait_for_completion=False,
        ).expand(customer=rows())
    elif {kind!r} == "batch":
        SimPlaceCall(**common, assistant_id={assistant!r}, phone_number_id={line!r}, customers=rows(),
                     wait_for_completion=False, fail_on_batch_errors={fail_on_batch_errors!r})
    else:
        SimCampaign(**common, assistant_id={assistant!r}, phone_number_id={line!r}, customers=rows(),
                    name="{dag_id} campaign", wait_for_completion=False)
"""


class DagTestRun:
    """One schedule, each try set one ``dag.test()`` of the same logical date."""

    def __init__(self, emu: Any, schedule: Schedule, conn_id: str) -> None:
        self.emu = emu
        self.schedule = schedule
        self.driver = Run(emu, schedule, conn_id)
        self.set_index = 0

    def run(self) -> Record:
        from tests.dag_runner import load_dag, states, xcom

        s, emu = self.schedule, self.emu
        dag = load_dag(
            s.dag_id,
            DAG_BODY.format(
                dag_id=s.dag_id,
                task_id=TASK_ID,
                conn_id=self.driver.conn_id,
                retries=s.retries,
                kind=s.kind,
                assistant=emu.assistant_id,
                line=emu.phone_number_id,
                fail_on_batch_errors=s.fail_on_batch_errors,
            ),
        )
        RUNS[s.dag_id] = self
        logical_date = datetime.now(UTC).replace(microsecond=0)
        record = self.driver.record
        try:
            for try_set in s.sets:
                self.set_index = try_set.index
                if try_set.index > 0:
                    self.driver.in_flight.drain()
                set_skew(emu, try_set.skew)
                record.steps.append(f"  set {try_set.index}: dag.test() (Vapi clock {try_set.skew:+.0f}s)")
                try:
                    dag_run = dag.test(logical_date=logical_date)
                except TypeError:  # Airflow 2
                    dag_run = dag.test(execution_date=logical_date)
                results: dict[int, Outcome] = {}
                for (task_id, map_index), state in states(dag_run).items():
                    if task_id != TASK_ID or state == "removed":
                        continue
                    index = max(map_index, 0)
                    ok = state == "success"
                    value = xcom(dag_run, TASK_ID, map_index=map_index) if ok else None
                    last = [x for x in record.steps if f"map {index} try" in x]
                    outcome = Outcome(0, ok, value=value, error="" if ok else (last[-1] if last else state))
                    outcome.persons = (
                        [try_set.rows[index]] if s.kind == "mapped" else [
                            r if isinstance(r, dict) else {"number": r} for r in try_set.rows
                        ]
                    )  # fmt: skip
                    results[index] = outcome
                record.results.append(results)
            self.driver.in_flight.drain()
        finally:
            set_skew(emu, 0)
            RUNS.pop(s.dag_id, None)
        return record
