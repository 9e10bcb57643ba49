"""What one mapped task run costs on the distributed deployment: why the campaign DAG maps chunks.

Starts the same deployment as the distributed test (PostgreSQL, Redis, the emulator, CeleryExecutor
with two workers, two triggerers), then runs the campaign DAG for ``--people`` people whose calls
complete on their own, once per ``--chunk-sizes`` value, and prints per run: task instances, worker
runs (a deferrable wait runs twice: before and after its deferral), wall time from trigger to
success, and the mean queued->start latency and run time of the task instances. The marginal cost
of one worker run is the wall-time difference over the worker-run difference.

    .venv/bin/python -m tests.distributed.measure_chunking --people 100 --chunk-sizes 20,1
    stress-ng --cpu 1 & ...   # as CI runs the suite
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.pg_server import start_server
from tests.system.deployment import Emulator
from tests.system.procs import install_safety_nets, reap

from .redis_server import RedisServer
from .scenario import CampaignRun, build_cluster, ensure_pool, people, seed_people

LOGS = Path(__file__).resolve().parents[2] / "test-results" / "distributed" / "measure-logs"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def measure(run: CampaignRun, started: float, timeout: float) -> dict[str, Any]:
    final = run.wait(timeout)
    wall = time.monotonic() - started
    tis = run.tis()
    waits = sum(1 for t in tis if t["task_id"] == "wait_for_calls")
    latency = [s for t in tis if (s := _seconds(t.get("queued_when"), t.get("start_date"))) is not None]
    runtime = [d for t in tis if (d := t.get("duration")) is not None]
    return {
        "state": final["state"],
        "task_instances": len(tis),
        "worker_runs": len(tis) + waits,
        "wall_s": round(wall, 1),
        "mean_queue_to_start_s": round(statistics.fmean(latency), 2) if latency else None,
        "mean_task_duration_s": round(statistics.fmean(runtime), 2) if runtime else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--chunk-sizes", default="20,1")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args(argv)
    install_safety_nets()
    workdir = Path(tempfile.mkdtemp(prefix="vapi-measure-"))
    pg = start_server()
    try:
        redis = RedisServer(workdir / "redis", workdir / "logs").start()
        emulator = Emulator(workdir, speed=10.0)
        emulator.start()
        emulator.handle.configure(concurrency_limit=2000)
        cluster = build_cluster(workdir, pg, redis, emulator, poll_interval=2.0)
        begun = time.monotonic()
        api = cluster.start()
        print(f"deployment up in {time.monotonic() - begun:.0f}s", flush=True)
        ensure_pool(api, cluster.worker_concurrency * 2)
        cluster.wait_for_dags(["vapi_distributed_campaign"])
        results = []
        for n, size in enumerate(int(s) for s in args.chunk_sizes.split(",")):
            campaign = f"measure_{n}_chunk{size}"
            persons = people(50 + n, args.people, "4000")
            seed_people(pg, campaign, persons)
            started = time.monotonic()
            run = CampaignRun.trigger(api, campaign, persons, size)
            result = {"people": args.people, "chunk_size": size, **measure(run, started, args.timeout)}
            print(json.dumps(result), flush=True)
            results.append(result)
        if len(results) >= 2:
            a, b = results[0], results[-1]
            extra_runs = b["worker_runs"] - a["worker_runs"]
            if extra_runs:
                per_run = (b["wall_s"] - a["wall_s"]) / extra_runs
                print(json.dumps({"marginal_s_per_worker_run": round(per_run, 2)}), flush=True)
        return 0
    finally:
        reap()
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
        logs = workdir / "airflow-home" / "component-logs"
        if logs.is_dir():
            shutil.copytree(logs, LOGS, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
