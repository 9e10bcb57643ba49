"""The promises, judged from the emulator's own records (its calls and campaigns), by the person:
a customer's number (a refused customer's name), never the provider's idempotency key, so the
judge does not depend on the code it judges. Each schedule has an emulator of its own (reset), so
every call and campaign there is this schedule's one dag run and task."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.simulation.driver import Outcome, Record
from tests.simulation.plan import Schedule, person_of

#: The invariants, by name (the names the failure messages and the seed table use).
AT_MOST_ONE = "at most one call per person"
EXACTLY_ONE = "exactly one call per person of a task that succeeded"
REFUSAL_REPORTED = "every refusal is reported"
REFUSAL_NAMED = "a refusal names the customer"
IDS_HELD = "the task holds its calls' ids"
ONE_CAMPAIGN = "one campaign per task"
RESOLVES = "a calm clear resolves the task"


@dataclass
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


def _allowed(schedule: Schedule, record: Record) -> Counter[str]:
    """Calls a person may have: one, or one per listing in one batch list (the same number twice
    is two appointments), or one per ``dedupe_key``."""
    allowed: Counter[str] = Counter()
    keys: dict[str, set[str]] = {}
    for try_set in schedule.sets:
        lists = [try_set.rows, *try_set.batch_edits.values()] if schedule.kind == "batch" else []
        for rows in lists:
            for person, count in Counter(person_of(r) for r in rows).items():
                allowed[person] = max(allowed[person], count)
        for row in try_set.rows:
            if isinstance(row, dict) and row.get("dedupe_key"):
                keys.setdefault(person_of(row), set()).add(row["dedupe_key"])
    for person, found in keys.items():
        allowed[person] = max(allowed[person], len(found))
    return allowed


def check(schedule: Schedule, record: Record, emu: Any) -> list[Violation]:
    calls = [c for c in emu.calls() if c.get("customer")]
    by_person: dict[str, list[str]] = {}
    for call in calls:
        by_person.setdefault(person_of(call["customer"]), []).append(call["id"])
    allowed = _allowed(schedule, record)
    found: list[Violation] = []
    for person, ids in sorted(by_person.items()):
        if len(ids) > max(1, allowed[person]):
            found.append(Violation(AT_MOST_ONE, f"{person} was called {len(ids)} times: {ids}"))
    if schedule.kind == "campaign":
        found += _campaigns(schedule, record, emu)
    else:
        found += _final(schedule, record, by_person, {c["id"]: c for c in calls})
    return found


def _final(
    schedule: Schedule, record: Record, by_person: dict[str, list[str]], calls: dict[str, dict[str, Any]]
) -> list[Violation]:
    """The last (calm) try set: what each map index ended with."""
    found: list[Violation] = []
    for map_index, outcome in sorted(record.results[-1].items()):
        persons = Counter(person_of(p) for p in outcome.persons)
        refused = sorted(p for p in persons if p.startswith("refused:"))
        if not outcome.ok:
            for_refusals = "AirflowFailException" in outcome.error and "refused" in outcome.error
            if not (refused and schedule.fail_on_batch_errors and for_refusals):
                found.append(Violation(RESOLVES, f"map index {map_index} failed: {outcome.error[:400]}"))
                continue
            unnamed = [p for p in refused if p.partition(":")[2] not in outcome.error]
            if unnamed:
                found.append(
                    Violation(
                        REFUSAL_NAMED,
                        f"the failure does not say who was refused ({unnamed}): {outcome.error[:300]}",
                    )
                )
            continue
        for person, count in persons.items():
            have = len(by_person.get(person, []))
            if person in refused:
                reported = _reported(outcome.value)
                if schedule.fail_on_batch_errors or person.partition(":")[2] not in reported:
                    found.append(
                        Violation(
                            REFUSAL_REPORTED,
                            f"{person} was refused and the task succeeded without reporting it "
                            f"(fail_on_batch_errors={schedule.fail_on_batch_errors}; errors: {reported or 'none'})",
                        )
                    )
            elif have < count:
                found.append(
                    Violation(
                        EXACTLY_ONE,
                        f"map index {map_index} succeeded but {person} has {have} call(s), wants {count}",
                    )
                )
        found += _ids(map_index, outcome, persons, by_person, calls)
    return found


def _reported(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("errors"))
    return ""


def _ids(
    map_index: int,
    outcome: Outcome,
    persons: Counter[str],
    by_person: dict[str, list[str]],
    calls: dict[str, dict[str, Any]],
) -> list[Violation]:
    value = outcome.value
    ids = value.get("call_ids", []) if isinstance(value, dict) else [value]
    # A person's calls must all be held when they are no more than this task instance asked for
    # (more: "at most one call" reports it; a person on two map indexes: each holds its own).
    wanted = {
        cid for p, n in persons.items() if len(by_person.get(p, [])) <= n for cid in by_person.get(p, [])
    }
    strangers = [i for i in ids if i not in calls or person_of(calls[i]["customer"]) not in persons]
    missing = sorted(wanted - set(ids))
    if strangers or missing:
        return [
            Violation(
                IDS_HELD,
                f"map index {map_index} returned {ids}: not its persons' {strangers}, its persons' calls "
                f"missing {missing}",
            )
        ]
    return []


def _campaigns(schedule: Schedule, record: Record, emu: Any) -> list[Violation]:
    campaigns = [c for c in emu.campaigns() if str(c.get("name", "")).startswith(f"{schedule.dag_id} ")]
    found: list[Violation] = []
    if len(campaigns) > 1:
        found.append(Violation(ONE_CAMPAIGN, f"{len(campaigns)} campaigns: {[c['id'] for c in campaigns]}"))
    outcome = record.results[-1][0]
    if not outcome.ok:
        found.append(Violation(RESOLVES, f"the campaign task failed: {outcome.error[:400]}"))
    elif not campaigns or (outcome.value or {}).get("campaign_id") not in {c["id"] for c in campaigns}:
        found.append(
            Violation(IDS_HELD, f"the task returned {outcome.value!r:.200}; campaigns: {campaigns!r:.200}")
        )
    return found
