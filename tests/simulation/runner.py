"""Run seeds: each on an emulator of its own (a lane's, reset before every schedule), lanes side by
side; report each failing schedule with its seed, its steps, the invariants broken and how to
replay it. ``python -m tests.simulation --seeds N`` (``make chaos``) explores; CI runs a fixed set
(tests/test_fault_simulation.py)."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.simulation import driver
from tests.simulation.invariants import Violation, check
from tests.simulation.plan import Schedule, generate

#: Seeds from here on run through dag.test() (CI's dag.test() seeds are 100000 and up).
DAG_TEST_SEEDS_FROM = 100_000


@dataclass
class Result:
    seed: int
    schedule: Schedule
    violations: list[Violation] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    crashed: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.violations or self.crashed)

    def summary(self) -> str:
        broken = sorted({v.invariant for v in self.violations})
        return "; ".join(broken + (["the simulation crashed"] if self.crashed else []))

    def report(self) -> str:
        lines = [f"FAILED schedule, seed {self.seed} ({self.seconds:.1f}s)", self.schedule.describe()]
        lines += ["  what happened:", *self.steps]
        if self.crashed:
            lines.append(f"  the simulation itself crashed: {self.crashed}")
        lines += [f"  BROKEN: {v}" for v in self.violations]
        lines.append(f"  replay: make chaos SEED={self.seed}")
        lines.append(
            f"      or: VAPI_SIM_SEED={self.seed} .venv/bin/python -m pytest -q "
            "tests/test_fault_simulation.py::test_replay_one_seed"
        )
        return "\n".join(lines)


def run_seed(seed: int, emu: Any, *, lane: str = "sim", dag_test: bool = False) -> Result:
    """One schedule on ``emu`` (reset first): run it, then judge it."""
    emu.reset()
    skew = hasattr(emu, "set_clock_offset")
    schedule = generate(seed, dag_test=dag_test, skew=skew, dedupe=driver.accepts_dedupe_key())
    result = Result(seed, schedule)
    began = time.monotonic()
    try:
        if dag_test:
            from tests.simulation.dagtest import DagTestRun

            record = DagTestRun(emu, schedule, f"vapi_{lane}").run()
        else:
            record = driver.Run(emu, schedule, f"vapi_{lane}").run()
        result.steps = record.steps
        result.violations = check(schedule, record, emu)
    except Exception as exc:  # the simulation's own failure is reported, never hidden
        import traceback

        result.crashed = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    result.seconds = time.monotonic() - began
    return result


def run_seeds(
    seeds: Iterable[int],
    handles: list[Any],
    *,
    dag_test_seeds: Iterable[int] = (),
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Every seed on the lanes (one emulator handle each); ``dag_test_seeds`` run through
    ``dag.test()`` on the calling thread (Airflow's runner wants the main thread), beside them."""
    todo: queue.Queue[int] = queue.Queue()
    for seed in seeds:
        todo.put(seed)
    results: list[Result] = []
    lock = threading.Lock()

    def lane(index: int, emu: Any) -> None:
        while True:
            try:
                seed = todo.get_nowait()
            except queue.Empty:
                return
            result = run_seed(seed, emu, lane=f"lane{index}")
            with lock:
                results.append(result)
            if progress is not None:
                progress(result)

    dag_seeds = list(dag_test_seeds)
    lanes = handles[1:] if dag_seeds and len(handles) > 1 else handles
    threads = [
        threading.Thread(target=lane, args=(i, h), name=f"vapi-sim-lane-{i}") for i, h in enumerate(lanes)
    ]
    for thread in threads:
        thread.start()
    for seed in dag_seeds:
        result = run_seed(seed, handles[0], lane="dagtest", dag_test=True)
        with lock:
            results.append(result)
        if progress is not None:
            progress(result)
    for thread in threads:
        thread.join()
    return sorted(results, key=lambda r: (r.schedule.dag_test, r.seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation", description=__doc__)
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds to explore")
    parser.add_argument("--start", type=int, default=None, help="first seed (default: random)")
    parser.add_argument("--seed", type=int, action="append", default=[], help="replay this seed")
    parser.add_argument("--dag-test", action="store_true", help="run the given seeds through dag.test()")
    parser.add_argument("--lanes", type=int, default=4, help="emulators side by side")
    args = parser.parse_args(argv)
    import random

    from airflow_provider_vapi.emulator.server import EmulatorServer

    if args.seed:
        seeds = args.seed
    else:
        start = args.start if args.start is not None else random.randrange(10**6)
        seeds = list(range(start, start + args.seeds))
    servers = [EmulatorServer() for _ in range(max(1, min(args.lanes, len(seeds))))]
    handles = [s.start() for s in servers]
    print(f"exploring seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}) on {len(handles)} emulators", flush=True)

    def progress(result: Result) -> None:
        print(("F" if result.failed else "."), end="", flush=True)

    began = time.monotonic()
    try:
        dag_seeds = [s for s in seeds if args.dag_test or s >= DAG_TEST_SEEDS_FROM]
        if dag_seeds:
            from tests.simulation.dagtest import prepare_airflow

            prepare_airflow()
        direct = [s for s in seeds if s not in dag_seeds]
        results = run_seeds(direct, handles, dag_test_seeds=dag_seeds, progress=progress)
    finally:
        for server in servers:
            server.stop()
    failed = [r for r in results if r.failed]
    print(f"\n{len(results)} schedules in {time.monotonic() - began:.0f}s, {len(failed)} failed")
    for result in failed:
        print("\n" + result.report())
    if failed:
        print("\nseed -> invariants broken:")
    for result in failed:
        print(f"  {result.seed} ({result.schedule.kind}): {result.summary()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
