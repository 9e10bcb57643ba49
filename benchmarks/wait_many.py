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
import gc
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conn_env, header, percentile, quiet_airflow

CONTENDERS = ("vapi", "http_async_hook", "sdk")
HELD_SUFFIX = "0006"  # the emulator keeps these calls in progress until they are ended
LAG_PROBE_S = 0.05


# ------------------------------------------------------------------------------------------------
# The waiting side (runs in its own process: python wait_many.py --worker CONTENDER ...)
# ------------------------------------------------------------------------------------------------


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def make_waiter(contender: str, call_id: str, interval: float, api_key: str, url: str) -> Any:
    """An object with an async ``run()`` yielding one event, like a trigger."""
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    if contender == "vapi":
        from airflow_provider_vapi.triggers import CallStatusTrigger

        return CallStatusTrigger(call_id, "vapi_default", poll_interval=interval)

    if contender == "http_async_hook":
        import aiohttp
        from airflow.providers.http.hooks.http import HttpAsyncHook

        class HttpCallTrigger(BaseTrigger):
            """What a user writes with the HTTP provider: poll GET /call/{id} until ended."""

            def __init__(self, call_id: str, poll_interval: float) -> None:
                super().__init__()
                self.call_id, self.poll_interval = call_id, poll_interval

            def serialize(self) -> tuple[str, dict[str, Any]]:
                return ("HttpCallTrigger", {"call_id": self.call_id, "poll_interval": self.poll_interval})

            async def run(self):
                hook = HttpAsyncHook(method="GET", http_conn_id="vapi_http")
                # One session per trigger (the provider's own HttpSensorTrigger opens one per poke).
                async with aiohttp.ClientSession() as session:
                    while True:
                        response = await hook.run(
                            session=session,
                            endpoint=f"call/{self.call_id}",
                            headers={"Authorization": f"Bearer {api_key}"},
                        )
                        call = await response.json()
                        if call["status"] == "ended":
                            yield TriggerEvent({"status": "success", "call_id": self.call_id})
                            return
                        await asyncio.sleep(self.poll_interval)

        return HttpCallTrigger(call_id, interval)

    from vapi import AsyncVapi

    class SdkCallTrigger(BaseTrigger):
        """What a user writes with Vapi's SDK: poll calls.get until ended."""

        def __init__(self, call_id: str, poll_interval: float) -> None:
            super().__init__()
            self.call_id, self.poll_interval = call_id, poll_interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return ("SdkCallTrigger", {"call_id": self.call_id, "poll_interval": self.poll_interval})

        async def run(self):
            client = AsyncVapi(token=api_key, base_url=url)
            while True:
                call = await client.calls.get(self.call_id)
                if call.status == "ended":
                    yield TriggerEvent({"status": "success", "call_id": self.call_id})
                    return
                await asyncio.sleep(self.poll_interval)

    return SdkCallTrigger(call_id, interval)


async def worker_main(args: argparse.Namespace) -> dict[str, Any]:
    ids: list[str] = json.loads(Path(args.ids_file).read_text())
    events: dict[str, float] = {}

    async def wait(call_id: str) -> None:
        trigger = make_waiter(args.worker, call_id, args.poll_interval, args.api_key, args.url)
        async for event in trigger.run():
            assert event.payload["status"] == "success", event.payload
            events[call_id] = time.time()

    # Warm up on one call that has ended already: imports, connection lookups and lazily built
    # models happen now, so the baseline below leaves only what waiting costs.
    await wait(args.warm_id)
    events.clear()
    gc.collect()
    base_rss = rss_kib()
    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        while True:
            samples.append((time.time(), time.process_time()))
            await asyncio.sleep(0.1)

    lags: list[float] = []

    async def probe_lag() -> None:
        # How late a 50 ms sleep wakes: what every other trigger of the loop suffers meanwhile.
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            lags.append(loop.time() - before - LAG_PROBE_S)

    sampler = asyncio.create_task(sample())
    prober = asyncio.create_task(probe_lag())
    cpu0, wall0 = time.process_time(), time.time()
    tasks = [asyncio.create_task(wait(cid)) for cid in ids]
    await asyncio.sleep(args.poll_interval * 1.5)
    print("READY", flush=True)
    await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu0
    sampler.cancel()
    prober.cancel()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "events": events,
        "cpu_s": cpu,
        "wall_s": time.time() - wall0,
        "base_rss_kib": base_rss,
        "peak_rss_kib": peak,
        "cpu_samples": samples,
        "lags": lags,
    }


