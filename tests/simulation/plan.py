"""A schedule from a seed: what the task is, its upstream lists per try set, and the fate of every
try (its faults, its kill, a second worker). Everything random comes from ``random.Random`` seeded
with the seed (and, per try, with ``seed/set/map index/try``), so a seed replays its schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["mapped", "batch", "campaign"]

#: Fault actions a request may meet (:mod:`.faults` says what each does).
FAULTS = (
    "drop",
    "late",
    "stall",
    "500",
    "503",
    "502",
    "429",
    "garbage:html",
    "garbage:null",
    "garbage:truncated",
)
#: Gaps before a clear: minutes to days.
CLEAR_GAPS = (120.0, 900.0, 3600.0, 86400.0, 3 * 86400.0)
#: A batch large enough that its calls cannot all be told apart by ``createdAt`` (> 1,000).
BIG_BATCH = (1001, 1040)


def person_number(seed: int, index: int) -> str:
    """The ``index``-th person of a schedule: an E.164 number whose outcome is a conversation."""
    return f"+1415{seed % 97:02d}{index:05d}8"


def refused_customer(index: int) -> dict[str, Any]:
    """A customer Vapi refuses in a batch (no number, an empty SIP URI): reported, never called."""
    return {"sipUri": "", "name": f"refused-{index}"}


def person_of(customer: Any) -> str:
    """Who a customer is, for the invariants: the number, or a refused customer's name."""
    if isinstance(customer, str):
        return customer
    return str(customer.get("number") or f"refused:{customer.get('name')}")


@dataclass
class TryFate:
    """What happens to one try of one map index."""

    seed: str
    fault_rate: float
    kill_at: int | None = None  #: 1-based request number
    kill_after: bool = False  #: the request reached Vapi (and took effect) before the worker died
    overlap_at: int | None = None  #: a second worker starts the next try at this request of this one
    timeout: float = 0.2
    #: ``"POST /call"`` -> action: the first such request meets it, whatever the rate
    force: dict[str, str] = field(default_factory=dict)

    def fault_for(self, number: int, method: str, path: str) -> tuple[str, float] | None:
        """The fault on request ``number`` (and its factor of the timeout for late/stall)."""
        forced = self.force.pop(f"{method} {path}", None)
        if forced is not None:
            return forced, 1.0
        rng = random.Random(f"{self.seed}/{number}/{method} {path}")
        if rng.random() >= self.fault_rate:
            return None
        return rng.choice(FAULTS), rng.uniform(1.0, 6.0)

    def describe(self) -> str:
        parts = [f"faults {self.fault_rate:.0%}"] if self.fault_rate else []
        parts += [f"{action} on the first {request}" for request, action in self.force.items()]
        if self.kill_at is not None:
            parts.append(f"killed {'after' if self.kill_after else 'before'} request {self.kill_at}")
        if self.overlap_at is not None:
            parts.append(f"hangs at request {max(1, self.overlap_at)} while the next try runs beside it")
        return ", ".join(parts) or "clean"


@dataclass
class TrySet:
    """The dag run from its start or from a clear to the end of its tries."""

    index: int
    gap: float  #: seconds since the try set before (0 for the first)
    skew: float  #: Vapi's clock minus Airflow's, seconds
    rows: list[Any]  #: mapped: one customer per map index; batch/campaign: the customers
    wipe_store: bool = False  #: the task state store was emptied (clear_on_success, expiry)
    calm: bool = False  #: no faults, no kills: the run must then resolve
    batch_edits: dict[int, list[Any]] = field(default_factory=dict)  #: try -> the list that try reads


@dataclass
class Schedule:
    seed: int
    kind: Kind
    store: bool  #: Airflow 3.3's task state store (else the 2.11 fallback)
    retries: int
    fail_on_batch_errors: bool
    timeout: float
    sets: list[TrySet]
    dedupe: bool = False  #: a mapped person is listed twice with two ``dedupe_key`` (two appointments)
    dag_test: bool = False
    big: bool = False

    @property
    def dag_id(self) -> str:
        return f"sim_{self.seed}"

    @property
    def settle(self) -> float:
        """``create_settle_seconds``: longer than the slowest late answer (6x the timeout)."""
        return round(6 * self.timeout + 1.5, 2)

    def fate(self, set_index: int, map_index: int, try_number: int) -> TryFate:
        """The fate of one try (deterministic from the seed)."""
        tag = f"{self.seed}/{set_index}/{map_index}/{try_number}"
        rng = random.Random(tag)
        fate = TryFate(seed=tag, fault_rate=0.0, timeout=self.timeout)
        if self.sets[set_index].calm or (self.dag_test and try_number > self.retries):
            return fate
        fate.fault_rate = rng.choice((0.0, 0.0, 0.1, 0.25))
        if self.big and set_index == 0 and try_number == 1:
            fate.force["POST /call"] = "drop"  # a lost answer to a batch of more than 1,000
            return fate
        if rng.random() < 0.4:
            fate.kill_at = rng.randint(1, 6)
            fate.kill_after = rng.random() < 0.6
        # Two tries at once: only with the task state store. On Airflow 2.11 nothing can tell a
        # stale try that a later one started; there the provider relies on Airflow stopping a try
        # before it starts the next (README, "Retry safety": the limits).
        if rng.random() < 0.12 and self.store:
            fate.overlap_at = rng.randint(0, 4)
        return fate

    def describe(self) -> str:
        head = (
            f"seed {self.seed}: {self.kind}{' (dag.test)' if self.dag_test else ''}, "
            f"{'task state store' if self.store else 'no task state store (2.11)'}, retries={self.retries}, "
            f"timeout={self.timeout}s, create_settle={self.settle}s"
        )
        if self.kind == "batch":
            head += f", fail_on_batch_errors={self.fail_on_batch_errors}"
        lines = [head]
        for s in self.sets:
            what = "run" if s.index == 0 else f"clear +{_duration(s.gap)}"
            extra = (" calm" if s.calm else "") + (" store wiped" if s.wipe_store else "")
            lines.append(f"  set {s.index}: {what}, Vapi clock {s.skew:+.0f}s{extra}, rows {_rows(s.rows)}")
            for t, rows in sorted(s.batch_edits.items()):
                lines.append(f"    try {t} reads {_rows(rows)}")
        if self.dedupe:
            lines.append("  one person is listed twice with two dedupe_keys (two appointments)")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:g}d"
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}min"


