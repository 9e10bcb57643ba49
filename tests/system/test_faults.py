"""Faults a production deployment meets, survived with nothing lost and nothing doubled.

Each test breaks one thing during a campaign run of ``vapi_outbound_survey`` on the real
deployment, then checks the same guarantee (``assert_nothing_lost_nothing_doubled``): exactly one
call per person at the emulator, every wait completed with that call's data, one table row each.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from .campaign import (
    SURVEY,
    assert_nothing_lost_nothing_doubled,
    calls_for,
    contacts,
    ensure_pool,
    hang_up,
    start_survey,
)
from .deployment import AirflowApi, AirflowDeployment, Emulator
from .procs import cmdline, descendants, pid_alive, wait_until


@pytest.fixture
def survey(deployment: AirflowDeployment, api: AirflowApi) -> AirflowApi:
    deployment.wait_for_dags([SURVEY])
    ensure_pool(api)
    return api


def _task_process(ti_id: str) -> int | None:
    """The pid of the task process running this task instance ("airflow worker -- <ti id>")."""
    for pid in descendants(os.getpid()):
        if cmdline(pid).startswith(f"airflow worker -- {ti_id}"):
            return pid
    return None


def test_triggerer_sigkilled_with_20_deferred_waits(
    deployment: AirflowDeployment, survey: AirflowApi, emulator: Emulator, system_workdir: Path
) -> None:
    """1. SIGKILL the triggerer while 20 waits are deferred; a new triggerer finishes every wait."""
    # 0006 calls stay in progress for the assistant's maxDurationSeconds (300 s) / speed = 50 s,
    # then end as exceeded-max-duration with an analysis: long enough to kill and restart.
    emulator.handle.configure(speed=6)
    people = contacts(21, 20, suffix="0006")
    started = time.monotonic()
    run = start_survey(survey, system_workdir, "fault-triggerer", people)
    deferred = run.wait_deferred(20, timeout=150)
    print(f"\n[triggerer] 20 waits deferred {time.monotonic() - started:.1f}s after the trigger")
    placed = run.placed_ids()
    old_jobs = {ti["triggerer_job"]["id"] for ti in deferred}
    assert len(old_jobs) == 1, f"one triggerer owns the waits: {old_jobs}"
    live = [emulator.handle.call(cid)["status"] for cid in placed.values()]
    assert live == ["in-progress"] * 20, f"calls must still be live when the triggerer dies: {live}"

    triggerer = deployment.components["triggerer"]
    pids = triggerer.group_pids()
    triggerer.kill()
    # SIGKILL is delivered at once, but a dying process takes a moment to become a zombie.
    wait_until(lambda: not [p for p in pids if pid_alive(p)], 15, 0.1, "the SIGKILLed triggerer processes to die")
    assert {t["state"] for t in run.tis("wait_for_call")} == {"deferred"}

    deployment.start_component("triggerer")
    deployment.wait_healthy(90, ["triggerer"])

    def adopted() -> bool:
        tis = run.tis("wait_for_call")
        owners = {(t["triggerer_job"] or {}).get("id") for t in tis if t["state"] == "deferred"}
        return bool(tis) and not (owners & old_jobs)

    wait_until(adopted, 90, 1.0, "the new triggerer to take over every deferred wait")
    run.wait(240)
    assert_nothing_lost_nothing_doubled(run, emulator.handle, ended_reason="exceeded-max-duration")


def test_task_killed_between_call_created_and_id_saved(
    survey: AirflowApi, emulator: Emulator, system_workdir: Path
) -> None:
    """2. The answer to POST /call is lost and the task is SIGKILLed before it learns the id;
    its retry finds the call by its idempotency key instead of dialling again."""
    emu = emulator.handle
    people = contacts(22, 1)
    # The call is created but its answer is cut off; the lookup that would find it hangs, so the
    # task is stuck with a call that exists and an id it does not have: kill it right there.
    emu.faults(["drop"], method="POST", path="/call")
    # Only the idempotency lookup (createdAtGe) is held: a shared poll of other waits
    # (updatedAtGt) must not take the fault in its place.
    emu.faults(["delay:60"], method="GET", path="/call", query={"createdAtGe": "*"})
    run = start_survey(survey, system_workdir, "fault-task-kill", people)

    def stuck_in_lookup() -> bool:
        return any(r["fault"] == "delay:60" for r in emu.requests("GET", "/call"))

    wait_until(stuck_in_lookup, 120, 0.2, "place_call to look for its lost call")
    (ti,) = run.tis("place_call")
    assert ti["state"] == "running" and ti["try_number"] == 1, ti
    assert len(calls_for(emu, people)[people[0].number]) == 1, "the call exists at the emulator"
    missing = survey.request(
        "GET",
        f"/dags/{SURVEY}/dagRuns/{run.run_id}/taskInstances/place_call/xcomEntries/call_id",
        params={"map_index": 0},
    )
    assert missing.status_code == 404, "the id must not have reached XCom yet"
    pid = _task_process(ti["id"])
    assert pid is not None, "the task process of place_call[0] was not found"
    os.kill(pid, signal.SIGKILL)

    run.wait(180)
    (ti,) = run.tis("place_call")
    assert ti["try_number"] >= 2, f"place_call must have been retried after the kill: {ti}"
    creates = [
        r for r in emu.requests("POST", "/call") if r["body"]["customer"]["number"] == people[0].number
    ]
    assert len(creates) == 1, f"the retry must not send POST /call again: {len(creates)} sent"
    assert_nothing_lost_nothing_doubled(run, emu)


def test_campaign_survives_429_5xx_and_dropped_connections(
    survey: AirflowApi, emulator: Emulator, system_workdir: Path
) -> None:
    """3. Bursts of 429 and 5xx and dropped connections on every Vapi route during a campaign."""
    emu = emulator.handle
    people = contacts(23, 10)
    # Deterministic first: the first creates hit each fault kind once (a lost answer twice) ...
    emu.faults(["429", "500", "drop", "503", "drop", "502"], method="POST", path="/call", retry_after=0.2)
    # ... then random bursts on everything: creates, lookups and the waits' polling.
    for action, rate in (("429", 0.15), ("500", 0.08), ("503", 0.07), ("drop", 0.08)):
        emu.fault(action, path="/call*", rate=rate, retry_after=0.2)
    started = time.monotonic()
    run = start_survey(survey, system_workdir, "fault-bursts", people)
    run.wait(300)
    fired = {
        f"{r['method']} {r['path']} {r.get('action') or r.get('sequence')}": r["fired"]
        for r in emu.active_faults()
    }
    emu.clear_faults()
    faulted = [r for r in emu.requests(path="/call*") if r["fault"]]
    kinds = {r["fault"] for r in faulted}
    assert {"429", "500", "503", "502", "drop"} <= kinds, f"every fault kind must have fired: {kinds}"
    assert any(r["method"] == "GET" and r["path"].startswith("/call/") for r in faulted), fired
    print(f"\n[faults] {len(faulted)} faulted requests in {time.monotonic() - started:.0f}s: {fired}")
    assert_nothing_lost_nothing_doubled(run, emu)


def test_emulator_restarts_mid_run(survey: AirflowApi, emulator: Emulator, system_workdir: Path) -> None:
    """4. Vapi (the emulator, with --state) goes away while calls are in progress and comes back."""
    emu = emulator.handle
    emu.configure(speed=10)  # 0006 calls hold 300 s / 10 = 30 s
    people = contacts(24, 4, suffix="0006")
    run = start_survey(survey, system_workdir, "fault-emulator-restart", people)
    run.wait_deferred(len(people))
    placed = run.placed_ids()
    assert all(emu.call(c)["status"] == "in-progress" for c in placed.values())

    emulator.kill()
    time.sleep(4)  # the waits poll a dead Vapi for a while (connection refused)
    emulator.start()
    assert {c["id"] for c in emu.calls()} >= set(placed.values()), "calls survived the restart"

    run.wait(180)
    polled = {r["path"].rsplit("/", 1)[1] for r in emu.requests("GET", "/call/*")}
    assert set(placed.values()) <= polled, "every wait polled the restarted emulator"
    assert_nothing_lost_nothing_doubled(run, emu, ended_reason="exceeded-max-duration")


def test_marking_a_deferred_wait_failed_ends_the_call(
    survey: AirflowApi, emulator: Emulator, system_workdir: Path
) -> None:
    """5. A user marks a deferred wait failed: the trigger's on_kill ends that call
    (manually-canceled, through its control URL); the other call is left alone."""
    emu = emulator.handle
    emu.configure(speed=1)
    people = contacts(25, 2, suffix="0006")
    run = start_survey(survey, system_workdir, "fault-mark-failed", people)
    run.wait_deferred(2)
    placed = run.placed_ids()
    emu.clear_requests()

    survey.set_task_state(SURVEY, run.run_id, "wait_for_call", 0, "failed")
    ended = wait_until(
        lambda: (c := emu.call(placed[0]))["status"] == "ended" and c,
        60,
        0.5,
        "the canceled wait's call to end",
    )
    assert ended["endedReason"] == "manually-canceled"  # type: ignore[index]
    controls = [r["path"] for r in emu.requests("POST", "/control/*")]
    assert controls == [f"/control/{placed[0]}"], f"only the killed wait's call is ended: {controls}"
    time.sleep(2)
    assert emu.call(placed[1])["status"] == "in-progress", "the other call must go on"

    hang_up(emu, placed[1])
    final = run.wait(120)
    assert final["state"] == "failed"  # the user failed one wait
    states = {t["map_index"]: t["state"] for t in run.tis("wait_for_call")}
    assert states == {0: "failed", 1: "success"}, states
    per_number = calls_for(emu, people)
    assert {n: len(c) for n, c in per_number.items()} == {p.number: 1 for p in people}
