"""Noticing watched calls that vanished: a call deleted at Vapi never shows in the change feed.

The shared poll (:mod:`airflow_provider_vapi.waiting.watcher`) learns of *changes*; a deleted call simply
stops appearing, so a trigger the poll covers would wait for it until its deadline, or forever
without one. Now and then (:func:`census_interval`) the watcher therefore lists every call created
since the oldest call it watches (``GET /call?createdAtGe=...``, paged past 1,000: one or two
requests for a campaign, whatever the number of waiting tasks; only ids are looked at, see
:mod:`airflow_provider_vapi.waiting.feed`). A watched call missing from that
complete listing is *suspect*: its triggers read it directly, and Vapi's 404 ends their wait with
an error that names the call. A deleted call thus ends its wait within one census interval (at
most ``max(10 x poll_interval, 60 s)``) and one poll interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Container, Iterable
from datetime import datetime

from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.waiting.feed import alist_wanted

log = logging.getLogger(__name__)

#: A census runs this many poll intervals apart, and never more often than CENSUS_MIN_SECONDS.
CENSUS_FACTOR = 10.0
CENSUS_MIN_SECONDS = 60.0


def census_interval(poll_interval: float) -> float:
    """Seconds between two censuses of a watcher polling every ``poll_interval`` seconds."""
    return max(CENSUS_FACTOR * poll_interval, CENSUS_MIN_SECONDS)


class Census:
    """When each watched call was created, and when the next census is due."""

    def __init__(self) -> None:
        self.created: dict[str, datetime] = {}
        self._last = time.monotonic()
        self.taken = 0

    def note(self, calls: Iterable[Call], watched: Container[str]) -> None:
        """Remember the creation time of the watched calls among ``calls``."""
        for call in calls:
            if call.created_at is not None and call.id in watched:
                self.created.setdefault(call.id, call.created_at)

    def forget(self, call_id: str) -> None:
        self.created.pop(call_id, None)

    def due(self, poll_interval: float) -> bool:
        return bool(self.created) and time.monotonic() - self._last >= census_interval(poll_interval)

    async def suspects(self, hook: VapiHook, timeout: float) -> set[str]:
        """:meth:`missing`, each named in a WARNING; empty when the census fails (the next one tries
        again; the waits go on meanwhile) or takes longer than ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                missing = await self.missing(hook)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Checking that the watched Vapi calls still exist failed (%s).", exc)
            return set()
        for call_id in missing:
            log.warning("Vapi call %s is no longer listed (deleted?): its waits read it directly.", call_id)
        return missing

    async def missing(self, hook: VapiHook) -> set[str]:
        """The watched calls that a complete listing since the oldest of them does not hold."""
        self._last = time.monotonic()
        self.taken += 1
        counted = dict(self.created)
        if not counted:
            return set()
        filters = {"createdAtGe": min(counted.values())}
        listed = (await alist_wanted(hook, filters, counted, models=False)).ids
        return {call_id for call_id in counted if call_id not in listed and call_id in self.created}
