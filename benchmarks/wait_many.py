"""Waiting on N Vapi calls at once in one event loop, as the triggerer runs deferred tasks.

Contenders, each measured in its own fresh process against the same emulator (a subprocess):

* ``vapi``: this provider's ``CallStatusTrigger`` (all triggers share one change poll);
* ``http_async_hook``: a per-call trigger on the HTTP provider's ``HttpAsyncHook`` polling
  ``GET /call/{id}`` until ``ended``, written the way its docs show (``hook.run(endpoint=...)``);
* ``sdk``: a per-call trigger polling with Vapi's official ``AsyncVapi`` client.

All poll at the same interval. N calls are placed (they stay in progress), the waiting process
starts one waiter per call, and after a steady stretch the calls are ended through the emulator's
admin API, spread over several intervals. Measured: API requests per interval (the emulator's
request log), CPU seconds and peak RSS of the waiting process, the delay between a call's
``endedAt`` and its waiter's event, and the event-loop lag (how late a 50 ms sleep in the same loop
wakes: what every other trigger of a triggerer suffers while the waiters work).

    .venv/bin/python benchmarks/wait_many.py                 # N=100, 1 s interval (~1 minute)
    .venv/bin/python benchmarks/wait_many.py --n 1000 --poll-interval 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conn_env, header, percentile, quiet_airflow, ts
from _wait_worker import worker_main

CONTENDERS = ("vapi", "http_async_hook", "sdk")
HELD_SUFFIX = "0006"  # the emulator keeps these calls in progress until they are ended
#: The table's rows: label, key of a contender's figures, format.
TABLE_ROWS = (
    ("requests/interval (steady)", "requests_per_interval_steady", "{:.1f}"),
    ("requests/interval (overall)", "requests_per_interval_overall", "{:.1f}"),
    ("requests at start-up", "requests_startup", "{}"),
    ("CPU s (waiting process)", "cpu_s", "{:.2f}"),
    ("  of which start-up", "cpu_s_startup", "{:.2f}"),
    ("  per interval (steady)", "cpu_s_per_interval_steady", "{:.3f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.1f}"),
    ("RSS KiB per waiting call", "rss_kib_per_call", "{:.1f}"),
    ("event delay p50 s", "delay_p50_s", "{:.2f}"),
    ("event delay p95 s", "delay_p95_s", "{:.2f}"),
    ("event delay max s", "delay_max_s", "{:.2f}"),
    ("event-loop lag p50 ms", "lag_p50_ms", "{:.1f}"),
    ("event-loop lag p99 ms", "lag_p99_ms", "{:.1f}"),
    ("event-loop lag max ms", "lag_max_ms", "{:.0f}"),
)


def place_held_calls(emu: Any, n: int) -> list[str]:
    ids: list[str] = []
    with emu.client(timeout=60) as http:
        for start in range(0, n, 100):
            customers = [
                {"number": f"+1555{i % 1000:03d}{HELD_SUFFIX}"} for i in range(start, min(n, start + 100))
            ]
            body = {
                "assistantId": emu.assistant_id,
                "phoneNumberId": emu.phone_number_id,
                "customers": customers,
            }
            answer = http.post("/call", json=body)
            answer.raise_for_status()
            ids += [c["id"] for c in answer.json()["results"]]
    deadline = time.time() + 60
    while any(c["status"] != "in-progress" for c in emu.calls()):
        if time.time() > deadline:
            raise RuntimeError("calls did not all reach in-progress")
        time.sleep(0.2)
    return ids


@dataclass
class Timeline:
    """When, in wall time, a contender's run passed its milestones."""

    ready: float  # the worker said READY: all its waiters run
    steady_end: float  # the calls start to end
    done: float  # the worker has reported


def prepare_calls(emu: Any, contender: str, args: argparse.Namespace) -> tuple[list[str], str, Path]:
    """N held calls, one ended call to warm up on, the ids' file; the request log cleared."""
    emu.reset()
    ids = place_held_calls(emu, args.n)
    warm = emu.create_call(f"+15550000{HELD_SUFFIX[1:]}")["id"]
    emu._send("POST", f"/calls/{warm}/end")
    ids_file = Path(args.tmp) / f"ids-{contender}.json"
    ids_file.write_text(json.dumps(ids))
    emu.clear_requests()
    return ids, warm, ids_file


