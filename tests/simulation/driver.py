"""Run a schedule: each try calls the operator's own ``execute()`` with a context built like
Airflow's (``ti``, ``dag_run`` with ``run_after``/``clear_number``, and on Airflow 3.3 a
``task_state_store`` that outlives tries and clears), the hook's client under a
:class:`~.faults.FaultyTransport`. Nothing of the provider is replaced."""

from __future__ import annotations

import inspect
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.operators import PlaceCallOperator, RunCampaignOperator
from tests.simulation.faults import FaultyTransport, InFlight, WorkerKilled
from tests.simulation.plan import Schedule, TryFate, TrySet

TASK_ID = "call"


def accepts_dedupe_key() -> bool:
    """Whether the code under test has ``PlaceCallOperator(dedupe_key=...)``."""
    return "dedupe_key" in inspect.signature(PlaceCallOperator.__init__).parameters


def set_skew(emu: Any, seconds: float) -> bool:
    """Skew Vapi's clock (the emulator's clock offset); False when this emulator has none."""
    setter = getattr(emu, "set_clock_offset", None)
    if setter is None:
        return False
    setter(seconds)
    return True


def connection(emu: Any, schedule: Schedule, conn_id: str) -> str:
    """``AIRFLOW_CONN_<conn_id>``: the emulator, short timeouts, a settle longer than the slowest
    late answer."""
    extra = {
        "timeout": schedule.timeout,
        "retry_max_wait": 0.05,
        "retry_total_seconds": 10,
        "max_retries": 6,
        "create_settle_seconds": schedule.settle,
    }
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {"conn_type": "vapi", "host": emu.url, "password": emu.api_key, "extra": extra}
    )
    return conn_id


def _executor_safeguard_in_this_thread() -> None:
    """Airflow 2.11's ``ExecutorSafeguard`` keeps its callers in a thread-local set up only in the
    importing thread; a schedule's tries run in threads of their own (Airflow 3 has no such guard)."""
    try:
        from airflow.models.baseoperator import ExecutorSafeguard
    except ImportError:
        return
    sentinel = getattr(ExecutorSafeguard, "_sentinel", None)
    if sentinel is not None and not hasattr(sentinel, "callers"):
        sentinel.callers = {}


#: The creates a frozen worker is never frozen inside (see ``two_workers``).
_CREATES = frozenset({("POST", "/call"), ("POST", "/v2/campaign")})


class Store:
    """Airflow 3.3's task state store for one (dag run, task, map index): outlives tries and clears."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return json.loads(json.dumps(self.data.get(key, default)))

    def set(self, key: str, value: Any, **_: Any) -> None:
        with self._lock:
            self.data[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        with self._lock:
            self.data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.data.clear()


@dataclass
class Outcome:
    """How one try ended."""

    try_number: int
    ok: bool
    value: Any = None
    error: str = ""
    final: bool = False  #: a failure no retry follows (AirflowFailException, ...)
    trace: list[str] = field(default_factory=list)
    persons: list[Any] = field(default_factory=list)  #: the customers this try was asked to call


@dataclass
class Record:
    """What the driver saw: the steps taken and each map index's last outcome per try set."""

    steps: list[str] = field(default_factory=list)
    results: list[dict[int, Outcome]] = field(default_factory=list)
    skew_applied: bool = True


