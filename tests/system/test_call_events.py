"""DAGs started by calls, on the real Airflow 3.3 deployment: 500 calls end (inbound and outbound,
two assistants, scripted outcomes) while two ``VapiCallEventTrigger`` watchers with different
filters run; the triggerer is SIGKILLed part-way and stays down (``VAPI_EVENTS_DOWNTIME`` seconds,
default 120) while calls keep ending.

Judged from Airflow's own records (REST API: asset events, each run's upstream asset events, the
asset state store) against the emulator's:

* every matching call has an asset event of the right asset and is in a run of the right DAG;
  no other call is;
* no call is in two runs, except an event Airflow stored that the watcher's ledger had not yet
  recorded when the triggerer died (the ledger is read from the state store right after the kill:
  this set is printed, with its size).

Runs are counted after one more call: on SQLite, Airflow 3.3 can leave the last events of a burst
queued until the next event arrives (apache/airflow#62501, fixed upstream by #70972); the number
that waited is printed.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from .deployment import AirflowApi, AirflowDeployment, Emulator
from .procs import pid_alive, wait_until

INBOUND_DAG, TALKED_DAG = "vapi_sys_on_inbound_call", "vapi_sys_on_talked_call"
INBOUND_ASSET, TALKED_ASSET = "vapi_sys_inbound_calls", "vapi_sys_talked_calls"
TAG = {"suite": "call-events"}
TALKED = {"completed", "voicemail"}
DOWNTIME = float(os.environ.get("VAPI_EVENTS_DOWNTIME", "120"))
CALLS = int(os.environ.get("VAPI_EVENTS_CALLS", "500"))
# Last four digits script the outcome: a conversation, voicemail, busy, no answer, a hang-up.
ENDINGS = ["4242", "4242", "0003", "0001", "0002", "0007"]


class Caller(threading.Thread):
    """Calls end, a mix of kinds, at a steady pace (a tenth of them without this suite's tag)."""

    def __init__(self, emu: Any, assistants: list[str], total: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.emu, self.assistants, self.total, self.seconds = emu, assistants, total, seconds
        self.made: list[tuple[str, bool, bool, str]] = []  # (id, inbound, tagged, assistant)
        self.rng = random.Random(25)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(self.total):
                self.made.append(self.one(i))
                time.sleep(self.seconds / self.total)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def one(self, i: int) -> tuple[str, bool, bool, str]:
        inbound = self.rng.random() < 0.6
        tagged = self.rng.random() < 0.9
        assistant = self.rng.choice(self.assistants)
        number = f"+1555250{i % 10}{self.rng.choice(ENDINGS)}"
        overrides = {"metadata": dict(TAG)} if tagged else {"metadata": {"suite": "other"}}
        if inbound:
            call = self.emu.inject_inbound_call(
                number, assistant_id=assistant, ended=self.rng.random() < 0.5, assistant_overrides=overrides
            )
        else:
            call = self.emu.create_call(number, assistantId=assistant, assistantOverrides=overrides)
        return call["id"], inbound, tagged, assistant


class Records:
    """Airflow's metadata database, read as an auditor would (its REST API's ``/assets/events``
    answers 500 while a run it created is still queued: Airflow 3.3 validates ``start_date``)."""

    def __init__(self, deployment: AirflowDeployment) -> None:
        url = deployment.db_url or f"sqlite:///{deployment.home / 'airflow.db'}"
        self.engine = sa.create_engine(url)

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def asset_id(self, name: str) -> int:
        return int(self._rows("SELECT id FROM asset WHERE name = :n", n=name)[0][0])

    def event_ids(self, asset: int) -> list[str]:
        return [str(payload["id"]) for payload in self.payloads(asset)]

    def payloads(self, asset: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT extra FROM asset_event WHERE asset_id = :a ORDER BY id", a=asset)
        return [_json(extra)["payload"] for (extra,) in rows]

    def ledger_done(self, asset: int) -> set[str]:
        rows = self._rows(
            "SELECT value FROM asset_state_store WHERE asset_id = :a AND key = 'vapi_call_events'", a=asset
        )
        return set((_json(rows[0][0]).get("done") or {}).keys()) if rows else set()

    def runs_by_call(self, dag_id: str) -> Counter[str]:
        """How many runs of ``dag_id`` each call is in (by the runs' triggering asset events)."""
        rows = self._rows(
            "SELECT e.extra FROM dag_run r JOIN dagrun_asset_event x ON x.dag_run_id = r.id "
            "JOIN asset_event e ON e.id = x.event_id WHERE r.dag_id = :d",
            d=dag_id,
        )
        return Counter(str(_json(extra)["payload"]["id"]) for (extra,) in rows)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str | bytes) else dict(value)


def first_looks(db: Records, emu: Any, assistant: str) -> list[str]:
    """Canary calls until both watchers deliver one: from then on every call counts."""
    canaries: list[str] = []

    def both_live() -> bool:
        canaries.append(
            emu.inject_inbound_call(
                "+15552509999", assistant_id=assistant, ended=True, assistant_overrides={"metadata": TAG}
            )["id"]
        )
        return bool(db.runs_by_call(INBOUND_DAG)) and bool(db.runs_by_call(TALKED_DAG))

    wait_until(both_live, 240, 5.0, "both watchers to start and deliver a first call")
    return canaries


def expected(emu: Any, made: list[tuple[str, bool, bool, str]], assistant: str) -> tuple[set[str], set[str]]:
    inbound = {cid for cid, is_in, tagged, _ in made if is_in and tagged}
    talked = set()
    for cid, _, tagged, who in made:
        if tagged and who == assistant:
            call = emu.call(cid)
            if _outcome(call) in TALKED:
                talked.add(cid)
    return inbound, talked


def _outcome(call: dict[str, Any]) -> str:
    from airflow_provider_vapi.models import Call

    return Call.model_validate(call).outcome.value


@pytest.fixture
def watchers(deployment: AirflowDeployment, api: AirflowApi) -> Iterator[None]:
    """The two consumer DAGs unpaused (Airflow runs the watchers of unpaused DAGs only), and paused
    again whatever happens: a watcher left running would read the suite's emulator for later tests."""
    deployment.wait_for_dags([INBOUND_DAG, TALKED_DAG])
    for dag_id in (INBOUND_DAG, TALKED_DAG):
        api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    try:
        yield
    finally:
        for dag_id in (INBOUND_DAG, TALKED_DAG):
            api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": True})


@pytest.mark.timeout(1200)
@pytest.mark.usefixtures("watchers")
def test_500_calls_each_start_one_run_of_the_right_dag_across_a_triggerer_sigkill(
    deployment: AirflowDeployment, emulator: Emulator
) -> None:
    emu = emulator.handle
    with emu.client() as http:
        second = http.post("/assistant", json={"name": "call-events second line"}).json()["id"]
    first = emu.assistant_id
    db = Records(deployment)
    canaries = first_looks(db, emu, first)
    ids = {INBOUND_ASSET: db.asset_id(INBOUND_ASSET), TALKED_ASSET: db.asset_id(TALKED_ASSET)}

    before_kill = CALLS * 2 // 5
    caller = Caller(emu, [first, second], CALLS, seconds=DOWNTIME + 40)
    started = time.monotonic()
    caller.start()
    wait_until(lambda: len(caller.made) >= before_kill, 120, 0.5, f"{before_kill} calls before the kill")
    triggerer = deployment.components["triggerer"]
    pids = triggerer.group_pids()
    triggerer.kill()
    wait_until(lambda: not [p for p in pids if pid_alive(p)], 15, 0.1, "the SIGKILLed triggerer to die")
    window = {name: set(db.event_ids(aid)) - db.ledger_done(aid) for name, aid in ids.items()}
    killed_at = time.monotonic()
    time.sleep(max(0.0, DOWNTIME - (time.monotonic() - killed_at)))
    deployment.start_component("triggerer")
    deployment.wait_healthy(90, ["triggerer"])
    caller.join(DOWNTIME + 120)
    assert caller.error is None, caller.error
    ours = {cid for cid, *_ in caller.made}

    def all_ended() -> bool:
        return all(c["status"] == "ended" for c in emu.calls() if c["id"] in ours)

    wait_until(all_ended, 120, 2.0, "every call made to end")
    want_in, want_talked = expected(emu, caller.made, first)

    def delivered() -> bool:
        return want_in <= set(db.event_ids(ids[INBOUND_ASSET])) and want_talked <= set(
            db.event_ids(ids[TALKED_ASSET])
        )

    wait_until(delivered, 300, 3.0, "every matching call's event after the restart")
    delivered_at = time.monotonic()

    def in_runs() -> bool:
        return want_in <= set(db.runs_by_call(INBOUND_DAG)) and want_talked <= set(
            db.runs_by_call(TALKED_DAG)
        )

    # Airflow 3.3 on SQLite: events stored while the scheduler creates a run can wait in the queue
    # for the next event (apache/airflow#62501, fixed by #70972). One more call sweeps them up.
    time.sleep(10)
    stranded = len(want_in - set(db.runs_by_call(INBOUND_DAG))) + len(
        want_talked - set(db.runs_by_call(TALKED_DAG))
    )
    canaries.append(
        emu.inject_inbound_call(
            "+15552509999", assistant_id=first, ended=True, assistant_overrides={"metadata": TAG}
        )["id"]
    )
    wait_until(in_runs, 180, 2.0, "a DAG run for every delivered call")
    time.sleep(5)  # a few more polls: nothing else may come

    report = []
    for dag_id, asset, want in (
        (INBOUND_DAG, INBOUND_ASSET, want_in),
        (TALKED_DAG, TALKED_ASSET, want_talked),
    ):
        events = Counter(db.event_ids(ids[asset]))
        runs = db.runs_by_call(dag_id)
        got = {cid for cid in events if cid in ours}
        assert got == want, f"{asset}: missing {len(want - got)}, not wanted {len(got - want)}"
        assert set(events) - ours <= set(canaries), f"{asset}: events of calls this test did not make"
        twice = {cid for cid, n in events.items() if n > 1}
        firsts: set[str] = set()
        for payload in db.payloads(ids[asset]):
            assert payload["id"] not in firsts or payload.get("possibleRepeat"), (
                f"{asset}: an unflagged repeat"
            )
            firsts.add(payload["id"])
        assert twice <= window[asset], (
            f"{asset}: delivered twice outside the kill window: {twice - window[asset]}"
        )
        assert all(runs[cid] >= 1 for cid in want), f"{dag_id}: a delivered call in no run"
        assert {cid for cid, n in runs.items() if n > 1} <= window[asset], f"{dag_id}: a call in two runs"
        report.append(
            f"{asset}: {len(want)} calls, {sum(events.values())} events, {len(twice)} repeated "
            f"(kill window {len(window[asset])}), {len(runs)} calls in runs"
        )
    print(
        f"\n[call events] {CALLS} calls, triggerer down {DOWNTIME:.0f}s, all delivered "
        f"{delivered_at - started:.0f}s after the first call; {stranded} waited in Airflow's queue for "
        "the next event: " + "; ".join(report)
    )
