"""The watching side of ``call_events.py``: one process per contender, ``call_events.py --worker C``.

It runs one watcher per filter in one asyncio loop, the way the triggerer runs ``AssetWatcher``
triggers, plus a stand-in for the triggerer's supervisor: once per ``--sync-seconds`` it stores the
events the watchers fired (a list: the metadata database) and, for shared streams, confirms the
previous round's to Airflow's ``SharedStreamManager`` (what ``TriggerRunner.sync_state_to_supervisor``
does with the answer of its next sync). It says ``READY`` once every watcher is placed, runs until
the driver writes ``ENDED`` on its stdin and no event has come for ``--quiet-intervals`` poll
intervals and a sync round, and prints its figures as one JSON line (with, for the driver, the
calls each filter matches, read once measuring is over).

* ``vapi``: ``VapiCallEventTrigger`` through the manager (subscribe, ``filter_shared_stream``,
  ``bind_pending_event``, ``confirm_persisted``: the code path of ``run_trigger``), each with a
  dict-backed asset state store; ``--waits`` ``CallStatusTrigger`` on held calls in the same loop.
* ``naive``: per filter, a loop listing ``VapiHook.alist_calls(updatedAtGt=<its own cursor>)``
  every interval and firing each ended call its filter matches, once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from _wait_worker import probe_lag, rss_kib


@dataclass
class Supervisor:
    """The triggerer's supervisor, played: once per sync round it stores the events fired since the
    last round, and confirms those it stored the round before (``TriggerStateSync.events_persisted``
    answers the next sync)."""

    sync_seconds: float
    manager: Any = None
    #: ``(watcher, call id, seconds the event was stored at)``, in order.
    stored: list[tuple[int, str, float]] = field(default_factory=list)
    pending: list[tuple[int, str, int | None]] = field(default_factory=list)
    last_event: float = 0.0

    def fire(self, watcher: int, call_id: str, seq: int | None) -> None:
        self.pending.append((watcher, call_id, seq))

    async def run(self) -> None:
        unconfirmed: list[int] = []
        while True:
            await asyncio.sleep(self.sync_seconds)
            if unconfirmed and self.manager is not None:
                self.manager.confirm_persisted(unconfirmed)
            pending, self.pending = self.pending, []
            now = time.time()
            self.stored += [(w, cid, now) for w, cid, _ in pending]
            if pending:
                self.last_event = now
            unconfirmed = [seq for _, _, seq in pending if seq is not None]


class StateStore:
    """One asset's state store as the triggerer hands it to a watcher (``aget``/``aset`` of JSON)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0
        self.bytes = 0
        self.max_bytes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        self.values[key] = text
        self.writes += 1
        self.bytes += len(text)
        self.max_bytes = max(self.max_bytes, len(text))

    def placed(self) -> bool:
        from airflow_provider_vapi.call_events.stream import STATE_KEY

        state = self.values.get(STATE_KEY)
        return state is not None and json.loads(state).get("mark") is not None


async def consume(manager: Any, trigger: Any, index: int, supervisor: Supervisor) -> None:
    """One watcher as ``TriggerRunner`` runs a shared-stream trigger."""
    key: Hashable = trigger.shared_stream_key()
    stream = manager.subscribe(trigger_id=index, trigger=trigger, key=key)
    async for event in trigger.filter_shared_stream(stream):
        seq = manager.bind_pending_event(trigger_id=index, key=key)
        supervisor.fire(index, str(event.payload["id"]), seq)


async def wait_on(call_id: str, interval: float) -> None:
    from airflow_provider_vapi.triggers import CallStatusTrigger

    async for _ in CallStatusTrigger(call_id, "vapi_default", poll_interval=interval).run():
        return


def start_vapi(
    args: argparse.Namespace, filters: list[dict[str, Any]], supervisor: Supervisor
) -> tuple[list[asyncio.Task[None]], list[StateStore]]:
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_vapi.call_events.trigger import VapiCallEventTrigger

    supervisor.manager = SharedStreamManager(ack_timeout=300.0)
    tasks: list[asyncio.Task[None]] = []
    stores: list[StateStore] = []
    for index, spec in enumerate(filters):
        trigger = VapiCallEventTrigger(poll_interval=args.poll_interval, **spec)
        store = StateStore()
        trigger.asset_state_store = cast(Any, store)  # what the triggerer hands it, played
        trigger.trigger_id = index
        stores.append(store)
        tasks.append(asyncio.create_task(consume(supervisor.manager, trigger, index, supervisor)))
    held: list[str] = json.loads(args.held) if args.held else []
    tasks += [asyncio.create_task(wait_on(cid, args.poll_interval)) for cid in held]
    return tasks, stores


