"""10,000 Vapi calls ending within one hour, turned into asset events (DAG runs) by one triggerer.

The hour is compressed (``--hour-seconds``): the calls end over that many seconds of wall time, in
waves every ``--wave-seconds`` (bulk-seeded ended calls, their ``updatedAt`` spread over the wave
just gone, so each is listable from the moment its wave is answered). One in four is inbound; the
waves alternate between two assistants. ``--watchers`` watchers with different filters run in one
asyncio loop, each contender in its own fresh process against the same emulator (a subprocess):

* ``vapi``: ``VapiCallEventTrigger`` through Airflow's ``SharedStreamManager`` (the triggerer's
  code path, ack mode), sharing the one ``GET /call?updatedAtGt=`` poll per interval with
  ``--waits`` ``CallStatusTrigger`` waiting on calls that stay in progress;
* ``naive``: one independent poller per filter, each listing ``VapiHook.alist_calls(updatedAtGt=
  <its own cursor>)`` every interval;
* ``webhook (theory)``: not run: Vapi's end-of-call report is pushed to a server URL.

Measured: ``GET /call`` per poll interval and requests in all (the emulator's request log), CPU
seconds and peak RSS of the watching process, events stored, duplicates and missing calls per
watcher, and the latency from a call becoming listable as ended to its event being stored (a
stand-in for the triggerer's supervisor stores fired events once per ``--sync-seconds``).

    .venv/bin/python benchmarks/call_events.py --quick   # 1,000 calls, under a minute
    .venv/bin/python benchmarks/call_events.py           # 10,000 calls over 120 s (~5 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _call_events_worker import worker_main
from _common import conn_env, header, percentile, quiet_airflow, ts
from wait_many import place_held_calls

CONTENDERS = ("vapi", "naive")
WEBHOOK = "webhook (theory)"
#: The table's rows: label, key of a contender's figures, format; then the webhook's theoretical column.
TABLE_ROWS = (
    ("GET /call per poll interval", "list_per_interval", "{:.2f}"),
    ("  changes (updatedAtGt)", "changes_per_interval", "{:.2f}"),
    ("  census (createdAtGe)", "census_per_interval", "{:.2f}"),
    ("requests at start-up", "requests_startup", "{}"),
    ("requests while calls end", "requests_run", "{}"),
    ("CPU s (watching process)", "cpu_s", "{:.1f}"),
    ("  per poll interval", "cpu_per_interval", "{:.3f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.1f}"),
    ("events stored", "events", "{}"),
    ("duplicates", "duplicates", "{}"),
    ("missing", "missing", "{}"),
    ("latency p50 s", "latency_p50_s", "{:.2f}"),
    ("latency p95 s", "latency_p95_s", "{:.2f}"),
    ("latency max s", "latency_max_s", "{:.2f}"),
    ("event-loop lag p99 ms", "lag_p99_ms", "{:.1f}"),
    ("state writes", "state_writes", "{}"),
    ("largest state KiB", "state_max_kib", "{:.1f}"),
)
WEBHOOK_COLUMN = {
    "list_per_interval": "0 (push)",
    "changes_per_interval": "0",
    "census_per_interval": "0",
    "requests_startup": "0",
    "requests_run": "1 POST in per call",
    "events": "1 per call (all)",
    "duplicates": "0",
    "missing": "all while down",
    "latency_p50_s": "~0 s + network",
    "latency_p95_s": "~0 s + network",
    "latency_max_s": "~0 s + network",
}
NOTES = {
    "vapi": "restart: resumes from its ledger",
    "naive": "restart: cursor lost (not run)",
    WEBHOOK: "sent once, no retry: lost while receiver is down",
}


def filter_specs(assistant_a: str, assistant_b: str) -> list[tuple[str, dict[str, Any]]]:
    """The watchers' filters by label, in the order ``--watchers`` takes them."""
    return [
        ("direction inbound", {"direction": "inbound"}),
        ("direction outbound", {"direction": "outbound"}),
        ("assistant A", {"assistant_id": assistant_a}),
        ("assistant B, completed", {"assistant_id": assistant_b, "outcomes": ["completed"]}),
        ("not reached or voicemail", {"outcomes": ["not_reached", "voicemail"]}),
        ("every ended call", {}),
    ]


def prepare(emu: Any, waits: int, held_file: Path) -> tuple[str, str]:
    """A fresh emulator: a second assistant, ``waits`` held calls; the request log cleared. The
    two assistants' ids."""
    emu.reset()
    with emu.client() as http:
        answer = http.post("/assistant", json={"name": "call_events benchmark B"})
        answer.raise_for_status()
        assistant_b = answer.json()["id"]
    held = place_held_calls(emu, waits) if waits else []
    held_file.write_text(json.dumps(held))
    emu.clear_requests()
    return emu.assistant_id, assistant_b


