"""Calling N people under an account concurrency limit: one Vapi campaign versus placing the calls.

Contenders (the account's concurrency limit is ``--limit``; the campaign's ``maxConcurrency`` too):

* ``campaign``: ``CampaignApi(hook).create(body, key)`` once, then ``CampaignApi(hook).get(id)`` every
  poll interval until the campaign is over, then every contact through ``iter_contact_pages``
  (what ``RunCampaignOperator`` + ``LoadCampaignContactsOperator`` do);
* ``batch``: ``VapiHook.create_call`` with ``customers`` in chunks of 100, then a listing of the
  run's calls (``hook.list_calls(createdAtGe=...)``) every poll interval until all have ended;
* ``mapped``: one ``VapiHook.create_call`` per person, 16 at a time (a mapped ``PlaceCallOperator``
  on a pool of 16 slots: N task instances), then the same wait.

Each runs clean and faulted. Faulted: for ``batch`` and ``mapped``, 5% of the ``POST /call`` lose
their answer (``drop``: the call is made) and 3% come *late* (``late:4``: made 4 s after the
request, twice the client's 2 s timeout), at least one of each, at seeded places; for
``campaign``, the one ``POST /v2/campaign`` loses its answer.
Who was called how often comes from the emulator's own list of calls, by number; requests from its
request log. The poll interval is in Vapi seconds (the operator's default 30) and, like every call,
runs ``--speed`` times faster.

    .venv/bin/python benchmarks/campaign_vs_calls.py                # n=2000, speed 100 (~3.5 minutes)
    .venv/bin/python benchmarks/campaign_vs_calls.py --n 200 --contenders campaign,batch
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conn_env, conversation_number, header, quiet_airflow

CONTENDERS = ("campaign", "batch", "mapped")
CHUNK = 100
MAPPED_CONCURRENCY = 16
CALL_FAULTS = (("drop", 0.05), ("late:4", 0.03))
#: The client gives up on an answer after this many seconds (the ``late`` faults answer later).
CLIENT_TIMEOUT = 2.0
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def bound_s(args: argparse.Namespace) -> float:
    """The least time calling everyone can take: ``ceil(n / limit)`` calls one after the other."""
    from airflow_provider_vapi.emulator.outcomes import QUEUE_S, RING_S, TALK_S

    return float(math.ceil(args.n / args.limit) * (QUEUE_S + RING_S + TALK_S) / args.speed)


def route(request: dict[str, Any]) -> str:
    return f"{request['method']} {_UUID.sub('{id}', request['path'])}"


class Run:
    """One round: its settings, and the timings the contender notes as it goes."""

    def __init__(self, emu: Any, args: argparse.Namespace, contender: str, faulted: bool) -> None:
        self.emu, self.n, self.limit = emu, args.n, args.limit
        self.tag = f"{contender}-{'f' if faulted else 'c'}"
        self.interval = args.poll_interval / args.speed
        self.deadline = time.monotonic() + bound_s(args) * 10 + 600  # against a hang only
        self.started = time.monotonic()
        self.placed_s = 0.0
        self.polls = 0

    def placed(self) -> None:
        """The creates have returned: faults off (the wait is not faulted), note the time."""
        self.placed_s = time.monotonic() - self.started
        self.emu.clear_faults()

    def pause(self) -> None:
        if time.monotonic() > self.deadline:
            raise RuntimeError(f"{self.tag}: the calls did not all end in time")
        time.sleep(self.interval)


# -- the contenders ------------------------------------------------------------------------------


def run_campaign(run: Run) -> dict[str, Any]:
    """RunCampaignOperator (create, read, poll until over) + LoadCampaignContactsOperator (pages)."""
    from airflow_provider_vapi.campaigns.api import CampaignApi
    from airflow_provider_vapi.campaigns.request import build_campaign_body, check_campaign_body
    from airflow_provider_vapi.hooks import VapiHook

    hook = VapiHook()
    params = {
        "name": f"bench {run.tag}",
        "assistant_id": run.emu.assistant_id,
        "phone_number_id": run.emu.phone_number_id,
        "customers": [conversation_number(i) for i in range(run.n)],
        "max_concurrency": run.limit,
    }
    body = build_campaign_body(params)
    check_campaign_body(body)
    created = CampaignApi(hook).create(body, f"bench-{run.tag}")
    run.placed()
    campaign = CampaignApi(hook).get(created.id)
    while not campaign.is_over:
        run.pause()
        run.polls += 1
        campaign = CampaignApi(hook).get(created.id)
    contacts = [c for page in CampaignApi(hook).iter_contact_pages(created.id) for c in page]
    hook.close()
    done = sum(1 for c in contacts if c.call_id and c.ended_reason)
    return {"results": done, "errors": 0, "status": campaign.status, "dialed": campaign.metrics.dialed}


def place_batch(run: Run, base: dict[str, Any]) -> list[str]:
    from airflow_provider_vapi.hooks import VapiHook

    hook, errors = VapiHook(), []
    for k, start in enumerate(range(0, run.n, CHUNK)):
        customers = [{"number": conversation_number(i)} for i in range(start, min(run.n, start + CHUNK))]
        result = hook.create_call({**base, "customers": customers}, idempotency_key=f"{run.tag}-b{k}")
        errors += [e.error for e in result.errors]  # type: ignore[union-attr]
    hook.close()
    return errors


def place_mapped(run: Run, base: dict[str, Any]) -> list[str]:
    from airflow_provider_vapi.hooks import VapiHook

    local, hooks, errors = threading.local(), [], []

    def one(i: int) -> None:
        if not hasattr(local, "hook"):
            local.hook = VapiHook()  # one hook per slot, as each mapped task has its own
            hooks.append(local.hook)
        local.hook.create_call(
            {**base, "customer": {"number": conversation_number(i)}}, idempotency_key=f"{run.tag}-{i}"
        )

    with ThreadPoolExecutor(MAPPED_CONCURRENCY) as pool:
        for future in [pool.submit(one, i) for i in range(run.n)]:
            try:
                future.result()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    for hook in hooks:
        hook.close()
    return errors


def run_calls(run: Run, place: Callable[[Run, dict[str, Any]], list[str]]) -> dict[str, Any]:
    """Place the calls, then list the run's calls every interval until every one has ended."""
    from airflow_provider_vapi.hooks import VapiHook

    since = datetime.now(UTC) - timedelta(seconds=1)
    errors = place(run, {"assistantId": run.emu.assistant_id, "phoneNumberId": run.emu.phone_number_id})
    run.placed()
    hook = VapiHook()
    calls = hook.list_calls(createdAtGe=since)
    while not calls or any(c.status != "ended" for c in calls):
        run.pause()
        run.polls += 1
        calls = hook.list_calls(createdAtGe=since)
    hook.close()
    return {"results": len(calls), "errors": len(errors), "status": "ended", "dialed": len(calls)}


