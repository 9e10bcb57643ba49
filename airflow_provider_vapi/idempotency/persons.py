"""The person, not the position, is the key: who a call is for, as a key that does not move when
the list does.

Within one dag run and task (every map index and try together, the *scope*,
:func:`~.keys.task_key`), each person is called at most once. A person is:

* a saved customer (``customer_id``), or a number with its extension, or a SIP URI (the number
  compared by its digits: ``+1 415-555-0123`` and ``+14155550123`` are one person);
* plus ``dedupe_key`` when the task gives one (two appointments of one number are two persons);
* plus an **occurrence** when one batch lists the same person more than once (the second listing
  is person ``#1``: a batch that says "call twice" gets two calls, once each).

Each person's call carries ``<scope>|<token>`` (:func:`person_key`): a hash of the above, so that no
phone number is written into the key. A row that moved between map indexes or batch positions
finds its call by that key; a new row has none and is called; a call whose person is no longer
listed is *left* (:class:`Match`), reported, never reused for someone else.

The same number in two mapped rows of one **fresh** run (try 1, never cleared) is the one case the
rule cannot cover: both task instances run at once and neither can see the other's call before it
exists; give the rows distinct ``dedupe_key`` values, or deduplicate upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from airflow_provider_vapi.models import Call, CreateCallRequest

#: Between the scope and the person's token in a call's key.
PERSON_SEP: Final = "|"
#: Between a person's key and a deliberate redial's try number (``redial_on_retry``).
REDIAL_SEP: Final = "~"
_NOT_DIGITS: Final = re.compile(r"[^0-9]")


def identity(customer: Mapping[str, Any] | None, customer_id: str | None = None) -> tuple[Any, ...]:
    """What identifies the person a customer object (wire form) reaches."""
    if customer_id:
        return ("customerId", customer_id)
    customer = customer or {}
    number = customer.get("number")
    digits = _NOT_DIGITS.sub("", number) if isinstance(number, str) else number
    return ("number", digits, customer.get("extension"), customer.get("sipUri"))


def token(person: tuple[Any, ...], dedupe_key: Any = None, occurrence: int = 0) -> str:
    """The person's part of a call's key: a short hash, so that the key quotes no phone number."""
    raw = json.dumps([list(person), None if dedupe_key is None else str(dedupe_key)], default=str)
    digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
    return f"{digest}.{occurrence}" if occurrence else digest


def person_key(scope: str, person_token: str) -> str:
    """The key of the call to one person within ``scope``."""
    return f"{scope}{PERSON_SEP}{person_token}"


def tokens(request: CreateCallRequest, dedupe_key: Any = None) -> list[str]:
    """One token per person the request calls, in its order (a single call: one)."""
    wire = request.to_wire()
    customers = wire.get("customers")
    if customers is None:
        return [token(identity(wire.get("customer"), request.customer_id), dedupe_key)]
    seen: Counter[tuple[Any, ...]] = Counter()
    found = []
    for customer in customers:
        person = identity(customer, customer.get("customerId") if isinstance(customer, dict) else None)
        found.append(token(person, dedupe_key, seen[person]))
        seen[person] += 1
    return found


def person_of_key(call_key: str | None, scope: str) -> str | None:
    """The person key a call's key names within ``scope`` (a redial's try number dropped)."""
    prefix = f"{scope}{PERSON_SEP}"
    if not call_key or not call_key.startswith(prefix) or len(call_key) == len(prefix):
        return None
    return prefix + call_key[len(prefix) :].split(REDIAL_SEP, 1)[0]


def _legacy(call_key: str | None, scope: str) -> bool:
    """A key of provider versions before the person rule: ``<scope>/<map index>`` (a batch's
    customers ``...:<index>``). Matched by the customer Vapi echoes, so that an upgrade between two
    tries of a task does not call its people again."""
    return bool(call_key) and call_key.startswith(f"{scope}/")  # type: ignore[union-attr]


@dataclass
class Match:
    """The calls of a scope matched to the persons of this try's list."""

    #: person key -> that person's newest call (a redial is newer than the call it redials).
    found: dict[str, Call] = field(default_factory=dict)
    #: calls of the scope whose person this try does not list (their row left, or changed number).
    left: list[Call] = field(default_factory=list)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The persons of ``keys`` who have no call yet."""
        return [k for k in keys if k not in self.found]


def match(
    calls: Iterable[Call],
    scope: str,
    keys: Iterable[str],
    key_of: Callable[[Call], str | None],
    dedupe_key: Any = None,
) -> Match:
    """Assign each call of ``scope`` (oldest first) to the person its key names.

    A workflow batch carries the plain scope (a workflow has no per-customer overrides to carry a
    person's key), and calls placed before the person rule carry the map index: their calls are
    assigned by the customer Vapi echoes, in order of creation."""
    wanted = set(keys)
    result = Match()
    seen: Counter[tuple[Any, ...]] = Counter()
    for call in calls:
        call_key = key_of(call)
        if call_key == scope or _legacy(call_key, scope):
            person_id = identity(call.customer if isinstance(call.customer, dict) else None, call.customer_id)
            person: str | None = person_key(scope, token(person_id, dedupe_key, seen[person_id]))
            seen[person_id] += 1
        else:
            person = person_of_key(call_key, scope)
        if person is None:
            continue
        if person in wanted:
            result.found[person] = call  # oldest first: the newest (a redial) wins
        else:
            result.left.append(call)
    return result