def start_worker(
    emu: Any, contender: str, args: argparse.Namespace, specs: list[dict[str, Any]], held_file: Path
) -> subprocess.Popen[str]:
    """The watching process, once it says READY (every watcher placed, its first polls done)."""
    command = [sys.executable, __file__, "--worker", contender, "--filters", json.dumps(specs)]
    command += ["--held-file", str(held_file) if contender == "vapi" else ""]
    command += ["--poll-interval", str(args.poll_interval), "--sync-seconds", str(args.sync_seconds)]
    command += ["--quiet-intervals", str(args.quiet_intervals), "--url", emu.url, "--api-key", emu.api_key]
    env = {**os.environ, **conn_env(emu.url, emu.api_key)}
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{contender} worker failed to start: {line!r}")
    return proc


def end_calls(emu: Any, args: argparse.Namespace, assistants: tuple[str, str]) -> dict[str, float]:
    """Seed the N ended calls in waves over ``--hour-seconds``; when each became listable (the
    moment its wave was sent: its stamps are at most that, the emulator's clock being ours)."""
    visible: dict[str, float] = {}
    waves = max(1, round(args.hour_seconds / args.wave_seconds))
    begin = time.time()
    start = datetime.fromtimestamp(begin - args.wave_seconds, UTC)
    for w in range(waves):
        time.sleep(max(0.0, begin + w * args.wave_seconds - time.time()))
        count = args.n * (w + 1) // waves - args.n * w // waves
        sent = time.time()
        end = max(datetime.fromtimestamp(sent, UTC), start + timedelta(milliseconds=count + 1))
        if count:
            seeded = emu.seed_calls(
                count, start, end, call_type="mixed", assistant_id=assistants[w % 2], ids=True
            )
            visible.update(dict.fromkeys(seeded["ids"], sent))
        start = end
    return visible