# -- one round -----------------------------------------------------------------------------------


def fault_script(creates: int, seed: int = 7) -> list[str]:
    """One action per ``POST /call``: each fault on its exact share of the creates (at least one),
    at seeded random places; a rate would often miss the 20 creates of a batch altogether."""
    script, places = ["ok"] * creates, random.Random(seed).sample(range(creates), creates)
    for action, rate in CALL_FAULTS:
        for _ in range(max(1, round(rate * creates))):
            script[places.pop()] = action
    return script


def inject_faults(emu: Any, contender: str, n: int) -> None:
    if contender == "campaign":
        emu.fault("drop", method="POST", path="/v2/campaign", times=1)
        return
    creates = math.ceil(n / CHUNK) if contender == "batch" else n
    emu.faults(fault_script(creates), method="POST", path="/call")


def who_was_called(emu: Any, n: int) -> dict[str, int]:
    calls = emu.calls()
    by_number = Counter((c.get("customer") or {}).get("number") for c in calls)
    wanted = [conversation_number(i) for i in range(n)]
    return {
        "calls": len(calls),
        "missed": sum(1 for x in wanted if by_number[x] == 0),
        "twice": sum(1 for x in wanted if by_number[x] > 1),
        "extra_calls": sum(by_number[x] - 1 for x in wanted if by_number[x] > 1),
        "unfinished": sum(1 for c in calls if c.get("status") != "ended"),
    }


def warm_up(emu: Any) -> None:
    """Imports (Airflow's take seconds), the connection and lazily built models: not any round's."""
    from airflow_provider_vapi.campaigns.api import CampaignApi
    from airflow_provider_vapi.campaigns.request import build_campaign_body, check_campaign_body
    from airflow_provider_vapi.hooks import VapiHook

    hook = VapiHook()
    base = {"assistant_id": emu.assistant_id, "phone_number_id": emu.phone_number_id}
    body = build_campaign_body({"name": "warm-up", "customers": [conversation_number(0)], **base})
    check_campaign_body(body)
    campaign = CampaignApi(hook).create(body, "bench-warm-up")
    CampaignApi(hook).get(campaign.id)
    list(CampaignApi(hook).iter_contact_pages(campaign.id))
    hook.create_call(emu.call_body(conversation_number(1)))
    hook.list_calls(createdAtGe=datetime.now(UTC) - timedelta(minutes=1))
    hook.close()


def run_round(emu: Any, args: argparse.Namespace, contender: str, faulted: bool) -> dict[str, Any]:
    emu.reset()
    if faulted:
        inject_faults(emu, contender, args.n)
    run = Run(emu, args, contender, faulted)
    if contender == "campaign":
        got = run_campaign(run)
    else:
        got = run_calls(run, place_batch if contender == "batch" else place_mapped)
    wall = time.monotonic() - run.started
    requests = emu.requests()
    by_route = Counter(route(r) for r in requests)
    return {
        "round": f"{contender}{'+faults' if faulted else ''}",
        "contender": contender,
        "faulted": faulted,
        "wall_s": wall,
        "place_s": run.placed_s,
        "requests": len(requests),
        "per_person": len(requests) / args.n,
        "by_route": dict(by_route.most_common()),
        "faults_hit": sum(1 for r in requests if r.get("fault") not in (None, "ok")),
        "polls": run.polls,
        "task_instances": args.n if contender == "mapped" else 1,
        **who_was_called(emu, args.n),
        **got,
    }


