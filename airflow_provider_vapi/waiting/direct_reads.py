"""The triggers' own reads of their calls (and assistants): one pooled client per shared watcher.

A trigger reads its calls directly when the shared poll cannot vouch for them
(:mod:`airflow_provider_vapi.waiting.watcher`). A takeover or a failed poll can make hundreds do so at
once, so the reads share one client and at most :data:`DIRECT_READ_CONCURRENCY` are in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import AwaitedResults, aawaited_for

#: Direct reads in flight at once per watcher.
DIRECT_READ_CONCURRENCY = 8


class DirectReads:
    """``GET /call/{id}`` and assistant reads on one client, bounded in concurrency."""

    def __init__(self, vapi_conn_id: str) -> None:
        self.hook = VapiHook(vapi_conn_id)
        self._slots = asyncio.Semaphore(DIRECT_READ_CONCURRENCY)
        self._client_lock = asyncio.Lock()
        self._client_ready = False

    async def assistant(self, call: Call) -> AwaitedResults:
        """What ``call`` awaits: its assistant is read (once per process and
        :data:`~airflow_provider_vapi.results.ASSISTANT_CACHE_SECONDS`)."""
        async with self._slots:
            return await aawaited_for(self.hook, call)

    async def calls(self, call_ids: Sequence[str]) -> list[Call]:
        """Each call, read directly; raises what the hook raises."""

        async def read(call_id: str) -> Call:
            async with self._slots:
                return await self.hook.aget_call(call_id)

        if not self._client_ready:
            # The hook builds its client on first use; concurrent first uses would build many.
            async with self._client_lock:
                await self.hook.aget_conn()
                self._client_ready = True
        if len(call_ids) == 1:
            return [await read(call_ids[0])]
        return list(await asyncio.gather(*map(read, call_ids)))


__all__ = ["DIRECT_READ_CONCURRENCY", "DirectReads"]
