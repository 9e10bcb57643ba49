"""How fast the bundled Vapi emulator answers ``GET /call/{id}`` with 1,000 live calls.

Shows the emulator is never the bottleneck of the project's other benchmarks. It starts the
emulator as a subprocess on loopback, creates 1,000 calls that stay ``in-progress`` (number suffix
0006, speed 1, concurrency limit above 1,000), then hammers ``GET /call/{id}`` from several client
processes using stdlib ``http.client`` keep-alive connections (much cheaper per request than
httpx, so the load generator is not what is measured), for a fixed time.

Run: ``.venv/bin/python benchmarks/emulator_throughput.py [--calls 1000] [--seconds 10]
[--clients 2] [--connections 4]``. Ends with one JSON line.
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

from airflow_provider_vapi.emulator import ASSISTANT_ID, DEFAULT_API_KEY, PHONE_NUMBER_ID
from airflow_provider_vapi.emulator.server import EmulatorProcess

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


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
            "customers": [{"number": f"+1555{len(ids) + i:03d}0006"[-12:]} for i in range(n)],
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
    url: str, ids: list[str], seconds: float, connections: int, offset: int, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes")
    parser.add_argument("--connections", type=int, default=1, help="keep-alive connections per client")
    args = parser.parse_args()
    command = shlex.join([sys.executable, *sys.argv])

    proc = EmulatorProcess(port=0, speed=1.0, concurrency_limit=args.calls + 10, request_log_size=1000)
    handle = proc.start()
    try:
        t0 = time.perf_counter()
        ids = create_calls(handle.url, args.calls)
        create_s = time.perf_counter() - t0
        time.sleep(3.0)  # queued -> ringing -> in-progress (0.5 s + 2 s at speed 1)
        statuses = {c["status"] for c in handle.calls()}
        assert statuses == {"in-progress"}, statuses
        out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        workers = [
            multiprocessing.Process(
                target=worker, args=(handle.url, ids, args.seconds, args.connections, k * 7919, out)
            )
            for k in range(args.clients)
        ]
        started = time.perf_counter()
        for w in workers:
            w.start()
        results = [out.get() for _ in workers]
        elapsed = time.perf_counter() - started
        for w in workers:
            w.join()
        live = sum(1 for c in handle.calls() if c["status"] == "in-progress")
    finally:
        proc.stop()

    latencies = sorted(lat for lats, _ in results for lat in lats)
    errors = sum(e for _, e in results)
    total = len(latencies)
    rps = total / elapsed

    def pct(p: float) -> float:
        return round(latencies[min(int(p * total), total - 1)] * 1000, 3)

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
        f"calls:     {args.calls} live (in-progress) calls, created in {create_s:.2f} s;"
        f" still live after: {live}"
    )
    print(f"requests:  {total} GET /call/{{id}} in {elapsed:.2f} s, errors {errors}")
    print(f"rate:      {rps:,.0f} requests/s")
    print(
        f"latency:   p50 {pct(0.50)} ms, p95 {pct(0.95)} ms, p99 {pct(0.99)} ms, "
        f"mean {statistics.fmean(latencies) * 1000:.3f} ms"
    )
    print(
        json.dumps(
            {
                "bench": "emulator_throughput",
                "calls": args.calls,
                "requests_per_s": round(rps, 1),
                "requests": total,
                "errors": errors,
                "p50_ms": pct(0.50),
                "p95_ms": pct(0.95),
                "p99_ms": pct(0.99),
                "clients": args.clients,
                "connections_per_client": args.connections,
                "seconds": args.seconds,
                "cores": os.cpu_count(),
                "python": platform.python_version(),
            }
        )
    )
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
