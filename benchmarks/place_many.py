"""Placing 1,000 calls against the emulator with Vapi's default concurrency limit of 10.

Methods:

* ``batch``: ``VapiHook.create_call`` with ``customers`` in chunks of 100 (Vapi advises 50-100);
* ``mapped``: one ``VapiHook.create_call`` per customer, 16 at a time (a mapped
  ``PlaceCallOperator`` on a pool of 16 slots);
* ``naive``: a loop over Vapi's official SDK ``calls.create`` that tries again when a create
  fails (what a script does to be robust; the SDK itself also retries 5xx).

Each runs clean and with faults on ``POST /call`` (5% answered 500 and nothing created, 5% created
and the answer lost, 3% *slow*: Vapi makes the call 4 s after the request, twice the client's 2 s
timeout, so the client gives up first and a listing right then shows nothing yet). Every intended call carries a unique ``customer.externalId``; lost and
duplicate calls are counted from the emulator's own list of calls. Throughput is compared with the
bound set by the concurrency limit: ``ceil(n / limit)`` rounds of one call's length.

    .venv/bin/python benchmarks/place_many.py                  # n=1000, speed 50 (~3 minutes)
    .venv/bin/python benchmarks/place_many.py --n 200 --variants batch,mapped
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conn_env, conversation_number, header, quiet_airflow, ts

METHODS = ("batch", "mapped", "naive")
CHUNK = 100
MAPPED_CONCURRENCY = 16
FAULTS = (("500", 0.05), ("drop", 0.05), ("late:4", 0.03))
#: Every client, ours and the SDK alike, gives up on an answer after this many seconds.
CLIENT_TIMEOUT = 2.0


def customer(tag: str, i: int) -> dict[str, Any]:
    return {"number": conversation_number(i), "externalId": f"{tag}-{i}"}


def place(method: str, tag: str, n: int, emu: Any) -> dict[str, Any]:
    errors: list[str] = []
    base = {"assistantId": emu.assistant_id, "phoneNumberId": emu.phone_number_id}
    if method == "batch":
        from airflow_provider_vapi.hooks import VapiHook

        hook = VapiHook()
        for k, start in enumerate(range(0, n, CHUNK)):
            customers = [customer(tag, i) for i in range(start, min(n, start + CHUNK))]
            result = hook.create_call({**base, "customers": customers}, idempotency_key=f"{tag}-b{k}")
            errors += [e.error for e in result.errors]  # type: ignore[union-attr]
        hook.close()
    elif method == "mapped":
        from airflow_provider_vapi.hooks import VapiHook

        local = threading.local()

        def one(i: int) -> None:
            if not hasattr(local, "hook"):
                local.hook = VapiHook()  # one hook per slot, as each mapped task has its own
            local.hook.create_call({**base, "customer": customer(tag, i)}, idempotency_key=f"{tag}-m{i}")

        with ThreadPoolExecutor(MAPPED_CONCURRENCY) as pool:
            for future in [pool.submit(one, i) for i in range(n)]:
                try:
                    future.result()
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
    else:
        from vapi import Vapi

        client = Vapi(token=emu.api_key, base_url=emu.url, timeout=CLIENT_TIMEOUT)
        for i in range(n):
            for _attempt in range(3):
                try:
                    client.calls.create(
                        assistant_id=emu.assistant_id,
                        phone_number_id=emu.phone_number_id,
                        customer=customer(tag, i),
                    )
                    break
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}")
    return {"errors": errors}


def run_variant(emu: Any, method: str, faults: bool, args: argparse.Namespace) -> dict[str, Any]:
    emu.reset()
    if faults:
        for action, rate in FAULTS:
            emu.fault(action, method="POST", path="/call", rate=rate)
    tag = f"{method[0]}{'f' if faults else 'c'}"
    started = time.time()
    outcome = place(method, tag, args.n, emu)
    placed_in = time.time() - started
    emu.clear_faults()
    deadline = time.time() + args.n * 2 / args.speed * 10 + 120
    while True:
        calls = emu.calls()
        if all(c["status"] == "ended" for c in calls):
            break
        if time.time() > deadline:
            raise RuntimeError("calls did not all end")
        time.sleep(0.5)
    tags = Counter((c.get("customer") or {}).get("externalId") for c in calls)
    wanted = [f"{tag}-{i}" for i in range(args.n)]
    lost = sum(1 for t in wanted if tags[t] == 0)
    duplicates = sum(tags[t] - 1 for t in wanted if tags[t] > 1)
    from airflow_provider_vapi.idempotency import key_of
    from airflow_provider_vapi.models import Call

    keys = Counter(key_of(Call.model_validate(c)) for c in calls)
    key_dups = sum(v - 1 for k, v in keys.items() if k is not None and v > 1)
    refused = sum(1 for c in calls if (c.get("endedReason") or "").startswith("call.start.error"))
    makespan = max(ts(c["endedAt"]) for c in calls) - min(ts(c["createdAt"]) for c in calls)
    from airflow_provider_vapi.emulator.outcomes import QUEUE_S, RING_S, TALK_S

    slot_s = (QUEUE_S + RING_S + TALK_S) / args.speed
    bound = math.ceil(args.n / args.limit) * slot_s
    requests = emu.requests(method="POST", path="/call")
    return {
        "variant": f"{method}{'+faults' if faults else ''}",
        "calls": len(calls),
        "lost": lost,
        "duplicates": duplicates,
        "idempotency_key_duplicates": key_dups,
        "start_errors": refused,
        "client_errors": len(outcome["errors"]),
        "create_requests": len(requests),
        "faults_hit": sum(1 for r in requests if r.get("fault")),
        "placement_s": placed_in,
        "makespan_s": makespan,
        "bound_s": bound,
        "throughput_vs_bound": bound / makespan,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--speed", type=float, default=50.0, help="emulator speed (call length / speed)")
    parser.add_argument("--limit", type=int, default=10, help="the emulator's concurrency limit")
    parser.add_argument("--variants", default="batch,mapped,naive", help="methods to run")
    parser.add_argument("--no-faults", action="store_true", help="skip the faulted variants")
    return parser.parse_args()


def run_variants(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every method of ``--variants``, clean then faulted, one JSON line each as it ends."""
    from airflow_provider_vapi.emulator.server import EmulatorProcess

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
        for method in args.variants.split(","):
            for faults in (False,) if args.no_faults else (False, True):
                row = run_variant(emu, method, faults, args)
                rows.append(row)
                print(
                    json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
                    flush=True,
                )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["calls", "lost", "duplicates", "create_requests", "faults_hit", "client_errors"]
    print(
        f"{'variant':16}" + "".join(f"{c:>16}" for c in cols) + f"{'placement s':>13}{'makespan s':>12}"
        f"{'bound s':>9}{'thr/bound':>10}"
    )
    for r in rows:
        print(
            f"{r['variant']:16}"
            + "".join(f"{r[c]:>16}" for c in cols)
            + f"{r['placement_s']:>13.2f}{r['makespan_s']:>12.2f}{r['bound_s']:>9.2f}{r['throughput_vs_bound']:>10.3f}"
        )


def print_summary(n: int, rows: list[dict[str, Any]]) -> None:
    """The closing JSON line: batch's throughput, ours' lost and duplicate calls, each variant's."""
    ours = [r for r in rows if not r["variant"].startswith("naive")]
    batch = next((r for r in rows if r["variant"] == "batch"), rows[0])
    print(
        json.dumps(
            {
                "bench": "place_many",
                "n": n,
                "throughput_vs_bound": round(batch["throughput_vs_bound"], 3),
                "duplicates": sum(r["duplicates"] for r in ours),
                "lost": sum(r["lost"] for r in ours),
                "by_variant": {
                    r["variant"]: {
                        "throughput_vs_bound": round(r["throughput_vs_bound"], 3),
                        "duplicates": r["duplicates"],
                        "lost": r["lost"],
                    }
                    for r in rows
                },
            }
        )
    )


def main() -> None:
    args = parse_args()
    quiet_airflow()
    header("place_many")
    rows = run_variants(args)
    print()
    print_table(rows)
    print_summary(args.n, rows)


if __name__ == "__main__":
    main()