# ------------------------------------------------------------------------------------------------
# The orchestrating side
# ------------------------------------------------------------------------------------------------


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


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


def run_contender(emu: Any, contender: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    emu.reset()
    ids = place_held_calls(emu, args.n)
    warm = emu.create_call(f"+15550000{HELD_SUFFIX[1:]}")["id"]
    emu._send("POST", f"/calls/{warm}/end")
    ids_file = Path(args.tmp) / f"ids-{contender}.json"
    ids_file.write_text(json.dumps(ids))
    emu.clear_requests()
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
        raise RuntimeError(f"{contender} worker failed to start: {line!r}")
    ready = time.time()
    time.sleep(args.poll_interval * args.steady_intervals)
    steady_end = time.time()
    # End the calls in waves spread over several intervals (admin API: not in the request log).
    ended_at: dict[str, float] = {}
    waves = max(1, args.end_intervals * 4)
    per_wave = -(-len(ids) // waves)
    for w in range(waves):
        wave_start = time.time()
        for cid in ids[w * per_wave : (w + 1) * per_wave]:
            call = emu._send("POST", f"/calls/{cid}/end")
            ended_at[cid] = ts(call["endedAt"])
        time.sleep(max(0.0, args.poll_interval / 4 - (time.time() - wave_start)))
    out, _ = proc.communicate(timeout=args.poll_interval * 20 + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} worker failed")
    result = json.loads(out.strip().splitlines()[-1])
    done = time.time()
    log = emu.requests()
    stamps = [ts(r["timestamp"]) for r in log]
    intervals_total = (done - ready) / args.poll_interval
    steady = sum(1 for s in stamps if ready <= s < steady_end)
    delays = [result["events"][cid] - ended_at[cid] for cid in ids]

    def cpu_at(moment: float) -> float:
        before = [c for t, c in result["cpu_samples"] if t <= moment]
        return before[-1] if before else result["cpu_samples"][0][1]

    steady_cpu = cpu_at(steady_end) - cpu_at(ready)
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
        "cpu_s_startup": cpu_at(ready) - result["cpu_samples"][0][1],
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


def main() -> None:
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
    args = parser.parse_args()
    quiet_airflow()

    if args.worker:
        os.environ.update(conn_env(args.url, args.api_key))
        result = asyncio.run(worker_main(args))
        print(json.dumps(result), flush=True)
        return

    import tempfile

    from airflow_provider_vapi.emulator.server import EmulatorProcess

    header("wait_many")
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

    by = {r["contender"]: r for r in rows}
    cols = [
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
    ]
    print()
    print(f"{'':30}" + "".join(f"{c:>18}" for c in by))
    for label, key, fmt in cols:
        print(f"{label:30}" + "".join(f"{fmt.format(by[c][key]):>18}" for c in by))
    if "vapi" in by:
        print()
        for other in (c for c in by if c != "vapi"):
            o, v = by[other], by["vapi"]
            print(
                f"{other} / vapi: requests per interval (steady) "
                f"{o['requests_per_interval_steady'] / max(v['requests_per_interval_steady'], 1e-9):.0f}x, "
                f"overall {o['requests_per_interval_overall'] / max(v['requests_per_interval_overall'], 1e-9):.1f}x, "
                f"CPU {o['cpu_s'] / v['cpu_s']:.1f}x (steady per interval "
                f"{o['cpu_s_per_interval_steady'] / max(v['cpu_s_per_interval_steady'], 1e-9):.0f}x), RSS per call "
                f"{o['rss_kib_per_call'] / max(v['rss_kib_per_call'], 1e-9):.1f}x"
            )
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


if __name__ == "__main__":
    main()
