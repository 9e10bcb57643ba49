"""A triggerer's event path for call-event watchers, in-process: Airflow's own
``SharedStreamManager`` (subscribe, filter, bind, confirm: the code ``run_trigger`` runs), with the
two things only a real deployment has played here: the metadata database (a list of stored
payloads) and the asset state store (a dict of JSON text, as the database keeps it).

:class:`Triggerer` stores each event a moment after it is fired (``persist_delay``), as the
triggerer's supervisor does on its next loop, and confirms it to the manager then; :meth:`kill`
is a SIGKILL: from that instant nothing more is stored or written, whatever was in flight.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

from airflow.triggers.shared_stream import SharedStreamManager

from airflow_provider_vapi.call_events.ledger import Ledger
from airflow_provider_vapi.call_events.stream import STATE_KEY
from airflow_provider_vapi.call_events.trigger import VapiCallEventTrigger


class StateStore:
    """One asset's state store, as the triggerer hands it to a watcher (``aget``/``aset`` JSON)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.frozen = False
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        if self.frozen:  # the process died: the write never reaches the database
            raise asyncio.CancelledError
        self.values[key] = json.dumps(value)
        self.writes += 1

    def ledger(self) -> Ledger:
        return Ledger.from_state([json.loads(self.values[STATE_KEY])] if STATE_KEY in self.values else [])


class Database:
    """The events Airflow stored, per trigger, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def ids(self) -> list[str]:
        return [str(e["id"]) for e in self.events]

    def repeated(self) -> dict[str, int]:
        return {cid: n for cid, n in Counter(self.ids()).items() if n > 1}

    def unflagged_repeats(self) -> set[str]:
        """Calls delivered again without ``possibleRepeat`` on the later event."""
        seen: set[str] = set()
        bad: set[str] = set()
        for event in self.events:
            if event["id"] in seen and not event.get("possibleRepeat"):
                bad.add(str(event["id"]))
            seen.add(str(event["id"]))
        return bad


class Triggerer:
    """One triggerer process running one watcher (see the module docstring)."""

    def __init__(
        self,
        trigger: VapiCallEventTrigger,
        store: StateStore,
        db: Database,
        *,
        persist_delay: float = 0.05,
        rng: random.Random | None = None,
    ) -> None:
        self.trigger = trigger
        self.store = store
        self.db = db
        self.persist_delay = persist_delay
        self.rng = rng
        self.manager = SharedStreamManager(ack_timeout=60.0)
        trigger.asset_state_store = store
        trigger.trigger_id = 1
        self.dead = False
        self._pending: list[tuple[int | None, dict[str, Any]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> Triggerer:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._persist())]
        return self

    async def _run(self) -> None:
        key = self.trigger.shared_stream_key()
        assert key is not None
        stream = self.manager.subscribe(trigger_id=1, trigger=self.trigger, key=key)
        async for event in self.trigger.filter_shared_stream(stream):
            seq = self.manager.bind_pending_event(trigger_id=1, key=key)
            self._pending.append((seq, event.payload))

    async def _persist(self) -> None:
        while True:
            delay = self.persist_delay if self.rng is None else self.rng.uniform(0, 2 * self.persist_delay)
            await asyncio.sleep(delay)
            pending, self._pending = self._pending, []
            for seq, payload in pending:
                self.db.events.append(payload)
                if seq is not None:
                    self.manager.confirm_persisted([seq])

    async def kill_in_flight(self, timeout: float = 5.0) -> bool:
        """SIGKILL at the first moment an event was fired and not yet stored (False: none came)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0)
        in_flight = bool(self._pending)
        await self.kill()
        return in_flight

    async def kill(self) -> None:
        """SIGKILL: nothing more is stored or written from this instant."""
        self.dead = True
        self.store.frozen = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.manager.stop_all()
        self.store.frozen = False

    async def stop(self) -> None:
        """A clean shutdown (SIGTERM), as the triggerer does it: the trigger is cancelled and leaves
        its stream (``run_trigger``'s ``finally``), the supervisor stores the events it was handed,
        and the stream group stops. Events stored after their group stopped are never acknowledged:
        the same window a SIGKILL has (see the module docstring of the simulation)."""
        run, persist = self._tasks
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        key = self.trigger.shared_stream_key()
        await self.manager.unsubscribe(1, key)
        await self.manager.stop_all()
        while self._pending:
            await asyncio.sleep(self.persist_delay)
        persist.cancel()
        await asyncio.gather(persist, return_exceptions=True)
        self.dead = True

    def failures(self) -> list[BaseException]:
        return [t.exception() for t in self._tasks if t.done() and not t.cancelled() and t.exception()]  # type: ignore[misc]