# -- the report ----------------------------------------------------------------------------------

#: (key, heading, width, format); a ratio is relative to the campaign's round of the same kind.
COLUMNS = (
    ("round", "round", 16, ""),
    ("wall_s", "wall s", 7, ".1f"),
    ("place_s", "place s", 8, ".1f"),
    ("requests", "requests", 9, ""),
    ("per_person", "req/person", 11, ".3f"),
    ("calls", "calls", 6, ""),
    ("missed", "called 0x", 10, ""),
    ("twice", "called 2x+", 11, ""),
    ("results", "results", 8, ""),
    ("faults_hit", "faults", 7, ""),
    ("task_instances", "task inst.", 11, ""),
    ("wall_x", "wall/camp.", 11, ".2f"),
    ("requests_x", "req/camp.", 10, ".1f"),
)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Wall time and requests relative to the campaign's round of the same kind (clean, faulted)."""
    base = {r["faulted"]: r for r in rows if r["contender"] == "campaign"}
    for r in rows:
        ref = base.get(r["faulted"])
        r["wall_x"] = r["wall_s"] / ref["wall_s"] if ref else None
        r["requests_x"] = r["requests"] / ref["requests"] if ref else None


def cell(value: Any, width: int, fmt: str, first: bool) -> str:
    """The first column left-aligned, the others right-aligned; a missing ratio as ``-``."""
    value, fmt = ("-", "") if value is None else (value, fmt)
    return f"{value:{'<' if first else '>'}{width}{fmt}}"


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(" ".join(cell(head, width, "", i == 0) for i, (_, head, width, _) in enumerate(COLUMNS)))
    for r in rows:
        print(" ".join(cell(r[k], width, f, i == 0) for i, (k, _, width, f) in enumerate(COLUMNS)))
    print()
    print(
        f"bound: ceil(n / limit) x one call = {bound_s(args):.1f} s; wall / bound:",
        ", ".join(f"{r['round']} {r['wall_s'] / bound_s(args):.2f}" for r in rows),
    )
    print("requests by route:")
    for r in rows:
        routes = ", ".join(f"{k} {v}" for k, v in r["by_route"].items())
        print(f"  {r['round']:16} {routes}")


#: What the last JSON line keeps of each round.
SUMMARY_KEYS = (
    "wall_s", "place_s", "requests", "per_person", "calls", "missed", "twice", "results", "errors",
    "task_instances", "wall_x", "requests_x",
)  # fmt: skip


def summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    def short(r: dict[str, Any]) -> dict[str, Any]:
        out = {k: round(r[k], 3) if isinstance(r[k], float) else r[k] for k in SUMMARY_KEYS}
        return {**out, "by_route": r["by_route"]}

    return {
        "bench": "campaign_vs_calls",
        "n": args.n,
        "limit": args.limit,
        "speed": args.speed,
        "poll_interval": args.poll_interval,
        "bound_s": round(bound_s(args), 3),
        "missed": sum(r["missed"] for r in rows),
        "twice": sum(r["twice"] for r in rows),
        "by_round": {r["round"]: short(r) for r in rows},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="people to call")
    parser.add_argument("--speed", type=float, default=100.0, help="emulator speed (call length / speed)")
    parser.add_argument("--limit", type=int, default=10, help="account concurrency limit = maxConcurrency")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="Vapi seconds between polls")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="contenders to run")
    parser.add_argument("--no-faults", action="store_true", help="skip the faulted rounds")
    args = parser.parse_args()
    contenders = args.contenders.split(",")
    if unknown := set(contenders) - set(CONTENDERS):
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    quiet_airflow()
    from airflow_provider_vapi.emulator.server import EmulatorProcess

    header("campaign_vs_calls")
    emulator = EmulatorProcess(
        speed=args.speed,
        concurrency_limit=args.limit,
        request_log_size=1_000_000,
        log_level="error",
        fault_seed=7,
    )
    print(f"emulator: {' '.join(emulator.command[1:])}")
    rows = []
    with emulator as emu:
        os.environ.update(
            conn_env(
                emu.url,
                emu.api_key,
                timeout=CLIENT_TIMEOUT,
                retry_max_wait=0.5,
                retry_total_seconds=30,
                create_settle_seconds=10,  # the emulator makes every call within 4 s
            )
        )
        warm_up(emu)
        for contender in contenders:
            for faulted in (False,) if args.no_faults else (False, True):
                row = run_round(emu, args, contender, faulted)
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
                sys.stdout.flush()
    add_ratios(rows)
    print_table(rows, args)
    print(json.dumps(summary(rows, args)))


if __name__ == "__main__":
    main()