async def naive_watch(index: int, spec: dict[str, Any], interval: float, supervisor: Supervisor) -> None:
    """What a user writes with the hook: list what changed since the newest ``updatedAt`` seen,
    fire each ended call the filter matches (the assistant filter is passed to Vapi's query)."""
    from airflow_provider_vapi.call_events.filters import CallFilter
    from airflow_provider_vapi.hooks import VapiHook
    from airflow_provider_vapi.results import call_result

    call_filter = CallFilter.build(**spec)
    query = {"assistantId": spec["assistant_id"]} if isinstance(spec.get("assistant_id"), str) else {}
    hook = VapiHook("vapi_default")
    cursor = datetime.now(UTC)
    fired: set[str] = set()
    while True:
        await asyncio.sleep(interval)
        for call in await hook.alist_calls(updatedAtGt=cursor, **query):
            if call.updated_at is not None and call.updated_at > cursor:
                cursor = call.updated_at
            if call.is_ended and call.id not in fired and call_filter.matches(call):
                fired.add(call.id)
                call_result(call)  # the event's payload, as the trigger would yield it
                supervisor.fire(index, call.id, None)


async def placed(stores: list[StateStore], timeout: float) -> None:
    """Every call-event watcher has placed its mark (its first run is over)."""
    deadline = time.monotonic() + timeout
    while not all(store.placed() for store in stores):
        if time.monotonic() > deadline:
            raise RuntimeError("the call-event watchers were not placed in time")
        await asyncio.sleep(0.05)


async def until_quiet(args: argparse.Namespace, supervisor: Supervisor) -> float:
    """Read ``ENDED`` from the driver, then wait until no event has come for a few intervals."""
    await asyncio.to_thread(sys.stdin.readline)
    ended = time.time()
    quiet = args.quiet_intervals * args.poll_interval + args.sync_seconds
    while time.time() - max(supervisor.last_event, ended) < quiet:
        if time.time() - ended > args.poll_interval * 20 + 60:
            break
        await asyncio.sleep(0.1)
    return ended


def peak_rss_kib() -> int:
    """This process's peak RSS since its ``exec`` (``VmHWM``). Not ``ru_maxrss``: Linux keeps that
    across ``fork`` and ``exec``, so a worker would report the driver's peak when it was larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def matching(url: str, api_key: str, filters: list[dict[str, Any]]) -> list[list[str]]:
    """The ended calls each filter matches (the emulator's own list, admin API), once measuring is
    over: the driver then needs no Airflow import of its own to judge the watchers."""
    from airflow_provider_vapi.call_events.filters import CallFilter
    from airflow_provider_vapi.emulator.client import EmulatorHandle
    from airflow_provider_vapi.models import Call

    handle = EmulatorHandle(url, api_key, timeout=120.0)
    try:
        calls = [Call.model_validate(c) for c in handle.calls() if c["status"] == "ended"]
    finally:
        handle.close()
    checks = [CallFilter.build(**spec) for spec in filters]
    return [[c.id for c in calls if check.matches(c)] for check in checks]


async def worker_main(args: argparse.Namespace) -> dict[str, Any]:
    filters: list[dict[str, Any]] = json.loads(args.filters)
    supervisor = Supervisor(args.sync_seconds)
    syncer = asyncio.create_task(supervisor.run())
    stores: list[StateStore] = []
    if args.worker == "vapi":
        tasks, stores = start_vapi(args, filters, supervisor)
        await placed(stores, timeout=60.0)
    else:
        tasks = [
            asyncio.create_task(naive_watch(i, spec, args.poll_interval, supervisor))
            for i, spec in enumerate(filters)
        ]
    await asyncio.sleep(args.poll_interval)  # the first polls are in: start-up is over
    gc.collect()
    base_rss = rss_kib()
    lags: list[float] = []
    probes = [asyncio.create_task(probe_lag(lags))]
    cpu0, ready = time.process_time(), time.time()
    print("READY", flush=True)
    ended = await until_quiet(args, supervisor)
    cpu = time.process_time() - cpu0
    for task in [*tasks, *probes, syncer]:
        task.cancel()
    await asyncio.gather(*tasks, *probes, syncer, return_exceptions=True)
    if supervisor.manager is not None:
        await supervisor.manager.stop_all()
    failed = [repr(t.exception()) for t in tasks if not t.cancelled() and t.exception() is not None]
    peak_rss = peak_rss_kib()
    return {
        "stored": supervisor.stored,
        "cpu_s": cpu,
        "ready": ready,
        "ended": ended,
        "done": time.time(),
        "base_rss_kib": base_rss,
        "peak_rss_kib": peak_rss,
        "lags": lags,
        "state_writes": sum(s.writes for s in stores),
        "state_bytes": sum(s.bytes for s in stores),
        "state_max_bytes": max((s.max_bytes for s in stores), default=0),
        "failures": failed,
        "matching": matching(args.url, args.api_key, filters),
    }
