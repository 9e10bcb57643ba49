"""Which :class:`~airflow_provider_vapi.waiting.watcher.CallWatcher` serves a trigger: one per event loop
and connection id, made on first use and forgotten when its last subscriber or tap leaves.

Keyed by event loop as well as connection id: the triggerer runs one loop, tests and tools create
many, and an ``httpx.AsyncClient`` belongs to the loop that created it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

from airflow_provider_vapi.waiting.subscription import FeedTap, Subscription
from airflow_provider_vapi.waiting.watcher import CallWatcher

_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, CallWatcher]] = (
    weakref.WeakKeyDictionary()
)


def _watcher(vapi_conn_id: str) -> CallWatcher:
    """The watcher of this connection in the running loop (created on first use)."""
    loop = asyncio.get_running_loop()
    watchers = _WATCHERS.setdefault(loop, {})
    watcher = watchers.get(vapi_conn_id)
    if watcher is None:
        watcher = watchers[vapi_conn_id] = CallWatcher(vapi_conn_id, loop, on_idle=_forget)
    return watcher


def subscribe(vapi_conn_id: str, call_ids: Iterable[str], interval: float) -> Subscription:
    """A subscription to these calls on the shared watcher of this connection and loop."""
    return _watcher(vapi_conn_id).subscribe(call_ids, interval)


def tap(vapi_conn_id: str, interval: float) -> FeedTap:
    """A tap of every ended call the shared watcher of this connection and loop lists."""
    return _watcher(vapi_conn_id).tap(interval)


def _forget(watcher: CallWatcher) -> None:
    watchers = _WATCHERS.get(watcher.loop)
    if watchers is not None and watchers.get(watcher.vapi_conn_id) is watcher:
        del watchers[watcher.vapi_conn_id]
        if not watchers:
            _WATCHERS.pop(watcher.loop, None)


def active_watchers(loop: asyncio.AbstractEventLoop | None = None) -> dict[str, CallWatcher]:
    """The watchers running in ``loop`` (default: the running loop), by connection id."""
    return dict(_WATCHERS.get(loop or asyncio.get_running_loop(), {}))


__all__ = ["active_watchers", "subscribe", "tap"]