def _rows(rows: list[Any]) -> str:
    people = [p.partition(":")[2] if p.startswith("refused:") else p[-6:] for p in map(person_of, rows)]
    if len(people) > 12:
        return f"[{', '.join(people[:5])}, ... {len(people)} customers]"
    return f"[{', '.join(people)}]"


def _mutate(rng: random.Random, rows: list[Any], fresh: Any, *, distinct: bool) -> list[Any]:
    """The upstream list of a later try set: reordered, grown, shrunk or edited (one to two edits)."""
    rows = list(rows)
    for _ in range(rng.randint(1, 2)):
        edit = rng.choice(("reorder", "grow", "grow_top", "shrink", "edit", "swap01"))
        if edit == "reorder":
            rng.shuffle(rows)
        elif edit == "swap01" and len(rows) >= 2:
            rows[0], rows[1] = rows[1], rows[0]
        elif edit == "grow_top":
            rows.insert(0, fresh())
        elif edit == "grow":
            rows.insert(rng.randint(0, len(rows)), fresh())
        elif edit == "shrink" and len(rows) > 1:
            rows.pop(rng.randrange(len(rows)))
        elif edit == "edit":
            rows[rng.randrange(len(rows))] = fresh()
    if distinct:
        seen: set[str] = set()
        rows = [r for r in rows if not (person_of(r) in seen or seen.add(person_of(r)))]  # type: ignore[func-returns-value]
    return rows


def generate(seed: int, *, dag_test: bool = False, skew: bool = True, dedupe: bool = True) -> Schedule:
    """The schedule of ``seed``. ``skew``: the emulator can skew its clock; ``dedupe``: the
    operator takes ``dedupe_key`` (the code under test decides; the seed's choices stay put)."""
    rng = random.Random(seed)
    kind: Kind = rng.choices(("mapped", "batch", "campaign"), weights=(4, 4, 2))[0]  # type: ignore[assignment]
    counter = iter(range(10**6))

    def fresh() -> str:
        return person_number(seed, next(counter))

    big = kind == "batch" and not dag_test and rng.random() < 0.03
    size = rng.randint(*BIG_BATCH) if big else rng.randint(2, 5) if kind != "batch" else rng.randint(2, 8)
    rows: list[Any] = [fresh() for _ in range(size)]
    refused = 0
    if kind == "batch" and rng.random() < 0.35:
        for _ in range(rng.randint(1, 2)):
            rows.insert(rng.randint(0, len(rows)), refused_customer(refused))
            refused += 1
    if kind == "batch" and rng.random() < 0.15:  # the same person twice in one batch: two calls
        rows.append(rows[rng.randrange(len(rows))])
    schedule = Schedule(
        seed=seed,
        kind=kind,
        store=rng.random() < 0.5,
        retries=rng.randint(1, 3),
        fail_on_batch_errors=rng.random() < 0.8,
        timeout=5.0 if big else 0.2,
        sets=[],
        dag_test=dag_test,
        big=big,
    )
    dupe_row = kind == "mapped" and rng.random() < 0.15  # two appointments, two dedupe keys
    if dupe_row and dedupe and not dag_test:
        rows[0] = {"number": rows[0], "dedupe_key": "appointment-a"}
        rows.append({"number": rows[0]["number"], "dedupe_key": "appointment-b"})
        schedule.dedupe = True
    clears = rng.choices((0, 1, 2, 3), weights=(3, 4, 2, 1))[0]
    if dag_test:  # dag.test() again is a new run, not a clear: one try set, retries only
        clears = 0
    for index in range(clears + 1):
        gap = 0.0 if index == 0 else rng.choice(CLEAR_GAPS)
        skewed = rng.random() < 0.5
        offset = rng.choice((-60.0, rng.uniform(-600, 600))) if skewed and skew else 0.0
        if index > 0 and not big:
            rows = _mutate(rng, rows, fresh, distinct=kind != "batch" and not schedule.dedupe)
            if kind == "batch" and refused and rng.random() < 0.5:
                rows.append(refused_customer(refused))
                refused += 1
        try_set = TrySet(
            index, gap, round(offset, 1), list(rows), wipe_store=index > 0 and rng.random() < 0.2
        )
        if kind == "batch" and not big and not dag_test and rng.random() < 0.2:
            edited = _mutate(rng, rows, fresh, distinct=False)
            try_set.batch_edits[rng.randint(2, schedule.retries + 1)] = edited
        schedule.sets.append(try_set)
    if dag_test:  # its last try is calm instead (Schedule.fate)
        return schedule
    # The faults stop; a last clear must then resolve the task (liveness).
    last = schedule.sets[-1]
    schedule.sets.append(
        TrySet(len(schedule.sets), rng.choice(CLEAR_GAPS), last.skew, list(last.rows), calm=True)
    )
    if kind == "batch" and last.batch_edits:
        schedule.sets[-1].rows = list(last.batch_edits[max(last.batch_edits)])
    return schedule
