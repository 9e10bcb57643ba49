"""The waiting side of ``wait_many.py``: one process per contender, ``wait_many.py --worker CONTENDER``.

It starts one waiter (a trigger) per call in one asyncio loop, the way the triggerer runs deferred
tasks, and reports its events, CPU, RSS and event-loop lag as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

LAG_PROBE_S = 0.05


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def make_waiter(contender: str, call_id: str, interval: float, api_key: str, url: str) -> Any:
    """An object with an async ``run()`` yielding one event, like a trigger."""
    if contender == "vapi":
        from airflow_provider_vapi.triggers import CallStatusTrigger

        return CallStatusTrigger(call_id, "vapi_default", poll_interval=interval)
    if contender == "http_async_hook":
        return http_waiter(call_id, interval, api_key)
    return sdk_waiter(call_id, interval, api_key, url)


def http_waiter(call_id: str, interval: float, api_key: str) -> Any:
    """The ``http_async_hook`` contender (its class is defined anew for every waiter)."""
    import aiohttp
    from airflow.providers.http.hooks.http import HttpAsyncHook
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    class HttpCallTrigger(BaseTrigger):
        """What a user writes with the HTTP provider: poll GET /call/{id} until ended."""

        def __init__(self, call_id: str, poll_interval: float) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.call_id, self.poll_interval = call_id, poll_interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return ("HttpCallTrigger", {"call_id": self.call_id, "poll_interval": self.poll_interval})

        async def run(self) -> AsyncIterator[TriggerEvent]:
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
                        yield TriggerEvent({"status": "success", "call_id": self.call_id})  # type: ignore[no-untyped-call]
                        return
                    await asyncio.sleep(self.poll_interval)

    return HttpCallTrigger(call_id, interval)


def sdk_waiter(call_id: str, interval: float, api_key: str, url: str) -> Any:
    """The ``sdk`` contender (its class is defined anew for every waiter)."""
    from airflow.triggers.base import BaseTrigger, TriggerEvent
    from vapi import AsyncVapi

    class SdkCallTrigger(BaseTrigger):
        """What a user writes with Vapi's SDK: poll calls.get until ended."""

        def __init__(self, call_id: str, poll_interval: float) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.call_id, self.poll_interval = call_id, poll_interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return ("SdkCallTrigger", {"call_id": self.call_id, "poll_interval": self.poll_interval})

        async def run(self) -> AsyncIterator[TriggerEvent]:
            client = AsyncVapi(token=api_key, base_url=url)
            while True:
                call = await client.calls.get(self.call_id)
                if call.status == "ended":
                    yield TriggerEvent({"status": "success", "call_id": self.call_id})  # type: ignore[no-untyped-call]
                    return
                await asyncio.sleep(self.poll_interval)

    return SdkCallTrigger(call_id, interval)


async def sample_cpu(samples: list[tuple[float, float]]) -> None:
    """Every 0.1 s: (wall time, CPU seconds of the process so far)."""
    while True:
        samples.append((time.time(), time.process_time()))
        await asyncio.sleep(0.1)


async def probe_lag(lags: list[float]) -> None:
    """How late a 50 ms sleep wakes: what every other trigger of the loop suffers meanwhile."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_PROBE_S)
        lags.append(loop.time() - before - LAG_PROBE_S)


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
    lags: list[float] = []
    sampler = asyncio.create_task(sample_cpu(samples))
    prober = asyncio.create_task(probe_lag(lags))
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
