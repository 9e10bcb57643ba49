"""What ``VapiHook`` costs per call compared with plain httpx and with Vapi's official SDK (issue #3).

Places calls (``POST /call``) and reads them (``GET /call/{id}``) against the emulator (a
subprocess) through:

* ``hook``: ``VapiHook.create_call`` / ``get_call`` (validation, idempotency key, typed ``Call``);
* ``httpx``: one ``httpx.Client`` with the same pooling, ``.json()`` on each answer;
* ``sdk``: ``vapi.Vapi`` (``vapi_server_sdk``) ``calls.create`` / ``calls.get``.

Rounds interleave the three so that drift of the machine hits all alike. Reported per operation:
wall time (what a task waits, server included) and client CPU (what the library itself costs).

    .venv/bin/python benchmarks/hook_overhead.py               # 5 rounds x 100 calls (~1 minute)
    .venv/bin/python benchmarks/hook_overhead.py --rounds 10 --per-round 200
    .venv/bin/python benchmarks/hook_overhead.py --profile      # pyinstrument, if installed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conn_env, header, quiet_airflow

CLIENTS = ("hook", "httpx", "sdk")
#: Per client: its create (number index -> call id), its read (call id -> call) and its close.
ClientTable = dict[str, tuple[Callable[[int], str], Callable[[str], Any], Callable[[], None]]]
#: Wall seconds of each operation, and client CPU seconds in all, per (client, "create" | "get").
Walls = dict[tuple[str, str], list[float]]
Cpus = dict[tuple[str, str], float]


def clients(emu: Any) -> ClientTable:
    import httpx
    from vapi import Vapi

    from airflow_provider_vapi.hooks import VapiHook

    def number(i: int) -> str:
        return f"+1555{i // 1000 % 1000:03d}{9000 + i % 1000:04d}"

    body = {"assistantId": emu.assistant_id, "phoneNumberId": emu.phone_number_id}
    hook = VapiHook()
    plain = httpx.Client(
        base_url=emu.url,
        headers={"Authorization": f"Bearer {emu.api_key}", "User-Agent": "bench"},
        timeout=httpx.Timeout(30.0, connect=10.0),
    )
    sdk = Vapi(token=emu.api_key, base_url=emu.url)

    def hook_create(i: int) -> str:
        return hook.create_call({**body, "customer": {"number": number(i)}}).id  # type: ignore[union-attr]

    def plain_create(i: int) -> str:
        answer = plain.post("/call", json={**body, "customer": {"number": number(i)}})
        answer.raise_for_status()
        return str(answer.json()["id"])

    def sdk_create(i: int) -> str:
        call = sdk.calls.create(
            assistant_id=emu.assistant_id, phone_number_id=emu.phone_number_id, customer={"number": number(i)}
        )
        return str(call.id)  # type: ignore[union-attr]

    def plain_get(call_id: str) -> Any:
        answer = plain.get(f"/call/{call_id}")
        answer.raise_for_status()
        return answer.json()

    return {
        "hook": (hook_create, hook.get_call, hook.close),
        "httpx": (plain_create, plain_get, plain.close),
        "sdk": (sdk_create, sdk.calls.get, lambda: None),
    }


def measure(fn: Callable[[Any], Any], args: list[Any]) -> tuple[list[float], float, list[Any]]:
    walls, results = [], []
    cpu0 = time.process_time()
    for a in args:
        t0 = time.perf_counter()
        results.append(fn(a))
        walls.append(time.perf_counter() - t0)
    return walls, time.process_time() - cpu0, results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=100, help="creates and reads per client per round")
    parser.add_argument("--profile", action="store_true", help="profile the hook's side with pyinstrument")
    return parser.parse_args()


def make_profiler(wanted: bool) -> Any:
    """A pyinstrument ``Profiler`` when ``--profile`` asks for one, else ``None``."""
    if not wanted:
        return None
    from pyinstrument import Profiler

    return Profiler()


def run_rounds(table: ClientTable, args: argparse.Namespace, profiler: Any) -> tuple[Walls, Cpus]:
    """Interleaved rounds: every client creates then reads ``--per-round`` calls per round."""
    walls: Walls = {(c, op): [] for c in CLIENTS for op in ("create", "get")}
    cpus: Cpus = dict.fromkeys(walls, 0.0)
    counter = 1000
    for r in range(args.rounds):
        order = CLIENTS[r % 3 :] + CLIENTS[: r % 3]
        for name in order:
            create, get, _ = table[name]
            if profiler is not None and name == "hook":
                profiler.start()
            ids = list(range(counter, counter + args.per_round))
            counter += args.per_round
            w, cpu, made = measure(create, ids)
            walls[(name, "create")] += w
            cpus[(name, "create")] += cpu
            w, cpu, _ = measure(get, made)
            walls[(name, "get")] += w
            cpus[(name, "get")] += cpu
            if profiler is not None and name == "hook":
                profiler.stop()
    return walls, cpus


def measure_clients(args: argparse.Namespace) -> tuple[Walls, Cpus]:
    """Start the emulator, warm every client up, run the rounds, print the profile if asked."""
    from airflow_provider_vapi.emulator.server import EmulatorProcess

    emulator = EmulatorProcess(speed=1.0, concurrency_limit=100_000, request_log_size=1000, log_level="error")
    print(f"emulator: {' '.join(emulator.command[1:])}")
    with emulator as emu:
        os.environ.update(conn_env(emu.url, emu.api_key))
        table = clients(emu)
        for create, get, _ in table.values():  # warm up: imports, pools, connection lookups
            for i in range(5):
                get(create(i))
        profiler = make_profiler(args.profile)
        walls, cpus = run_rounds(table, args, profiler)
        for _, _, close in table.values():
            close()
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    return walls, cpus


def summarize(walls: Walls, cpus: Cpus, n: int) -> dict[str, dict[str, float]]:
    """Per client: wall ms (median, mean) and client CPU ms per create and per read, and their sums."""
    rows: dict[str, dict[str, float]] = {}
    for name in CLIENTS:
        row: dict[str, float] = {}
        for op in ("create", "get"):
            row[f"{op}_ms_median"] = statistics.median(walls[(name, op)]) * 1000
            row[f"{op}_ms_mean"] = statistics.fmean(walls[(name, op)]) * 1000
            row[f"{op}_cpu_ms"] = cpus[(name, op)] / n * 1000
        row["per_call_ms"] = row["create_ms_mean"] + row["get_ms_mean"]
        row["per_call_cpu_ms"] = row["create_cpu_ms"] + row["get_cpu_ms"]
        rows[name] = row
    return rows


def print_report(rows: dict[str, dict[str, float]], n: int, rounds: int) -> None:
    print(f"\n{n} creates and {n} reads per client, {rounds} interleaved rounds")
    keys = list(rows["hook"])
    print(f"{'':22}" + "".join(f"{c:>12}" for c in CLIENTS))
    for key in keys:
        print(f"{key:22}" + "".join(f"{rows[c][key]:>12.3f}" for c in CLIENTS))
    h, x, s = rows["hook"], rows["httpx"], rows["sdk"]
    ratios = {
        "ratio_vs_httpx": h["per_call_ms"] / x["per_call_ms"],
        "ratio_vs_sdk": h["per_call_ms"] / s["per_call_ms"],
        "create_ratio_vs_httpx": h["create_ms_mean"] / x["create_ms_mean"],
        "get_ratio_vs_httpx": h["get_ms_mean"] / x["get_ms_mean"],
        "cpu_ratio_vs_httpx": h["per_call_cpu_ms"] / x["per_call_cpu_ms"],
        "cpu_ratio_vs_sdk": h["per_call_cpu_ms"] / s["per_call_cpu_ms"],
    }
    print()
    for key, value in ratios.items():
        print(f"{key:24}{value:.3f}")
    print(json.dumps({"bench": "hook_overhead", **{k: round(v, 3) for k, v in ratios.items()}}))


def main() -> None:
    args = parse_args()
    quiet_airflow()
    header("hook_overhead")
    walls, cpus = measure_clients(args)
    n = args.rounds * args.per_round
    print_report(summarize(walls, cpus, n), n, args.rounds)


if __name__ == "__main__":
    main()