class Run:
    """One schedule's dag run, driven try by try."""

    def __init__(self, emu: Any, schedule: Schedule, conn_id: str) -> None:
        self.emu = emu
        self.schedule = schedule
        self.conn_id = connection(emu, schedule, conn_id)
        self.run_id = f"manual__{schedule.seed}_{uuid.uuid4().hex[:6]}"
        self.stores: dict[int, Store] = {}
        self.tries: dict[int, int] = {}
        self.xcoms: dict[tuple[int, str], Any] = {}
        self.in_flight = InFlight()
        self.record = Record()
        self.dedupe = accepts_dedupe_key()
        # The run begins now; a clear's gap (minutes to days) is the world it meets, not a clock:
        # every late create has landed, the task state store may have been emptied.
        self.run_after = datetime.now(UTC)
        self.clear_number = 0
        self._lock = threading.Lock()

    # -- the context -----------------------------------------------------------------------------

    def context(self, map_index: int, try_number: int) -> dict[str, Any]:
        s = self.schedule

        def xcom_push(key: str, value: Any) -> None:
            with self._lock:
                self.xcoms[(map_index, key)] = value

        def xcom_pull(
            task_ids: Any = None, key: str = "return_value", map_indexes: Any = None, **_: Any
        ) -> Any:
            with self._lock:
                if map_indexes is None:
                    return [v for (_, k), v in sorted(self.xcoms.items()) if k == key] or None
                return self.xcoms.get((int(map_indexes), key))

        ti = SimpleNamespace(
            dag_id=s.dag_id,
            run_id=self.run_id,
            task_id=TASK_ID,
            map_index=map_index if s.kind == "mapped" else -1,
            try_number=try_number,
            max_tries=try_number + s.retries,
            start_date=datetime.now(UTC),
            xcom_push=xcom_push,
            xcom_pull=xcom_pull,
        )
        dag_run = SimpleNamespace(
            dag_id=s.dag_id,
            run_id=self.run_id,
            run_after=self.run_after,
            logical_date=self.run_after,
            queued_at=self.run_after,
            start_date=self.run_after,
            clear_number=self.clear_number,
            conf={},
        )
        context: dict[str, Any] = {
            "ti": ti,
            "task_instance": ti,
            "dag_run": dag_run,
            "run_id": self.run_id,
            "logical_date": self.run_after,
            "map_index_template": None,
        }
        if s.store:
            context["task_state_store"] = self.stores.setdefault(map_index, Store())
        return context

    # -- the operator ---------------------------------------------------------------------------

    def operator(self, try_set: TrySet, map_index: int, local_try: int) -> Any:
        s, emu = self.schedule, self.emu
        # A DAG of its own: Airflow's DAG context is process-wide, and a dag.test() lane may be
        # inside a ``with DAG`` on another thread.
        common: dict[str, Any] = {
            "task_id": TASK_ID,
            "vapi_conn_id": self.conn_id,
            "dag": DAG(s.dag_id, schedule=None),
        }
        if s.kind == "campaign":
            return RunCampaignOperator(
                **common,
                customers=[{"number": n} for n in try_set.rows],
                assistant_id=emu.assistant_id,
                phone_number_id=emu.phone_number_id,
                name=f"{s.dag_id} campaign",
                wait_for_completion=False,
            )
        kwargs: dict[str, Any] = {
            **common,
            "assistant_id": emu.assistant_id,
            "phone_number_id": emu.phone_number_id,
            "wait_for_completion": False,
            "fail_on_batch_errors": s.fail_on_batch_errors,
        }
        if s.kind == "batch":
            kwargs["customers"] = self.batch_rows(try_set, local_try)
        else:
            row = try_set.rows[map_index]
            kwargs["customer"] = row["number"] if isinstance(row, dict) else row
            if isinstance(row, dict) and self.dedupe:
                kwargs["dedupe_key"] = row["dedupe_key"]
        return PlaceCallOperator(**kwargs)

    def batch_rows(self, try_set: TrySet, local_try: int) -> list[Any]:
        rows = try_set.rows
        for after, edited in sorted(try_set.batch_edits.items()):
            if local_try >= after:
                rows = edited
        return [r if isinstance(r, dict) else {"number": r} for r in rows]

    def persons(self, try_set: TrySet, map_index: int, local_try: int) -> list[Any]:
        if self.schedule.kind == "mapped":
            return [try_set.rows[map_index]]
        if self.schedule.kind == "batch":
            return self.batch_rows(try_set, local_try)
        return list(try_set.rows)

    def instrument(self, op: Any, fate: TryFate, on_request: Any = None) -> FaultyTransport:
        """The operator's hook, its client on a faulty transport (its own, as each try's is)."""
        hook = VapiHook(self.conn_id)
        transport = FaultyTransport(fate, self.in_flight, on_request=on_request)
        hook._client = httpx.Client(**hook.settings.client_kwargs(), transport=transport)
        op.__dict__["hook"] = hook
        return transport

    # -- one try -----------------------------------------------------------------------------------

    def one_try(
        self,
        try_set: TrySet,
        map_index: int,
        try_number: int,
        local_try: int,
        fate: TryFate,
        on_request: Any = None,
    ) -> Outcome:
        from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

        op = self.operator(try_set, map_index, local_try)
        transport = self.instrument(op, fate, on_request)
        context = self.context(map_index, try_number)
        _executor_safeguard_in_this_thread()
        try:
            value = op.execute(context)
        except WorkerKilled as exc:
            outcome = Outcome(try_number, False, error=f"killed ({exc})")
        except AirflowSkipException as exc:
            outcome = Outcome(try_number, True, value=None, error=f"skipped: {exc}")
        except AirflowFailException as exc:
            outcome = Outcome(try_number, False, error=f"{type(exc).__name__}: {exc}", final=True)
        except Exception as exc:
            outcome = Outcome(try_number, False, error=f"{type(exc).__name__}: {exc}")
        else:
            outcome = Outcome(try_number, True, value=value)
        finally:
            op.hook.close()
        outcome.trace = transport.trace
        outcome.persons = self.persons(try_set, map_index, local_try)
        return outcome

    def task_instance(self, try_set: TrySet, map_index: int) -> Outcome:
        """Every try of one map index in one try set, until one succeeds or none is left."""
        s = self.schedule
        local_try = 1
        while True:
            try_number = self.tries.get(map_index, 0) + 1
            self.tries[map_index] = try_number
            fate = s.fate(try_set.index, map_index, try_number)
            if fate.overlap_at is not None and local_try <= s.retries:
                outcome = self.two_workers(try_set, map_index, try_number, local_try, fate)
                local_try += 1
            else:
                outcome = self.one_try(try_set, map_index, try_number, local_try, fate)
                self.note(try_set, map_index, outcome, fate)
            if outcome.ok or outcome.final or local_try > s.retries:
                return outcome
            local_try += 1

    def two_workers(
        self, try_set: TrySet, map_index: int, try_number: int, local_try: int, fate: TryFate
    ) -> Outcome:
        """Try N's worker is presumed dead but goes on; try N+1 starts beside it."""
        started, resumed = threading.Event(), threading.Event()
        first: list[Outcome] = []
        stuck_at = max(1, fate.overlap_at or 1)

        def on_request(number: int, method: str, path: str) -> None:
            # A zombie: worker A hangs at this request (a partition, a GC pause) long enough to be
            # declared dead; try N+1 runs on worker B; then A wakes up and goes on. Not inside a
            # create: a worker frozen between deciding to send a create and its bytes leaving, for
            # longer than create_settle_seconds, is the one window no client can close without an
            # idempotency key on Vapi's side (README, "Retry safety": the limits). It freezes at
            # the first other request from ``stuck_at`` on.
            if number >= stuck_at and not started.is_set() and (method, path) not in _CREATES:
                started.set()
                resumed.wait(120)

        def worker_a() -> None:
            try:
                first.append(self.one_try(try_set, map_index, try_number, local_try, fate, on_request))
            finally:
                started.set()

        thread = threading.Thread(target=worker_a, name="vapi-sim-worker-a")
        thread.start()
        started.wait(60)
        self.tries[map_index] = try_number + 1
        second_fate = self.schedule.fate(try_set.index, map_index, try_number + 1)
        second_fate.overlap_at = None
        try:
            second = self.one_try(try_set, map_index, try_number + 1, local_try + 1, second_fate)
        finally:
            resumed.set()
        thread.join(120)
        if first:
            self.note(try_set, map_index, first[0], fate, prefix="worker A: ")
        self.note(try_set, map_index, second, second_fate, prefix="worker B (beside A): ")
        return second

    def note(
        self, try_set: TrySet, map_index: int, outcome: Outcome, fate: TryFate, prefix: str = ""
    ) -> None:
        what = "ok" if outcome.ok else ("failed for good" if outcome.final else "failed")
        faults = [t for t in outcome.trace if not t.endswith(": ok")]
        self.record.steps.append(
            f"    {prefix}map {map_index} try {outcome.try_number} [{fate.describe()}]: {what}"
            + (f": {outcome.error[:300]}" if outcome.error else "")
            + (f"\n        faults met: {'; '.join(faults)}" if faults else "")
        )

    # -- the whole schedule ----------------------------------------------------------------------

    def run(self) -> Record:
        s = self.schedule
        for try_set in s.sets:
            if try_set.index > 0:
                self.in_flight.drain()  # a clear minutes to days later: every late create has landed
                self.clear_number += 1
                if try_set.wipe_store:
                    for store in self.stores.values():
                        store.clear()
            if not set_skew(self.emu, try_set.skew) and try_set.skew:
                self.record.skew_applied = False
            self.record.steps.append(
                f"  set {try_set.index} (clear_number {self.clear_number}, Vapi clock {try_set.skew:+.0f}s)"
            )
            indexes = range(len(try_set.rows)) if s.kind == "mapped" else range(1)
            results: dict[int, Outcome] = {}
            threads = []

            def run_index(i: int, ts: TrySet = try_set, into: dict[int, Outcome] = results) -> None:
                into[i] = self.task_instance(ts, i)

            for i in indexes:
                thread = threading.Thread(target=run_index, args=(i,), name=f"vapi-sim-map-{i}")
                threads.append(thread)
                thread.start()
            for thread in threads:
                thread.join(600)
            self.record.results.append(results)
        self.in_flight.drain()
        set_skew(self.emu, 0)
        return self.record