def start_worker(
    emu: Any, contender: str, args: argparse.Namespace, env: dict[str, str], ids_file: Path, warm: str
) -> subprocess.Popen[str]:
    """The waiting process, once it says READY (all its waiters started)."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        contender,
        "--ids-file",
        str(ids_file),
        "--warm-id",
        warm,
        "--poll-interval",
        str(args.poll_interval),
        "--url",
        emu.url,
        "--api-key",
        emu.api_key,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{contender} worker failed to start: {line!r}")
    return proc


def end_calls(emu: Any, ids: list[str], args: argparse.Namespace) -> dict[str, float]:
    """End the calls in waves spread over several intervals (admin API: not in the request log)."""
    ended_at: dict[str, float] = {}
    waves = max(1, args.end_intervals * 4)
    per_wave = -(-len(ids) // waves)
    for w in range(waves):
        wave_start = time.time()
        for cid in ids[w * per_wave : (w + 1) * per_wave]:
            call = emu._send("POST", f"/calls/{cid}/end")
            ended_at[cid] = ts(call["endedAt"])
        time.sleep(max(0.0, args.poll_interval / 4 - (time.time() - wave_start)))
    return ended_at


def worker_result(proc: subprocess.Popen[str], contender: str, args: argparse.Namespace) -> dict[str, Any]:
    """The JSON the waiting process prints last, once all its waiters have their event."""
    try:
        out, _ = proc.communicate(timeout=args.poll_interval * 20 + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(
            f"{contender} worker did not finish: its waiters never all got their event"
        ) from None
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} worker failed")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def cpu_at(samples: list[list[float]], moment: float) -> float:
    """The process's CPU seconds at the last sample up to ``moment`` (the first if none)."""
    before = [c for t, c in samples if t <= moment]
    return before[-1] if before else samples[0][1]


