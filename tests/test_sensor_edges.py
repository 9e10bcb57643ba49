"""``CallStatusSensor`` at its edges, whole DAGs with ``dag.test()`` against the emulator.

A wait that times out does the same in every mode (poke, reschedule, deferrable): it ends the calls
with ``end_call_on_timeout=True`` (a scheduled one by ``DELETE``), or says which calls go on. A kill
ends the calls of a poking sensor; ``soft_fail``/``never_fail`` treat the first check of a deferrable
sensor as Airflow treats what comes after the deferral; an outcome failure is final; and a deferral
whose kill cannot end the calls (no ``BaseTrigger.on_kill``) says so.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.dag_runner import run_dag, states, tries, xcom

pytestmark = [pytest.mark.usefixtures("airflow_db", "vapi_conn"), pytest.mark.timeout(120)]

HELD = "+14155550006"  # stays in progress until ended
START_ERROR = "+14155550005"  # ends at creation: call.start.error-... (outcome error)
#: The sensor instances of the DAG being run, as they poke (see ``test_killing_a_poking_sensor``).
POKING: list[Any] = []


def held_call(emu: Any) -> str:
    call_id: str = emu.create_call(HELD)["id"]
    emu.wait_for(call_id, status="in-progress")
    return call_id


def scheduled_call(emu: Any) -> tuple[str, str]:
    """A call scheduled a day ahead (``scheduled``): its id and its ``earliestAt``."""
    earliest = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    call = emu.create_call("+14155550123", schedulePlan={"earliestAt": earliest})
    assert call["status"] == "scheduled"
    return call["id"], earliest


def run_sensor(dag_id: str, call_id: str | list[str], sensor: str = "CallStatusSensor", **kwargs: Any) -> Any:
    """One sensor task ``wait`` in a DAG of its own; the DagRun."""
    args = {"poke_interval": 0.2, **kwargs}
    params = ", ".join(f"{k}={_source(v)}" for k, v in args.items())
    body = f"""
    with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None) as dag:
        {sensor}(task_id="wait", call_id={call_id!r}, {params})
    """
    return run_dag(dag_id, body)


def _source(value: Any) -> str:
    """``value`` as DAG source (the DAG file imports ``timedelta`` itself)."""
    if isinstance(value, timedelta):
        return f"timedelta(seconds={value.total_seconds()!r})"
    return repr(value)


def task_log(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the task logged: Airflow 3 prints task logs (structlog) to stdout, 2.11 logs them."""
    out = capsys.readouterr()
    return out.out + out.err + caplog.text


def warnings_about(log: str, *words: str) -> list[str]:
    """The WARNING lines that contain every one of ``words``."""
    return [line for line in log.splitlines() if "warn" in line.lower() and all(w in line for w in words)]


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- (a) + (b): a wait that times out ends its calls in every mode, a scheduled one by DELETE --------


@pytest.mark.parametrize(
    ("mode", "soft_fail"),
    [("poke", False), ("reschedule", False), ("poke", True), ("reschedule", True), ("deferrable", False)],
)
def test_a_timed_out_wait_ends_its_calls_in_every_mode(
    vapi_emulator: Any, mode: str, soft_fail: bool
) -> None:
    emu = vapi_emulator
    live = held_call(emu)
    scheduled, _ = scheduled_call(emu)
    dag_run = run_sensor(
        f"times_out_{mode}_{soft_fail}",
        [live, scheduled],
        deferrable=mode == "deferrable",
        mode="reschedule" if mode == "reschedule" else "poke",
        timeout=1,
        soft_fail=soft_fail,
        end_call_on_timeout=True,
    )
    assert states(dag_run) == {("wait", -1): "skipped" if soft_fail else "failed"}
    assert emu.call(live).get("endedReason") == "manually-canceled", "the live call is ended"
    assert emu.call(scheduled).get("endedReason") == "scheduled-call-deleted", "the scheduled one cancelled"
    assert len(emu.requests(method="DELETE", path=f"/call/{scheduled}")) == 1
    assert emu.requests(method="DELETE", path=f"/call/{live}") == [], "a live call is not deleted"


