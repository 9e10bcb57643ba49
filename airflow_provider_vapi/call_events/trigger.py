"""``VapiCallEventTrigger``: start a DAG run for every Vapi call that ends (inbound ones too).

Use it in an ``AssetWatcher``; the DAG that schedules on the asset runs with one asset event per
call::

    from airflow.sdk import DAG, Asset, AssetWatcher
    from airflow_provider_vapi.triggers import VapiCallEventTrigger

    support_calls = Asset(
        "vapi_support_calls",
        watchers=[AssetWatcher(name="support_line", trigger=VapiCallEventTrigger(direction="inbound"))],
    )
    with DAG("support_line", schedule=[support_calls]): ...

How the pieces fit (the hand-off, in one place):

* The trigger is an Airflow 3.3 **shared-stream trigger in ack mode**. Its producer
  (:class:`CallEventProducer`) wraps a :class:`~.stream.CallEventStream` and yields one raw event
  per call; the trigger's :meth:`~VapiCallEventTrigger.filter_shared_stream` turns each into a
  ``TriggerEvent`` whose payload is the compact call (the wait's XCom shape, secrets masked).
* Airflow calls the producer's ``advance`` only once the event is **stored** in the metadata
  database; that is when the ledger records the call and is written to the asset state store.
  A triggerer that dies before then sends the call again after its restart: none is lost.
* The poll is not Airflow's to share: every watcher and every waiting task of a triggerer reads
  the same shared watcher (``watcher.py``), one ``GET /call`` per interval. The shared-stream
  group is therefore one per trigger (its key is the trigger's kwargs), used for its
  acknowledgement, not for polling.

On Airflow 3.0-3.2 (no shared streams, no asset state store) :meth:`~VapiCallEventTrigger.run`
does the same without a stored ledger: a restart starts from the newest ended call. On Airflow 2
the trigger refuses to be built: event-driven scheduling needs Airflow 3.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Collection, Hashable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from airflow_provider_vapi.call_events.filters import CallFilter
from airflow_provider_vapi.call_events.ledger import Ledger
from airflow_provider_vapi.call_events.stream import STATE_KEY, CallEventStream, LedgerStore, MemoryStore
from airflow_provider_vapi.exceptions import VapiInvalidRequestError
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.waiting.completion import DEFAULT_ANALYSIS_GRACE_PERIOD

try:  # Airflow 3.3: shared streams with acknowledgement
    from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer
except ImportError:  # pragma: no cover - older Airflow
    SharedStreamProducer = object  # type: ignore[misc,assignment]
    AdvanceItem = Any  # type: ignore[misc,assignment]

log = logging.getLogger(__name__)

#: Triggers of this process by shared-stream key: the producer reaches its trigger's asset state store.
_LIVE: dict[Hashable, VapiCallEventTrigger] = {}


def _require_airflow_3() -> None:
    from airflow import __version__

    if int(__version__.split(".")[0]) < 3:
        raise RuntimeError(
            f"VapiCallEventTrigger needs Airflow 3 (event-driven scheduling with AssetWatcher); this is "
            f"Airflow {__version__}. On Airflow 2, schedule the DAG and list the calls that ended since "
            "the last run with ExportCallsOperator instead."
        )


class AssetLedgerStore:
    """The ledger in the asset state store of each asset the trigger watches."""

    def __init__(self, accessors: Any) -> None:
        by_name = getattr(accessors, "_by_name", None)
        by_uri = getattr(accessors, "_by_uri", None)
        found = [*(by_name or {}).values(), *(by_uri or {}).values()]
        self._accessors = found or [accessors]

    async def load(self) -> Ledger:
        return Ledger.from_state([await accessor.aget(STATE_KEY) for accessor in self._accessors])

    async def save(self, ledger: Ledger) -> None:
        state = ledger.state()
        for accessor in self._accessors:
            await accessor.aset(STATE_KEY, state)


class VapiCallEventTrigger(BaseEventTrigger):
    """One asset event per Vapi call that ends and matches the filters (see the module docstring).

    Every filter takes one value or a list (any of them matches); a call must pass every filter given.

    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param poll_interval: seconds between two reads of Vapi's change feed (shared with every wait
        and watcher of the triggerer, which polls at the shortest interval any asks for).
    :param direction: ``"inbound"``, ``"outbound"`` or ``"web"`` calls.
    :param assistant_id: calls of these assistants.
    :param squad_id: calls of these squads.
    :param phone_number_id: calls on these phone numbers.
    :param outcomes: outcome classes (``completed``, ``not_reached``, ``voicemail``, ``canceled``,
        ``error``, ``unknown``).
    :param ended_reasons: Vapi ``endedReason`` values.
    :param metadata: key/value pairs the call's metadata must hold.
    :param analysis_grace_period: seconds after ``endedAt`` to wait for the results the assistant
        asks for (analysis, structured outputs) before delivering the call without them (the rule
        of the wait).
    :param catch_up_hours: after downtime, deliver the calls that ended in at most this many hours
        before the restart (older ones are named in a WARNING and skipped).
    """

    def __init__(
        self,
        *,
        vapi_conn_id: str = VapiHook.default_conn_name,
        poll_interval: float = 10.0,
        direction: str | Collection[str] | None = None,
        assistant_id: str | Collection[str] | None = None,
        squad_id: str | Collection[str] | None = None,
        phone_number_id: str | Collection[str] | None = None,
        outcomes: str | Collection[str] | None = None,
        ended_reasons: str | Collection[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        analysis_grace_period: float = DEFAULT_ANALYSIS_GRACE_PERIOD,
        catch_up_hours: float = 24.0,
    ) -> None:
        _require_airflow_3()
        super().__init__()  # type: ignore[no-untyped-call]
        self.vapi_conn_id = vapi_conn_id
        self.poll_interval = _positive("poll_interval", poll_interval)
        self.analysis_grace_period = _positive("analysis_grace_period", analysis_grace_period, zero=True)
        self.catch_up_hours = _positive("catch_up_hours", catch_up_hours)
        self.call_filter = CallFilter.build(
            direction=direction,
            assistant_id=assistant_id,
            squad_id=squad_id,
            phone_number_id=phone_number_id,
            outcomes=outcomes,
            ended_reasons=ended_reasons,
            metadata=metadata,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "vapi_conn_id": self.vapi_conn_id,
                "poll_interval": self.poll_interval,
                **self.call_filter.to_kwargs(),
                "analysis_grace_period": self.analysis_grace_period,
                "catch_up_hours": self.catch_up_hours,
            },
        )

    def stream(self) -> CallEventStream:
        """This trigger's stream, its ledger in the asset state store when Airflow gives one."""
        accessors = getattr(self, "asset_state_store", None)
        store: LedgerStore
        if accessors is None:
            log.warning(
                "Vapi call events (%s): this Airflow gives the trigger no asset state store, so the "
                "ledger of delivered calls lives in memory: a triggerer restart starts from the newest "
                "ended call. Airflow 3.3 keeps it.",
                self.call_filter.describe(),
            )
            store = MemoryStore()
        else:
            store = AssetLedgerStore(accessors)
        return CallEventStream(
            vapi_conn_id=self.vapi_conn_id,
            poll_interval=self.poll_interval,
            call_filter=self.call_filter,
            grace=self.analysis_grace_period,
            catch_up=timedelta(hours=self.catch_up_hours),
            store=store,
        )

    # -- Airflow 3.3: a shared stream in ack mode ---------------------------------------------------

    def shared_stream_key(self) -> Hashable | None:
        """One group per trigger (see the module docstring); the key is its kwargs."""
        key = ("airflow_provider_vapi.call_events", json.dumps(self.serialize()[1], sort_keys=True))
        _LIVE[key] = self
        return key

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> CallEventProducer:
        key = ("airflow_provider_vapi.call_events", json.dumps(kwargs, sort_keys=True))
        trigger = _LIVE.get(key) or cls(**kwargs)
        return CallEventProducer(trigger.stream(), key)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for payload in shared_stream:
            yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    # -- Airflow 3.0-3.2: no shared stream ----------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        stream = self.stream()
        async for payload, call_id in stream.events():
            yield TriggerEvent(payload)  # type: ignore[no-untyped-call]
            await stream.stored([call_id])  # handed to the triggerer; Airflow < 3.3 says no more


class CallEventProducer(SharedStreamProducer):  # type: ignore[misc]
    """The broker side of the trigger's shared stream: raw events from the stream, and the
    ledger written when Airflow reports them stored."""

    def __init__(self, stream: CallEventStream, key: Hashable) -> None:
        self.stream = stream
        self.key = key

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        async for payload, call_id in self.stream.events():
            yield payload, call_id

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        stored = [item.broker_payload for item in batch if item.outcome.is_clean]
        lost = [item.broker_payload for item in batch if not item.outcome.is_clean]
        if lost:
            log.warning(
                "Vapi call events: %d event(s) were not stored by Airflow; sending them again.", len(lost)
            )
            self.stream.unsent(lost)
        if stored:
            await self.stream.stored(stored)

    async def aclose(self) -> None:
        _LIVE.pop(self.key, None)


def _positive(name: str, value: Any, zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 0 if zero else number > 0):
        floor = "0 or more" if zero else "more than 0"
        raise VapiInvalidRequestError(f"{name}={value!r} must be a number of {floor}.")
    return number


__all__ = ["AssetLedgerStore", "CallEventProducer", "VapiCallEventTrigger"]