def run_contender(emu: Any, contender: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    ids, warm, ids_file = prepare_calls(emu, contender, args)
    proc = start_worker(emu, contender, args, env, ids_file, warm)
    ready = time.time()
    time.sleep(args.poll_interval * args.steady_intervals)
    steady_end = time.time()
    ended_at = end_calls(emu, ids, args)
    result = worker_result(proc, contender, args)
    timeline = Timeline(ready, steady_end, time.time())
    return contender_row(contender, args, result, emu.requests(), ids, ended_at, timeline)


def contender_row(
    contender: str,
    args: argparse.Namespace,
    result: dict[str, Any],
    log: list[dict[str, Any]],
    ids: list[str],
    ended_at: dict[str, float],
    timeline: Timeline,
) -> dict[str, Any]:
    """A contender's figures from its worker's result and the emulator's request log."""
    ready, steady_end = timeline.ready, timeline.steady_end
    stamps = [ts(r["timestamp"]) for r in log]
    intervals_total = (timeline.done - ready) / args.poll_interval
    steady = sum(1 for s in stamps if ready <= s < steady_end)
    delays = [result["events"][cid] - ended_at[cid] for cid in ids]
    samples = result["cpu_samples"]
    steady_cpu = cpu_at(samples, steady_end) - cpu_at(samples, ready)
    rss_delta = max(0, result["peak_rss_kib"] - result["base_rss_kib"])
    return {
        "contender": contender,
        "requests_total": len(log),
        "requests_startup": sum(1 for s in stamps if s < ready),
        "requests_per_interval_steady": steady / args.steady_intervals,
        "requests_per_interval_overall": sum(1 for s in stamps if s >= ready) / intervals_total,
        "list_requests": sum(1 for r in log if r["path"] == "/call"),
        "get_requests": sum(1 for r in log if r["path"].startswith("/call/")),
        "cpu_s": result["cpu_s"],
        "cpu_s_startup": cpu_at(samples, ready) - samples[0][1],
        "cpu_s_per_interval_steady": steady_cpu / args.steady_intervals,
        "wall_s": result["wall_s"],
        "peak_rss_mib": result["peak_rss_kib"] / 1024,
        "rss_kib_per_call": rss_delta / len(ids),
        "delay_p50_s": percentile(delays, 50),
        "delay_p95_s": percentile(delays, 95),
        "delay_max_s": max(delays),
        "lag_p50_ms": percentile(result["lags"], 50) * 1000,
        "lag_p99_ms": percentile(result["lags"], 99) * 1000,
        "lag_max_ms": max(result["lags"]) * 1000,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="calls waited on at once (default 100)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument("--steady-intervals", type=int, default=5, help="intervals measured before calls end")
    parser.add_argument("--end-intervals", type=int, default=5, help="intervals over which calls end")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--ids-file", help=argparse.SUPPRESS)
    parser.add_argument("--warm-id", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_contenders(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each contender of ``--contenders`` against one emulator, one JSON line each as it ends."""
    import tempfile

    from airflow_provider_vapi.emulator.server import EmulatorProcess

    contenders = [c for c in args.contenders.split(",") if c]
    emulator = EmulatorProcess(
        speed=1.0,
        concurrency_limit=args.n + 10,
        request_log_size=5_000_000,
        log_level="error",
        # Our trigger waits for the analysis Vapi writes after `ended`; the peers stop at `ended`.
        # With no analysis lag both mean the same moment, so the event delays compare like with like.
        analysis_delay=0.0,
    )
    print(f"emulator: {' '.join(emulator.command[1:])}")
    print(
        f"n={args.n} poll_interval={args.poll_interval}s steady={args.steady_intervals} intervals, "
        f"calls end over {args.end_intervals} intervals; one fresh process per contender"
    )
    rows = []
    with emulator as emu, tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        env = conn_env(emu.url, emu.api_key)
        for contender in contenders:
            row = run_contender(emu, contender, args, env)
            rows.append(row)
            print(
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
                flush=True,
            )
    return rows


def print_table(by: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"{'':30}" + "".join(f"{c:>18}" for c in by))
    for label, key, fmt in TABLE_ROWS:
        print(f"{label:30}" + "".join(f"{fmt.format(by[c][key]):>18}" for c in by))


def ratio(other: float, ours: float, digits: int) -> str:
    """``other / ours`` as ``12.3x``; ``n/a`` when ours measured zero (a short run can: nothing to divide by)."""
    return f"{other / ours:.{digits}f}x" if ours > 0 else "n/a"


def print_ratios(by: dict[str, dict[str, Any]]) -> None:
    """Each peer's figures over ours, when ours ran."""
    if "vapi" not in by:
        return
    print()
    for other in (c for c in by if c != "vapi"):
        o, v = by[other], by["vapi"]
        print(
            f"{other} / vapi: requests per interval (steady) "
            f"{ratio(o['requests_per_interval_steady'], v['requests_per_interval_steady'], 0)}, "
            f"overall {ratio(o['requests_per_interval_overall'], v['requests_per_interval_overall'], 1)}, "
            f"CPU {ratio(o['cpu_s'], v['cpu_s'], 1)} (steady per interval "
            f"{ratio(o['cpu_s_per_interval_steady'], v['cpu_s_per_interval_steady'], 0)}), RSS per call "
            f"{ratio(o['rss_kib_per_call'], v['rss_kib_per_call'], 1)}"
        )


def print_summary(args: argparse.Namespace, by: dict[str, dict[str, Any]]) -> None:
    summary = {
        "bench": "wait_many",
        "n": args.n,
        "poll_interval_s": args.poll_interval,
        "requests_per_interval": {c: round(r["requests_per_interval_steady"], 2) for c, r in by.items()},
        "requests_per_interval_overall": {
            c: round(r["requests_per_interval_overall"], 2) for c, r in by.items()
        },
        "cpu_s": {c: round(r["cpu_s"], 3) for c, r in by.items()},
        "cpu_s_per_interval_steady": {c: round(r["cpu_s_per_interval_steady"], 4) for c, r in by.items()},
        "rss_kib_per_call": {c: round(r["rss_kib_per_call"], 2) for c, r in by.items()},
        "event_delay_p95_s": {c: round(r["delay_p95_s"], 3) for c, r in by.items()},
        "event_loop_lag_p99_ms": {c: round(r["lag_p99_ms"], 1) for c, r in by.items()},
    }
    print(json.dumps(summary))


def main() -> None:
    args = parse_args()
    quiet_airflow()

    if args.worker:
        os.environ.update(conn_env(args.url, args.api_key))
        result = asyncio.run(worker_main(args))
        print(json.dumps(result), flush=True)
        return

    header("wait_many")
    rows = run_contenders(args)
    by = {r["contender"]: r for r in rows}
    print_table(by)
    print_ratios(by)
    print_summary(args, by)


if __name__ == "__main__":
    main()