def test_an_execution_timeout_ends_the_calls_only_with_end_call_on_timeout(
    vapi_emulator: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Airflow calls on_kill after an execution_timeout: that must not end what the timeout keeps."""
    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    emu = vapi_emulator
    kept, ended = held_call(emu), held_call(emu)
    for dag_id, call_id, end in (("exec_timeout_keeps", kept, False), ("exec_timeout_ends", ended, True)):
        # Airflow 2.11's dag.test() lets the AirflowTaskTimeout (a BaseException) out; 3.x does not.
        with contextlib.suppress(AirflowTaskTimeout):
            run_sensor(
                dag_id, call_id, timeout=60, execution_timeout=timedelta(seconds=1.5), end_call_on_timeout=end
            )
    assert emu.call(kept)["status"] == "in-progress", "end_call_on_timeout=False (and on_kill) keep it going"
    assert warnings_about(task_log(capsys, caplog), kept, "goes on")
    assert emu.call(ended).get("endedReason") == "manually-canceled"


# -- (b) in the hook: see tests/test_end_call.py ------------------------------------------------------

# -- (c): with the defaults a timed-out wait says which calls go on -----------------------------------


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_defaults_leave_the_calls_going_and_say_so(
    vapi_emulator: Any, mode: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    emu = vapi_emulator
    live = held_call(emu)
    scheduled, earliest = scheduled_call(emu)
    dag_run = run_sensor(f"defaults_{mode}", [live, scheduled], deferrable=mode == "deferrable", timeout=1)
    assert states(dag_run) == {("wait", -1): "failed"}
    assert emu.call(live)["status"] == "in-progress" and emu.call(scheduled)["status"] == "scheduled"
    assert emu.requests(method="DELETE") == [] and emu.requests(method="POST", path="/control/*") == []
    log = task_log(capsys, caplog)
    assert warnings_about(log, live, "in-progress", "goes on", "end_call_on_timeout=True")
    assert warnings_about(log, scheduled, "scheduled", earliest, "goes on", "end_call_on_timeout=True")


# -- (d): killing a poking sensor ends its calls ------------------------------------------------------


@pytest.mark.parametrize("end_call_on_kill", [True, False])
def test_killing_a_poking_sensor_ends_its_calls(vapi_emulator: Any, end_call_on_kill: bool) -> None:
    emu = vapi_emulator
    live = held_call(emu)
    POKING.clear()

    def kill() -> None:  # what Airflow does on SIGTERM (mark failed/success, clear): task.on_kill()
        wait_until(lambda: bool(POKING))
        POKING[0].on_kill()

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    body = f"""
    from tests.test_sensor_edges import POKING

    class Recorded(CallStatusSensor):
        def poke(self, context):
            POKING.append(self)
            return super().poke(context)

    with DAG("killed_{end_call_on_kill}", start_date=datetime(2026, 1, 1), schedule=None) as dag:
        Recorded(task_id="wait", call_id={live!r}, poke_interval=0.2, timeout=3,
                 analysis_grace_period=1, end_call_on_kill={end_call_on_kill!r})
    """
    dag_run = run_dag(f"killed_{end_call_on_kill}", body)
    killer.join(timeout=5)
    call = emu.call(live)
    if end_call_on_kill:
        assert call.get("endedReason") == "manually-canceled"
        assert states(dag_run) == {("wait", -1): "success"}, "the poke after the kill saw it ended"
    else:
        assert call["status"] == "in-progress"
        assert states(dag_run) == {("wait", -1): "failed"}


# -- (e) + (f): soft_fail / never_fail, and a failed outcome is final ---------------------------------


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
@pytest.mark.parametrize(
    ("flags", "state"),
    [({"soft_fail": True}, "skipped"), ({"never_fail": True}, "skipped"), ({}, "failed")],
    ids=["soft_fail", "never_fail", "neither"],
)
def test_a_failed_outcome_on_the_first_check_follows_soft_fail(
    vapi_emulator: Any, mode: str, flags: dict[str, bool], state: str
) -> None:
    emu = vapi_emulator
    call_id = emu.create_call(START_ERROR)["id"]
    emu.wait_for(call_id)
    dag_run = run_sensor(
        f"first_check_{mode}_{state}_{len(flags)}", call_id, deferrable=mode == "deferrable", **flags
    )
    assert states(dag_run) == {("wait", -1): state}


def test_never_fail_skips_after_a_deferral_on_every_airflow(vapi_emulator: Any) -> None:
    """Airflow 2.11's resume_execution honours soft_fail only; the sensor adds never_fail."""
    dag_run = run_sensor(
        "never_fail_deferred", held_call(vapi_emulator), deferrable=True, timeout=1, never_fail=True
    )
    assert states(dag_run) == {("wait", -1): "skipped"}


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_a_failed_outcome_is_not_retried(vapi_emulator: Any, mode: str) -> None:
    call_id = vapi_emulator.create_call(START_ERROR)["id"]
    vapi_emulator.wait_for(call_id)
    dag_run = run_sensor(
        f"final_{mode}", call_id, deferrable=mode == "deferrable", retries=2, retry_delay=timedelta(seconds=0)
    )
    assert states(dag_run) == {("wait", -1): "failed"}
    assert tries(dag_run) == {("wait", -1): 1}, "the call has ended: reading it again cannot change it"


def test_a_wait_on_several_calls_links_to_the_first(vapi_emulator: Any) -> None:
    """The "Vapi call" link of a sensor waiting on a list reads ``vapi_call_url``: without it, every
    finished task logged two "XCom not found" errors on Airflow 3 (seen in the distributed suite)."""
    ids = [vapi_emulator.create_call(f"+1415555420{i}")["id"] for i in range(2)]
    for call_id in ids:
        vapi_emulator.wait_for(call_id)
    dag_run = run_sensor("link_of_a_list", ids, analysis_grace_period=0)
    assert states(dag_run) == {("wait", -1): "success"}
    assert xcom(dag_run, "wait", key="vapi_call_url").endswith(ids[0])


# -- (g): deferring where a kill cannot end the calls says so -----------------------------------------


async def _on_kill(self: Any) -> None:
    return None


@pytest.mark.parametrize("on_kill", ["absent", "present"])
@pytest.mark.parametrize("end_call_on_kill", [True, False])
def test_deferring_warns_when_triggers_have_no_on_kill(
    vapi_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    on_kill: str,
    end_call_on_kill: bool,
) -> None:
    """Airflow 2.11's BaseTrigger has no on_kill, 3.x's has: the capability is what counts."""
    from airflow.triggers.base import BaseTrigger

    if on_kill == "absent":
        monkeypatch.delattr(BaseTrigger, "on_kill", raising=False)
    else:
        monkeypatch.setattr(BaseTrigger, "on_kill", _on_kill, raising=False)
    live = held_call(vapi_emulator)
    run_sensor(
        f"kill_warning_{on_kill}_{end_call_on_kill}",
        live,
        deferrable=True,
        timeout=1,
        end_call_on_kill=end_call_on_kill,
    )
    warned = warnings_about(task_log(capsys, caplog), "end_call_on_kill=True", "no on_kill")
    assert bool(warned) == (on_kill == "absent" and end_call_on_kill)
