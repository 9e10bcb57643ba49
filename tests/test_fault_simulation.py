"""The fault simulation in CI (issue #23): a fixed set of seeds, each one schedule of faults judged
by the emulator's own records (tests/simulation). ``VAPI_SIM_SEEDS`` (default 200) direct
schedules on side-by-side emulators, ``VAPI_SIM_DAG_TEST_SEEDS`` (default 20) through real
``dag.test()`` runs beside them. A failure prints each failing schedule's seed, steps, the
invariants it broke and its replay command; ``make chaos SEEDS=N`` explores more."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.simulation.runner import DAG_TEST_SEEDS_FROM, Result, run_seed, run_seeds

SEEDS = int(os.environ.get("VAPI_SIM_SEEDS", "200"))
DAG_TEST_SEEDS = int(os.environ.get("VAPI_SIM_DAG_TEST_SEEDS", "20"))
LANES = int(os.environ.get("VAPI_SIM_LANES", "5"))
#: The CI set starts here; dag.test() seeds are their own range.
FIRST_SEED, FIRST_DAG_TEST_SEED = 0, DAG_TEST_SEEDS_FROM


@pytest.fixture(scope="module")
def lanes() -> Iterator[list[Any]]:
    """Emulators of their own: faults and Vapi's clock are per emulator, schedules run side by side."""
    from airflow_provider_vapi.emulator.server import EmulatorServer

    servers = [EmulatorServer() for _ in range(LANES)]
    handles = [server.start() for server in servers]
    try:
        yield handles
    finally:
        for server in servers:
            server.stop()


def _verdict(results: list[Result], seconds: float) -> None:
    failed = [r for r in results if r.failed]
    if failed:
        table = "\n".join(f"  seed {r.seed} ({r.schedule.kind}): {r.summary()}" for r in failed)
        reports = "\n\n".join(r.report() for r in failed)
        pytest.fail(
            f"{len(failed)} of {len(results)} schedules broke an invariant ({seconds:.0f}s):\n{table}\n\n{reports}",
            pytrace=False,
        )


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("airflow_db")
def test_the_fixed_seed_set_keeps_every_promise(lanes: list[Any]) -> None:
    began = time.monotonic()
    results = run_seeds(
        range(FIRST_SEED, FIRST_SEED + SEEDS),
        lanes,
        dag_test_seeds=range(FIRST_DAG_TEST_SEED, FIRST_DAG_TEST_SEED + DAG_TEST_SEEDS),
    )
    assert len(results) == SEEDS + DAG_TEST_SEEDS
    _verdict(results, time.monotonic() - began)


@pytest.mark.skipif("VAPI_SIM_SEED" not in os.environ, reason="replays VAPI_SIM_SEED=<n> (a failing seed)")
@pytest.mark.usefixtures("airflow_db")
def test_replay_one_seed(lanes: list[Any]) -> None:
    seed = int(os.environ["VAPI_SIM_SEED"])
    began = time.monotonic()
    result = run_seed(seed, lanes[0], lane="replay", dag_test=seed >= FIRST_DAG_TEST_SEED)
    print(result.schedule.describe(), *result.steps, sep="\n")
    _verdict([result], time.monotonic() - began)
