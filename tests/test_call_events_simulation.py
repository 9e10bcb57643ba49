"""A seeded fault simulation of call-event watchers: the schedule is chosen by ``random.Random(seed)``.

Two watchers with different filters run in one "triggerer" (Airflow's shared-stream manager, one
loop: they share the watcher's poll) while calls end in bursts, inbound and outbound, with every
outcome the emulator scripts. Between bursts the schedule may: make ``GET /call`` fail (500, 503,
429, a lost answer, a garbled body, a slow answer), SIGKILL the triggerer and keep it down while
calls go on ending, stop it cleanly and start it again, or skew Vapi's clock. Airflow stores events
a random moment after they are fired.

Invariants, judged from the emulator's own records at the end:

* **none lost**: every call that ended after a watcher's first look and matches its filters is
  delivered by it;
* **none invented**: nothing else is delivered;
* **none twice**, except what a stop can repeat: an event Airflow stored that the watcher's ledger
  had not recorded when the triggerer stopped or died (Airflow acknowledges a stored event on its
  next sync, a second or so later, and gives no other way to learn it was stored; see the README);
  and such a repeat carries ``possibleRepeat``.

``VAPI_SIM_EVENT_SEEDS`` sets how many seeds run (default 8); a failure prints its seed, its steps
and ``VAPI_SIM_EVENT_SEED=<n>`` to replay it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip(
    "airflow.triggers.shared_stream", reason="call-event watchers need Airflow 3.3's shared streams"
)

from airflow_provider_vapi.call_events.trigger import VapiCallEventTrigger
from airflow_provider_vapi.models import Call
from tests.call_events_support import Database, StateStore, Triggerer

_ONE = os.environ.get("VAPI_SIM_EVENT_SEED")
SEEDS = [int(_ONE)] if _ONE else list(range(int(os.environ.get("VAPI_SIM_EVENT_SEEDS", "8"))))
FAULTS = ["500", "503", "429", "drop", "garbage:html", "garbage:truncated", "garbage:null", "stall:1.5"]
FILTERS: list[dict[str, Any]] = [
    {"direction": "inbound"},
    {"outcomes": ["completed", "voicemail"]},
    {"direction": "outbound", "outcomes": "not_reached"},
    {},
]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
async def watchers_stopped() -> AsyncIterator[None]:
    yield
    stopping = [t for t in asyncio.all_tasks() if t.get_name().startswith("vapi-watcher-")]
    for task in stopping:
        task.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)


@dataclass
class Watcher:
    filters: dict[str, Any]
    store: StateStore = field(default_factory=StateStore)
    db: Database = field(default_factory=Database)
    triggerer: Triggerer | None = None
    #: Events a SIGKILL may repeat: stored, not in the ledger at the instant of a kill.
    may_repeat: set[str] = field(default_factory=set)

    def start(self, conn: str, rng: random.Random, persist_delay: float) -> None:
        trigger = VapiCallEventTrigger(
            vapi_conn_id=conn, poll_interval=0.2, analysis_grace_period=2.0, **self.filters
        )
        self.triggerer = Triggerer(trigger, self.store, self.db, persist_delay=persist_delay, rng=rng).start()


class Schedule:
    def __init__(self, seed: int, emu: Any, conn: str) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.emu = emu
        self.conn = conn
        self.steps: list[str] = []
        self.offset = self.rng.choice([0.0, 0.0, -60.0, 300.0, -540.0])
        self.persist_delay = self.rng.choice([0.01, 0.05, 0.3])
        self.watchers = [Watcher(f) for f in self.rng.sample(FILTERS, 2)]
        self.mine: set[str] = set()

    def note(self, step: str) -> None:
        self.steps.append(step)

    def vapi_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    async def run(self) -> None:
        self.emu.set_clock_offset(self.offset)
        self.note(
            f"clock offset {self.offset:+.0f}s, Airflow stores events within {2 * self.persist_delay:.2f}s"
        )
        for w in self.watchers:
            w.start(self.conn, self.rng, self.persist_delay)
            await until(lambda w=w: w.store.ledger().mark is not None, 30, "a first run")
        for _ in range(self.rng.randint(5, 9)):
            await self.step()
        for w in self.watchers:
            if w.triggerer is None or w.triggerer.dead:
                w.start(self.conn, self.rng, self.persist_delay)
        expected = self.expected()
        for w, want in zip(self.watchers, expected, strict=True):
            await until(lambda w=w, want=want: want <= set(w.db.ids()), 60, f"every call {w.filters} wants")
        await asyncio.sleep(1.0)  # a few more polls: nothing more may come
        for w in self.watchers:
            assert w.triggerer is not None
            await w.triggerer.stop()
        for w, want in zip(self.watchers, expected, strict=True):
            self.judge(w, want)

    async def step(self) -> None:
        kind = self.rng.choice(
            ["calls", "calls", "inbound", "fault", "kill", "kill in flight", "stop", "pause"]
        )
        if kind == "calls":
            n = self.rng.randint(1, 40)
            await self.end_calls(n)
            self.note(f"{n} calls end")
        elif kind == "inbound":
            for i in range(self.rng.randint(1, 3)):
                number = f"+1555000{self.rng.choice(['4242', '0002', '0003', '0005']) if i else '4242'}"
                self.mine.add(
                    (await asyncio.to_thread(self.emu.inject_inbound_call, number, ended=True))["id"]
                )
            self.note("inbound calls end")
        elif kind == "fault":
            faults = [self.rng.choice(FAULTS) for _ in range(self.rng.randint(1, 4))]
            await asyncio.to_thread(self.emu.faults, faults, method="GET", path="/call")
            self.note(f"GET /call answers {faults}")
        elif kind in ("kill", "kill in flight", "stop"):
            if kind == "kill in flight":  # calls end, and the triggerer dies while their events travel
                await self.end_calls(30)
            else:
                await asyncio.sleep(self.rng.uniform(0, 0.6))
            for w in self.watchers:
                assert w.triggerer is not None
                if kind == "kill in flight":
                    await w.triggerer.kill_in_flight()
                else:
                    await (w.triggerer.kill() if kind == "kill" else w.triggerer.stop())
                ledger = w.store.ledger()
                w.may_repeat |= {cid for cid in w.db.ids() if cid not in ledger.done}
            down = self.rng.uniform(0, 1.5)
            self.note(f"triggerer {'stopped' if kind == 'stop' else kind}, down {down:.2f}s")
            await self.step_while_down(down)
            for w in self.watchers:
                w.start(self.conn, self.rng, self.persist_delay)
        else:
            pause = self.rng.uniform(0, 0.5)
            self.note(f"pause {pause:.2f}s")
            await asyncio.sleep(pause)

    async def end_calls(self, n: int) -> None:
        """``n`` calls (inbound and outbound, every scripted outcome) end now, in Vapi's time."""
        if n:
            now = self.vapi_now()
            seed = self.emu.seed_calls
            end = now + timedelta(milliseconds=n)
            got = await asyncio.to_thread(seed, n, now, end, call_type="mixed", ids=True, recording=False)
            self.mine.update(got["ids"])

    async def step_while_down(self, down: float) -> None:
        start = time.monotonic()
        await self.end_calls(self.rng.randint(0, 20))
        await asyncio.sleep(max(0.0, down - (time.monotonic() - start)))

    def expected(self) -> list[set[str]]:
        calls = [Call.model_validate(c) for c in self.emu.calls() if c["id"] in self.mine]
        assert len(calls) == len(self.mine), "the emulator keeps every call the schedule made"
        return [
            {c.id for c in calls if VapiCallEventTrigger(**w.filters).call_filter.matches(c)}
            for w in self.watchers
        ]

    def judge(self, w: Watcher, want: set[str]) -> None:
        got = w.db.ids()
        assert set(got) - want == set(), f"{w.filters}: delivered calls it does not want: {set(got) - want}"
        repeated = set(w.db.repeated())
        assert repeated <= w.may_repeat, (
            f"{w.filters}: delivered twice outside a kill window: {repeated - w.may_repeat}"
        )
        assert w.db.unflagged_repeats() == set(), f"{w.filters}: a repeat without possibleRepeat"
        assert w.triggerer is not None and w.triggerer.failures() == []


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("seed", SEEDS)
async def test_call_event_schedule(seed: int, vapi_conn: str, vapi_emulator: Any) -> None:
    schedule = Schedule(seed, vapi_emulator, vapi_conn)
    try:
        await schedule.run()
    except AssertionError as exc:
        steps = "\n  ".join(schedule.steps)
        raise AssertionError(
            f"seed {seed} broke an invariant: {exc}\n  {steps}\nreplay: VAPI_SIM_EVENT_SEED={seed} "
            "pytest tests/test_call_events_simulation.py"
        ) from None
    finally:
        vapi_emulator.set_clock_offset(0.0)
