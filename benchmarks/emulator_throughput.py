"""How fast the bundled Vapi emulator answers ``GET /call/{id}`` with 1,000 live calls.

Shows the emulator is never the bottleneck of the project's other benchmarks. It starts the
emulator as a subprocess on loopback, creates 1,000 calls that stay ``in-progress`` (number suffix
0006, speed 1, concurrency limit above 1,000), then hammers ``GET /call/{id}`` from several client
processes using stdlib ``http.client`` keep-alive connections (much cheaper per request than
httpx, so the load generator is not what is measured), for a fixed time.

Run: ``.venv/bin/python benchmarks/emulator_throughput.py [--calls 1000] [--seconds 10]
[--clients 2] [--connections 1]``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass

from airflow_provider_vapi.emulator import ASSISTANT_ID, DEFAULT_API_KEY, PHONE_NUMBER_ID
from airflow_provider_vapi.emulator.client import EmulatorHandle
from airflow_provider_vapi.emulator.server import EmulatorProcess

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
#: How long the calls may take to reach ``in-progress`` (2.5 s at speed 1; more on a busy machine).
IN_PROGRESS_TIMEOUT_S = 60.0
#: One worker's latencies (seconds) and error count.
Result = tuple[list[float], int]


def create_calls(url: str, count: int) -> list[str]:
    """``count`` long-lived calls, created in batches of 100 (``customers``)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    ids: list[str] = []
    while len(ids) < count:
        n = min(100, count - len(ids))
        body = {
            "assistantId": ASSISTANT_ID,
            "phoneNumberId": PHONE_NUMBER_ID,
            "customers": [{"number": f"+1555{len(ids) + i:05d}0006"} for i in range(n)],
        }
        conn.request("POST", "/call", json.dumps(body), {**AUTH, "Content-Type": "application/json"})
        answer = conn.getresponse()
        data = json.loads(answer.read())
        assert answer.status == 201, data
        assert not data["errors"], data["errors"][:2]
        ids.extend(c["id"] for c in data["results"])
    conn.close()
    return ids


def worker(
    url: str,
    ids: list[str],
    seconds: float,
    connections: int,
    offset: int,
    out: multiprocessing.Queue[Result],
) -> None:
    """One load-generating process: round-robin over ``connections`` keep-alive connections."""
    host, port = url.removeprefix("http://").split(":")
    conns = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    i = offset
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        if start >= deadline:
            break
        conn = conns[i % connections]
        try:
            conn.request("GET", f"/call/{ids[i % len(ids)]}", headers=AUTH)
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 200 or b'"status":"in-progress"' not in body:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conns[i % connections] = http.client.HTTPConnection(host, int(port), timeout=10)
        latencies.append(time.perf_counter() - start)
        i += 1
    out.put((latencies, errors))


@dataclass
class Run:
    """What one load run measured."""

    create_s: float
    elapsed: float
    live: int
    latencies: list[float]
    errors: int

    @property
    def total(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.total / self.elapsed

    def pct(self, p: float) -> float:
        """The ``p`` quantile of the (sorted) latencies, in ms."""
        return round(self.latencies[min(int(p * self.total), self.total - 1)] * 1000, 3)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes")
    parser.add_argument("--connections", type=int, default=1, help="keep-alive connections per client")
    return parser.parse_args()


def wait_in_progress(handle: EmulatorHandle, timeout: float = IN_PROGRESS_TIMEOUT_S) -> None:
    """Until every call is ``in-progress`` (queued -> ringing -> in-progress: 0.5 s + 2 s at speed 1)."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(c["status"] for c in handle.calls())
        if set(statuses) == {"in-progress"}:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"calls did not all reach in-progress within {timeout:g} s: {dict(statuses)}")
        time.sleep(0.2)


def generate_load(url: str, ids: list[str], args: argparse.Namespace) -> tuple[list[Result], float]:
    """Run ``args.clients`` worker processes; their results and the wall seconds they took."""
    out: multiprocessing.Queue[Result] = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=worker, args=(url, ids, args.seconds, args.connections, k * 7919, out))
        for k in range(args.clients)
    ]
    started = time.perf_counter()
    for w in workers:
        w.start()
    results = [out.get() for _ in workers]
    elapsed = time.perf_counter() - started
    for w in workers:
        w.join()
    return results, elapsed


def run(proc: EmulatorProcess, args: argparse.Namespace) -> Run:
    """Create the live calls, wait until they are in progress, then hammer them."""
    handle = proc.start()
    try:
        t0 = time.perf_counter()
        ids = create_calls(handle.url, args.calls)
        create_s = time.perf_counter() - t0
        wait_in_progress(handle)
        results, elapsed = generate_load(handle.url, ids, args)
        live = sum(1 for c in handle.calls() if c["status"] == "in-progress")
    finally:
        proc.stop()
    latencies = sorted(lat for lats, _ in results for lat in lats)
    errors = sum(e for _, e in results)
    return Run(create_s, elapsed, live, latencies, errors)


def print_report(command: str, proc: EmulatorProcess, args: argparse.Namespace, r: Run) -> None:
    print(f"command:   {command}")
    print(f"emulator:  {shlex.join(proc.command)}")
    print(
        f"machine:   {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )
    print(
        f"load:      {args.clients} client processes x {args.connections} keep-alive connection(s), "
        f"http.client, {args.seconds:g} s"
    )
    print(
        f"calls:     {args.calls} live (in-progress) calls, created in {r.create_s:.2f} s;"
        f" still live after: {r.live}"
    )
    print(f"requests:  {r.total} GET /call/{{id}} in {r.elapsed:.2f} s, errors {r.errors}")
    print(f"rate:      {r.rps:,.0f} requests/s")
    print(
        f"latency:   p50 {r.pct(0.50)} ms, p95 {r.pct(0.95)} ms, p99 {r.pct(0.99)} ms, "
        f"mean {statistics.fmean(r.latencies) * 1000:.3f} ms"
    )


def print_json(args: argparse.Namespace, r: Run) -> None:
    summary = {
        "bench": "emulator_throughput",
        "calls": args.calls,
        "requests_per_s": round(r.rps, 1),
        "requests": r.total,
        "errors": r.errors,
        "p50_ms": r.pct(0.50),
        "p95_ms": r.pct(0.95),
        "p99_ms": r.pct(0.99),
        "clients": args.clients,
        "connections_per_client": args.connections,
        "seconds": args.seconds,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(summary))


def main() -> None:
    args = parse_args()
    command = shlex.join([sys.executable, *sys.argv])
    proc = EmulatorProcess(port=0, speed=1.0, concurrency_limit=args.calls + 10, request_log_size=1000)
    r = run(proc, args)
    print_report(command, proc, args, r)
    print_json(args, r)
    if r.errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