def worker_result(proc: subprocess.Popen[str], contender: str, args: argparse.Namespace) -> dict[str, Any]:
    """Tell the worker every call has ended; the JSON it prints once no event has come for a while."""
    try:
        out, _ = proc.communicate("ENDED\n", timeout=args.poll_interval * 20 + 180)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{contender} worker did not finish") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} worker failed")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_contender(emu: Any, contender: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        assistants = prepare(emu, args.waits if contender == "vapi" else 0, Path(tmp) / "held.json")
        labelled = filter_specs(*assistants)[: args.watchers]
        specs = [spec for _, spec in labelled]
        proc = start_worker(emu, contender, args, specs, Path(tmp) / "held.json")
    visible = end_calls(emu, args, assistants)
    result = worker_result(proc, contender, args)
    expected = [set(ids) & visible.keys() for ids in result["matching"]]
    return contender_row(contender, args, result, emu.requests(), expected, visible) | {
        "labels": [label for label, _ in labelled]
    }


def route(request: dict[str, Any]) -> str:
    """``GET /call``, ``GET /call/{id}``, ``GET /assistant/{id}``...: a request's route."""
    parts = request["path"].split("/")
    return f"{request['method']} /{parts[1]}" + ("/{id}" if len(parts) > 2 else "")


def delivery(stored: list[list[Any]], expected: list[set[str]]) -> dict[str, Any]:
    """Per watcher: events, duplicates, missing and unexpected calls."""
    by_watcher: list[list[str]] = [[] for _ in expected]
    for watcher, call_id, _ in stored:
        by_watcher[watcher].append(call_id)
    per = [
        {
            "expected": len(want),
            "events": len(got),
            "duplicates": len(got) - len(set(got)),
            "missing": len(want - set(got)),
            "unexpected": len(set(got) - want),
        }
        for got, want in zip(by_watcher, expected, strict=True)
    ]
    totals = {
        k: sum(p[k] for p in per) for k in ("expected", "events", "duplicates", "missing", "unexpected")
    }
    return totals | {"per_watcher": per}


def contender_row(
    contender: str,
    args: argparse.Namespace,
    result: dict[str, Any],
    log: list[dict[str, Any]],
    expected: list[set[str]],
    visible: dict[str, float],
) -> dict[str, Any]:
    """A contender's figures from its worker's result and the emulator's request log."""
    ready, done = result["ready"], result["done"]
    intervals = (done - ready) / args.poll_interval
    stamps = [(ts(r["timestamp"]), r) for r in log]
    lists = [r for s, r in stamps if s >= ready and r["method"] == "GET" and r["path"] == "/call"]
    census = sum(1 for r in lists if "createdAtGe" in r["query"])
    first: dict[tuple[int, str], float] = {}
    for watcher, call_id, at in result["stored"]:
        first.setdefault((watcher, call_id), at)
    latencies = [at - visible[cid] for (_, cid), at in first.items() if cid in visible]
    return {
        "contender": contender,
        "list_per_interval": len(lists) / intervals,
        "changes_per_interval": (len(lists) - census) / intervals,
        "census_per_interval": census / intervals,
        "requests_startup": sum(1 for s, _ in stamps if s < ready),
        "requests_run": sum(1 for s, _ in stamps if s >= ready),
        "routes": dict(Counter(route(r) for _, r in stamps)),
        "cpu_s": result["cpu_s"],
        "cpu_per_interval": result["cpu_s"] / intervals,
        "peak_rss_mib": result["peak_rss_kib"] / 1024,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_max_s": max(latencies, default=float("nan")),
        "lag_p99_ms": percentile(result["lags"], 99) * 1000,
        "state_writes": result["state_writes"],
        "state_max_kib": result["state_max_bytes"] / 1024,
        "wall_s": done - ready,
        "failures": result["failures"],
    } | delivery(result["stored"], expected)


def print_table(by: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"{'':30}" + "".join(f"{c:>20}" for c in [*by, WEBHOOK]))
    for label, key, fmt in TABLE_ROWS:
        cells = [fmt.format(by[c][key]) for c in by] + [WEBHOOK_COLUMN.get(key, "-")]
        print(f"{label:30}" + "".join(f"{cell:>20}" for cell in cells))
    print()
    for name in [*by, WEBHOOK]:
        print(f"{name}: {NOTES.get(name, '')}")


def print_watchers(by: dict[str, dict[str, Any]]) -> None:
    """Per watcher and contender: events / calls its filter matches, duplicates, missing, unexpected
    (each contender has calls of its own: the mix of a wave is random)."""
    print()
    labels = next(iter(by.values()))["labels"]
    print(f"{'watcher':30}" + "".join(f"{c + ' events/matching dup miss unexp':>40}" for c in by))
    for i, label in enumerate(labels):
        cells = [by[c]["per_watcher"][i] for c in by]
        text = "{events}/{expected} {duplicates} {missing} {unexpected}"
        print(f"{label:30}" + "".join(f"{text.format(**p):>40}" for p in cells))


def print_summary(args: argparse.Namespace, by: dict[str, dict[str, Any]]) -> None:
    aim = args.poll_interval + 2.0
    print()
    for c, r in by.items():
        verdict = "met" if r["latency_p95_s"] < aim else "NOT met"
        print(f"aim p95 < poll interval + 2 s = {aim:g} s: {c} {r['latency_p95_s']:.2f} s ({verdict})")
        if r["failures"]:
            print(f"{c}: watcher tasks failed: {r['failures']}")
    keys: tuple[str, ...] = (
        "list_per_interval",
        "requests_run",
        "cpu_s",
        "peak_rss_mib",
        "events",
        "duplicates",
        "missing",
    )
    keys += ("latency_p50_s", "latency_p95_s", "latency_max_s")
    summary = {
        "bench": "call_events",
        "n": args.n,
        "hour_seconds": args.hour_seconds,
        "poll_interval_s": args.poll_interval,
        "watchers": args.watchers,
        "waits": args.waits,
        **{k: {c: round(r[k], 3) for c, r in by.items()} for k in keys},
    }
    print(json.dumps(summary))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="calls that end (default 10000)")
    parser.add_argument("--hour-seconds", type=float, default=120.0, help="wall seconds the hour takes (120)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--watchers", type=int, default=4, choices=range(1, 7), help="filters (default 4)")
    parser.add_argument("--waits", type=int, default=100, help="CallStatusTriggers beside vapi's (100)")
    parser.add_argument("--sync-seconds", type=float, default=1.0, help="the supervisor's round (1)")
    parser.add_argument("--wave-seconds", type=float, default=0.1, help="calls end in waves this often")
    parser.add_argument("--quiet-intervals", type=float, default=1.0, help="no event for this long: done")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--quick", action="store_true", help="1,000 calls over 8 s, 2 s interval, 20 waits")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--filters", help=argparse.SUPPRESS)
    parser.add_argument("--held-file", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.hour_seconds, args.poll_interval, args.waits = 1000, 8.0, 2.0, 20
    return args


def run_contenders(args: argparse.Namespace) -> list[dict[str, Any]]:
    from airflow_provider_vapi.emulator.server import EmulatorProcess

    emulator = EmulatorProcess(
        speed=1.0,  # held calls stay in progress for 600 s; the calls that end are seeded ended
        concurrency_limit=args.waits + 10,
        request_log_size=5_000_000,
        log_level="error",
        analysis_delay=0.0,  # seeded calls carry their analysis: ended and analysed are one moment
    )
    print(f"emulator: {' '.join(emulator.command[1:])}")
    print(
        f"n={args.n} calls end over {args.hour_seconds:g} s (an hour {3600 / args.hour_seconds:g}x faster), "
        f"waves every {args.wave_seconds:g} s; poll_interval={args.poll_interval:g}s watchers={args.watchers} "
        f"waits={args.waits} (vapi only) sync={args.sync_seconds:g}s; one fresh process per contender"
    )
    rows = []
    with emulator as emu:
        for contender in [c for c in args.contenders.split(",") if c]:
            row = run_contender(emu, contender, args)
            rows.append(row)
            brief = {
                k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k != "per_watcher"
            }
            print(json.dumps(brief), flush=True)
    return rows


def main() -> None:
    args = parse_args()
    quiet_airflow()
    if args.worker:
        args.held = Path(args.held_file).read_text() if args.held_file else ""
        result = asyncio.run(worker_main(args))
        print(json.dumps(result), flush=True)
        return
    header("call_events")
    rows = run_contenders(args)
    by = {r["contender"]: r for r in rows}
    print_table(by)
    print_watchers(by)
    print_summary(args, by)


if __name__ == "__main__":
    main()
