"""A 1,000-person campaign on a distributed Airflow survives a Celery worker and a triggerer SIGKILL.

The deployment (``conftest.stack``): CeleryExecutor on Redis, PostgreSQL metadata, two Celery
workers, two triggerers (A with ``--capacity 25``, B at the default), scheduler, dag-processor,
API server and the emulator. The DAG (``dags/vapi_distributed_campaign.py``) places the calls in
chunks of 20 (50 mapped batch creates) and waits for each chunk in one deferred trigger.

1. 1,000 people whose numbers end in ``0006`` (the emulator holds their calls in progress until
   they are ended) are seeded and the DAG is triggered; creates are slowed (``delay:3``) so that
   place tasks are in flight.
2. Worker 1 is SIGKILLed (its whole process tree) while it runs a place task, and replaced.
3. Once every wait is deferred and both triggerers hold some, the emulator's request log gives
   the Vapi requests per poll interval (one shared poll per triggerer: about 2 list requests).
4. Triggerer A is SIGKILLed; ``resume_s`` is the time until B holds every wait A held.
5. Every call is ended; the run must succeed with exactly one call per person at the emulator and
   one row per call (right id, right number) in the PostgreSQL results table.
6. Beside it all, a ``VapiCallEventTrigger`` watcher (``dags/vapi_distributed_call_events.py``)
   runs on one of the two triggerers: every campaign call must be exactly one asset event (a
   repeat only flagged ``possibleRepeat``), whichever triggerer ran it and across A's SIGKILL; the
   triggerers that ran it are measured (``trigger.triggerer_id``, sampled).

The figures go to ``test-results/distributed/summary.json`` (``make test-distributed`` prints it
last) and to stdout as one JSON line.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import pytest

from tests.system.procs import wait_until

from .cluster import TRIGGERERS, WORKERS, DistributedDeployment
from .conftest import POLL_INTERVAL, SUMMARY, Stack
from .dags.vapi_distributed_call_events import ASSET as EVENTS_ASSET
from .dags.vapi_distributed_call_events import DAG_ID as EVENTS_DAG
from .scenario import (
    CampaignRun,
    calls_by_number,
    end_calls,
    ensure_pool,
    people,
    result_rows,
    seed_people,
)

pytestmark = [pytest.mark.system, pytest.mark.distributed]

PEOPLE = int(os.environ.get("VAPI_DISTRIBUTED_PEOPLE", "1000"))
CHUNK_SIZE = int(os.environ.get("VAPI_DISTRIBUTED_CHUNK_SIZE", "20"))
#: Intervals the request rate is measured over.
MEASURED_INTERVALS = 3


def kill_worker_mid_place(cluster: DistributedDeployment, run: CampaignRun) -> list[int]:
    """SIGKILL worker 1 while it runs place tasks, start its replacement; the killed map indexes."""
    victim = WORKERS[0]
    running: list[dict[str, Any]] = []

    def placing() -> bool:
        pids = set(cluster.components[victim].group_pids())
        tis = run.tis("place_calls")
        running[:] = [t for t in tis if t["state"] == "running" and t.get("pid") in pids]
        return bool(running)

    wait_until(placing, 240, 0.2, f"a place_calls task running on {victim}")
    cluster.kill_component(victim)
    cluster.start_component(victim)
    cluster.wait_workers(WORKERS, 180)
    return [t["map_index"] for t in running]


def wait_split(cluster: DistributedDeployment, run: CampaignRun, waits: int) -> dict[int, set[int]]:
    """Until all ``waits`` waits are deferred in a triggerer; map indexes by triggerer job id."""
    holders: dict[int, set[int]] = {}

    def deferred() -> bool:
        tis = run.tis("wait_for_calls")
        if len(tis) != waits or any(t["state"] != "deferred" or not t["triggerer_job"] for t in tis):
            return False
        holders.clear()
        for ti in tis:
            holders.setdefault(int(ti["triggerer_job"]["id"]), set()).add(ti["map_index"])
        return True

    try:
        wait_until(deferred, 420, 1.0, f"{waits} deferred waits")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {dict(run.states())}") from None
    return holders


def requests_per_interval(stack: Stack) -> dict[str, Any]:
    """Vapi requests per poll interval once every wait is covered by its triggerer's shared poll.

    Every request the deployment sends to Vapi in the window counts: the shared polls (one per
    triggerer per interval) and a census when one falls in it (every 60 s per triggerer, a listing of
    the calls it watches: one or two requests for a thousand calls; see census.py)."""
    emu = stack.emulator.handle

    def covered() -> bool:  # no trigger read its calls one by one during the last interval
        emu.clear_requests()
        time.sleep(POLL_INTERVAL)  # a measuring window, not a wait for a condition
        return not any(r["path"].startswith("/call/") for r in emu.requests())

    wait_until(covered, 120, 0, "every wait to rely on the shared poll (no direct reads)")
    emu.clear_requests()
    time.sleep(POLL_INTERVAL * MEASURED_INTERVALS)  # the measuring window
    log = emu.requests()
    (SUMMARY.parent / "requests-window.json").write_text(json.dumps(log, indent=1, default=str))
    kinds = Counter(_kind(r) for r in log)
    return {"per_interval": len(log) / MEASURED_INTERVALS, "kinds": dict(kinds)}


def _kind(request: dict[str, Any]) -> str:
    """What a request to Vapi was for: the shared poll, a census, a direct read, or else."""
    query = request.get("query") or {}
    if request["method"] == "GET" and request["path"] == "/call":
        return "poll" if "updatedAtGt" in query else "census" if "createdAtGe" in query else "list"
    if request["method"] == "GET" and request["path"].startswith("/call/"):
        return "direct read"
    return f"{request['method']} {request['path']}"


def kill_triggerer_a(cluster: DistributedDeployment, run: CampaignRun, held: set[int]) -> float:
    """SIGKILL triggerer A; seconds until B holds every wait A held (the trigger's triggerer)."""
    killed_at = cluster.kill_component(TRIGGERERS[0])

    def moved() -> bool:
        tis = {t["map_index"]: t for t in run.tis("wait_for_calls")}
        return all(
            tis[i]["state"] == "deferred"
            and (tis[i]["triggerer_job"] or {}).get("id") == cluster.triggerer_b_job
            for i in held
        )

    wait_until(moved, 120, 0.25, f"triggerer B to take the {len(held)} waits of A")
    return time.monotonic() - killed_at


def verify(stack: Stack, run: CampaignRun) -> dict[str, Any]:
    """Counts from the emulator's own list of calls and from the results table."""
    per_number = calls_by_number(stack.emulator, run.persons)
    rows = result_rows(stack.pg, run.run_id)
    by_id = {c["id"]: c for calls in per_number.values() for c in calls}
    wrong = [
        r
        for r in rows
        if r["call_id"] not in by_id or by_id[r["call_id"]]["customer"]["number"] != r["customer_number"]
    ]
    return {
        "calls": sum(len(c) for c in per_number.values()),
        "duplicates": sum(len(c) - 1 for c in per_number.values() if len(c) > 1),
        "lost": sum(1 for c in per_number.values() if not c),
        "rows": len(rows),
        "distinct_row_ids": len({r["call_id"] for r in rows}),
        "wrong_rows": wrong[:5],
        "row_numbers": {r["customer_number"] for r in rows} == {p.number for p in run.persons},
        "unended_rows": sum(1 for r in rows if r["status"] != "ended"),
    }


def start_campaign(stack: Stack) -> CampaignRun:
    """Seed the people, slow the creates down (place tasks in flight at the kill), trigger."""
    cluster = stack.cluster
    persons = people(10, PEOPLE, "0006")
    seed_people(stack.pg, "campaign_kill", persons)
    ensure_pool(cluster.api, cluster.worker_concurrency * len(WORKERS))
    cluster.wait_for_dags(["vapi_distributed_campaign"])
    stack.emulator.handle.fault("delay:3", method="POST", path="/call", rate=1.0)
    return CampaignRun.trigger(cluster.api, "campaign_kill", persons, CHUNK_SIZE)


def write_summary(stack: Stack, run: CampaignRun, figures: dict[str, Any]) -> dict[str, Any]:
    """The summary line: counts from the emulator and the table, the measured figures."""
    counts = verify(stack, run)
    summary = {
        "people": len(run.persons),
        "calls": counts["calls"],
        "duplicates": counts["duplicates"],
        "lost": counts["lost"],
        "rows": counts["rows"],
        "triggerers": figures["triggerers"],
        "workers": len(stack.cluster.wait_workers(WORKERS, 60)),
        "resume_s": round(figures["resume_s"], 1),
        "requests_per_interval": round(figures["requests_per_interval"], 2),
        "call_events": figures.get("call_events"),
    }
    SUMMARY.write_text(json.dumps(summary) + "\n")
    print(json.dumps(summary))
    return {**summary, **counts}


def _watcher_triggerer(stack: Stack) -> int | None:
    out = stack.pg.psql("SELECT triggerer_id FROM trigger WHERE classpath LIKE '%VapiCallEventTrigger'", "airflow")
    return int(out.split()[0]) if out.split() and out.split()[0].isdigit() else None


def start_watcher(stack: Stack) -> int:
    """Unpause the watcher's DAG; the triggerer that runs it once its first look placed its mark."""
    cluster = stack.cluster
    cluster.wait_for_dags([EVENTS_DAG])
    cluster.api.call("PATCH", f"/dags/{EVENTS_DAG}", json={"is_paused": False})

    def placed() -> int | None:
        ledger = stack.pg.psql("SELECT value FROM asset_state_store WHERE key = 'vapi_call_events'", "airflow")
        return _watcher_triggerer(stack) if '"mark"' in ledger and '"mark": null' not in ledger else None

    return int(wait_until(placed, 180, 1.0, "the call-event watcher's first look"))  # type: ignore[arg-type]


def event_payloads(stack: Stack) -> list[dict[str, Any]]:
    out = stack.pg.psql(
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        f"WHERE a.name = '{EVENTS_ASSET}' ORDER BY e.id",
        "airflow",
    )
    return [json.loads(line)["payload"] for line in out.splitlines() if line.strip()]


def check_call_events(stack: Stack, call_ids: set[str], holders: set[int]) -> dict[str, Any]:
    """Every campaign call is one asset event (a repeat only flagged); figures for the summary."""
    wait_until(lambda: call_ids <= {p["id"] for p in event_payloads(stack)}, 300, 2.0, "an event per call")
    time.sleep(3 * POLL_INTERVAL)  # more polls: nothing else may come
    payloads = event_payloads(stack)
    ids = Counter(p["id"] for p in payloads)
    seen: set[str] = set()
    unflagged = 0
    for payload in payloads:
        unflagged += payload["id"] in seen and not payload.get("possibleRepeat")
        seen.add(payload["id"])
    return {
        "events": len(payloads),
        "calls": len(call_ids),
        "missing": len(call_ids - set(ids)),
        "foreign": len(set(ids) - call_ids),
        "repeats": sum(n - 1 for n in ids.values()),
        "unflagged_repeats": unflagged,
        "watcher_triggerers": sorted(holders),
    }


def test_thousand_people_survive_worker_and_triggerer_kills(stack: Stack) -> None:
    cluster = stack.cluster
    started = time.monotonic()
    watcher_holders = {start_watcher(stack)}
    run = start_campaign(stack)
    killed_places = kill_worker_mid_place(cluster, run)
    stack.emulator.handle.clear_faults()
    holders = wait_split(cluster, run, -(-PEOPLE // CHUNK_SIZE))
    print(f"\n[distributed] every wait deferred {time.monotonic() - started:.0f}s after the trigger: "
          f"{ {job: len(maps) for job, maps in holders.items()} } by triggerer job")  # fmt: skip
    assert set(holders) == {cluster.triggerer_a_job, cluster.triggerer_b_job}, f"both hold waits: {holders}"
    rate = requests_per_interval(stack)
    watcher_holders.add(_watcher_triggerer(stack) or 0)
    resume_s = kill_triggerer_a(cluster, run, holders[cluster.triggerer_a_job])
    wait_until(lambda: _watcher_triggerer(stack) == cluster.triggerer_b_job, 120, 0.5, "B to run the watcher")
    watcher_holders.add(cluster.triggerer_b_job)

    end_calls(
        stack.emulator, [c["id"] for cs in calls_by_number(stack.emulator, run.persons).values() for c in cs]
    )
    final = run.wait(420)
    all_ids = {c["id"] for cs in calls_by_number(stack.emulator, run.persons).values() for c in cs}
    events = check_call_events(stack, all_ids, watcher_holders - {0})
    print(f"[distributed] call events: {events}")
    retried = {t["map_index"] for t in run.tis("place_calls") if t["try_number"] > 1}
    print(f"[distributed] run {final['state']} {time.monotonic() - started:.0f}s after the trigger; "
          f"place tasks killed with worker 1: {killed_places}, retried: {sorted(retried)}; "
          f"Vapi requests in {MEASURED_INTERVALS} intervals: {rate['kinds']}")  # fmt: skip
    figures = {
        "triggerers": len(holders),
        "resume_s": resume_s,
        "requests_per_interval": rate["per_interval"],
        "call_events": events,
    }
    summary = write_summary(stack, run, figures)

    assert final["state"] == "success", f"the run is {final['state']}: {dict(run.states())}"
    assert summary["duplicates"] == 0 and summary["lost"] == 0, summary
    assert summary["calls"] == len(run.persons)
    assert summary["rows"] == summary["distinct_row_ids"] == len(run.persons), summary
    assert not summary["wrong_rows"] and summary["row_numbers"], summary
    assert summary["unended_rows"] == 0, summary
    assert set(killed_places) <= retried, f"the killed place tasks must have been retried: {killed_places}"
    assert summary["workers"] == 2
    assert events["missing"] == events["foreign"] == events["unflagged_repeats"] == 0, events
    # The shared poll: one per triggerer per interval (a thousand waits polled one by one would be
    # a thousand requests per interval); a census may add a few.
    assert rate["kinds"].get("poll", 0) <= 3 * len(holders) * MEASURED_INTERVALS / 2, rate
