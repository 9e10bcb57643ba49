"""The pieces of the distributed campaign scenario, shared by the test and measure_chunking.py.

* :func:`build_cluster`: the databases (Airflow's metadata and the campaign's) on the suite's
  PostgreSQL server and a :class:`~tests.distributed.cluster.DistributedDeployment` wired to them,
  to the Redis broker and to the emulator.
* :func:`seed_people`: the campaign's people, in the table the DAG reads.
* :class:`CampaignRun`: one run of the DAG seen through the REST API, the emulator and the
  results table.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.pg_server import PostgresServer
from tests.system.deployment import AirflowApi, Emulator
from tests.system.procs import wait_until

from .cluster import DistributedDeployment
from .redis_server import RedisServer

DAG_ID = "vapi_distributed_campaign"
CAMPAIGN_DB = "campaign"
PEOPLE_TABLE = "campaign_people"
RESULTS_TABLE = "campaign_call_results"
POOL = "vapi"


def build_cluster(
    workdir: Path,
    pg: PostgresServer,
    redis: RedisServer,
    emulator: Emulator,
    *,
    poll_interval: float,
    **kwargs: Any,
) -> DistributedDeployment:
    """A distributed deployment on fresh ``airflow`` and ``campaign`` databases of ``pg``."""
    metadata_uri = pg.create_database("airflow")
    pg.create_database(CAMPAIGN_DB)
    pg.psql(
        f"CREATE TABLE {PEOPLE_TABLE} (campaign TEXT NOT NULL, person_id TEXT NOT NULL, "
        "name TEXT NOT NULL, number TEXT NOT NULL, PRIMARY KEY (campaign, person_id))",
        CAMPAIGN_DB,
    )
    conn = {
        "conn_type": "postgres",
        "host": pg.host,
        "port": pg.port,
        "login": pg.user,
        "schema": CAMPAIGN_DB,
    }
    extra_env = {
        "AIRFLOW_CONN_CAMPAIGN_DB": json.dumps(conn),
        "VAPI_DISTRIBUTED_POLL_INTERVAL": str(poll_interval),
        **kwargs.pop("extra_env", {}),
    }
    return DistributedDeployment(
        home=workdir / "airflow-home",
        emulator=emulator,
        db_url=metadata_uri,
        broker_url=redis.url,
        extra_env=extra_env,
        **kwargs,
    )


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    number: str


def people(code: int, count: int, suffix: str) -> list[Person]:
    """``count`` people of campaign ``code`` (two digits) whose numbers end in ``suffix`` (the
    emulator's scripted outcome: ``0006`` holds the call in progress until it is ended)."""
    return [
        Person(f"p{code:02d}-{i:05d}", f"Person {code:02d}-{i:05d}", f"+155{code:02d}{i:05d}{suffix}")
        for i in range(count)
    ]


def seed_people(pg: PostgresServer, campaign: str, persons: list[Person]) -> None:
    values = ",".join(f"('{campaign}', '{p.person_id}', '{p.name}', '{p.number}')" for p in persons)
    pg.psql(f"INSERT INTO {PEOPLE_TABLE} (campaign, person_id, name, number) VALUES {values}", CAMPAIGN_DB)


def ensure_pool(api: AirflowApi, slots: int) -> None:
    body = {"name": POOL, "slots": slots, "include_deferred": False}
    if api.request("GET", f"/pools/{POOL}").status_code == 404:
        api.call("POST", "/pools", json=body)
    else:
        api.call("PATCH", f"/pools/{POOL}", json=body)


@dataclass
class CampaignRun:
    """One run of the campaign DAG and the people it calls."""

    api: AirflowApi
    run_id: str
    persons: list[Person]

    @classmethod
    def trigger(cls, api: AirflowApi, campaign: str, persons: list[Person], chunk_size: int) -> CampaignRun:
        run_id = api.trigger(DAG_ID, {"campaign": campaign, "chunk_size": chunk_size}, run_id=campaign)
        return cls(api, run_id, persons)

    def tis(self, task_id: str | None = None) -> list[dict[str, Any]]:
        found = self.api.task_instances(DAG_ID, self.run_id, task_id)
        return sorted(found, key=lambda t: (t["task_id"], t["map_index"]))

    def states(self, task_id: str | None = None) -> Counter[str]:
        return Counter(str(t["state"]) for t in self.tis(task_id))

    def wait(self, timeout: float) -> dict[str, Any]:
        return self.api.wait_for_run(DAG_ID, self.run_id, timeout)

    def placed_ids(self) -> dict[int, list[str]]:
        """``place_calls``' call ids by map index (its XCom)."""
        return {
            ti["map_index"]: self.api.xcom(DAG_ID, self.run_id, "place_calls", map_index=ti["map_index"])[
                "call_ids"
            ]
            for ti in self.tis("place_calls")
        }


def calls_by_number(emulator: Emulator, persons: list[Person]) -> dict[str, list[dict[str, Any]]]:
    """The emulator's own list of calls (admin view: every call it ever created), per number."""
    numbers = {p.number for p in persons}
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in numbers}
    for call in emulator.handle.calls():
        number = (call.get("customer") or {}).get("number")
        if number in numbers:
            out[number].append(call)
    return out


def end_calls(emulator: Emulator, call_ids: list[str]) -> None:
    """Every person hangs up: the emulator's admin API ends each call (not in its request log)."""
    with httpx.Client(base_url=emulator.url, headers=emulator.handle.headers, timeout=30) as client:
        for call_id in call_ids:
            client.post(f"/_emulator/calls/{call_id}/end").raise_for_status()


def wait_calls_live(emulator: Emulator, persons: list[Person], timeout: float) -> None:
    """Until every person's call exists and is in progress at the emulator."""

    def live() -> bool:
        calls = calls_by_number(emulator, persons)
        return all(c and c[-1]["status"] == "in-progress" for c in calls.values())

    wait_until(live, timeout, 1.0, f"{len(persons)} calls in progress")


def result_rows(pg: PostgresServer, run_id: str) -> list[dict[str, str]]:
    out = pg.psql(
        f"SELECT call_id, customer_number, coalesce(person_id, ''), status, coalesce(ended_reason, '') "
        f"FROM {RESULTS_TABLE} WHERE run_id = '{run_id}'",
        CAMPAIGN_DB,
    )
    keys = ("call_id", "customer_number", "person_id", "status", "ended_reason")
    return [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines() if line]
