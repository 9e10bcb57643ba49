"""Fault injection: make matching Vapi-API requests fail, on a schedule or at a rate.

A *rule* matches requests by method and path (``*`` matches anything; a path ending in ``*`` is a
prefix) and, optionally, by query string: ``query`` ``{"createdAtGe": "*", "assistantId": "a1"}``
matches only requests carrying every listed parameter (``"*"``: present with any value; otherwise
equal to that value), so a rule can hit ``GET /call?createdAtGe=...`` and spare
``GET /call?updatedAtGt=...``. The rule says what to do with the requests it matches:

* an HTTP status (``429``, ``500``, ``502``, ``503``, ...): answered at once with Vapi's error body,
  the request is NOT processed (nothing is created); 429 carries ``Retry-After``;
* ``drop`` ("answer lost"): the request IS processed (a call is created), then the connection is
  closed after the headers and part of the body, so the client sees a transport error, not a 5xx;
* ``delay:S``: the request waits ``S`` seconds (not divided by speed), then is processed and
  answered normally;
* ``late:S`` ("slow create"): the request is processed only after ``S`` seconds (not divided by
  speed) while the connection is held open without an answer, then answered normally. The work is
  the server's own: it happens at ``S`` even when the client has given up and gone, so a client
  whose timeout is shorter than ``S`` can list calls before its call exists. A reset of the
  emulator abandons the pending work (nothing is created; a client still waiting gets a 503);
* ``stall:S`` ("slow answer"): the request is processed at once, and its answer held back ``S``
  seconds (not divided by speed) before it is sent: what the client reads describes the moment the
  request arrived, not the moment the answer does;
* ``garbage:KIND`` ("2xx with a broken body"): the request IS processed (a create creates) and
  answered with the route's own status (200/201 for a good request) but a broken body:
  ``garbage:html`` an HTML page (``text/html``), ``garbage:null`` the JSON ``null``,
  ``garbage:truncated`` the real body cut in half, keeping its type (``application/json``, or
  ``audio/wav`` on the storage route);
* ``ok``: no fault (useful inside a sequence).

The presigned storage route (``/_storage/recordings/...``, :mod:`.recordings`) takes rules like
any Vapi route (``path: "/_storage/*"``); its status faults answer S3's XML error body.

A rule either fires at a ``rate`` (probability per matching request, seeded for repeatability) or
plays a ``sequence`` of actions, one per matching request, and is then used up. Spec strings, as
the CLI's ``--fault-rate`` takes them: ``429=0.1,500=0.05,drop=0.01,delay:2=0.2,garbage:html=0.1``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_KINDS = ("drop", "ok")
_TIMED = ("delay", "late", "stall")
#: The broken bodies ``garbage:KIND`` can answer with.
GARBAGE_KINDS = ("html", "null", "truncated")
_ACTIONS_HINT = "use a 4xx/5xx status, drop, delay:S, late:S, stall:S, garbage:html|null|truncated or ok"


def parse_action(action: str | int) -> str:
    """Normalise an action (``429``, ``"503"``, ``"drop"``, ``"delay:1.5"``, ``"late:2"``,
    ``"stall:1"``, ``"garbage:html"``, ``"ok"``); ValueError if bad."""
    text = str(action).strip().lower()
    if text in _KINDS:
        return text
    kind, sep, argument = text.partition(":")
    if sep and kind in _TIMED:
        seconds = float(argument)
        if not seconds >= 0:
            raise ValueError(f"negative or invalid wait in fault action {action!r}")
        return f"{kind}:{seconds:g}"
    if sep and kind == "garbage" and argument in GARBAGE_KINDS:
        return text
    if text.isdigit() and 400 <= int(text) <= 599:
        return text
    raise ValueError(f"unknown fault action {action!r} ({_ACTIONS_HINT})")


def parse_query(value: Any) -> dict[str, str]:
    """A rule's ``query`` (``None``: no condition) as ``{name: value or "*"}``; ValueError if bad."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("query must be an object of parameter names to values (or '*')")
    out: dict[str, str] = {}
    for name, wanted in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError("query parameter names must be non-empty strings")
        if isinstance(wanted, bool) or not isinstance(wanted, str | int | float):
            raise ValueError(f"query parameter {name!r} must be a string ('*': any value)")
        out[name] = str(wanted)
    return out


@dataclass
class FaultRule:
    """One fault rule (see the module docstring)."""

    id: int
    method: str = "*"
    path: str = "*"
    rate: float | None = None
    action: str | None = None
    sequence: list[str] = field(default_factory=list)
    retry_after: float = 1.0
    fired: int = 0
    query: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str, query: Mapping[str, str] | None = None) -> bool:
        """Does this rule apply to the request (its method, path and query parameters)?"""
        if self.method != "*" and self.method != method:
            return False
        if self.query and not self._query_matches(query or {}):
            return False
        if self.path == "*":
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return self.path == path

    def _query_matches(self, query: Mapping[str, str]) -> bool:
        return all(
            name in query and (wanted == "*" or query[name] == wanted) for name, wanted in self.query.items()
        )

    def spec(self) -> dict[str, Any]:
        """The rule as :meth:`FaultBook.add` takes it (what a reset restores)."""
        out: dict[str, Any] = {"method": self.method, "path": self.path, "retryAfter": self.retry_after}
        if self.query:
            out["query"] = dict(self.query)
        if self.rate is not None:
            out.update(rate=self.rate, action=self.action)
        else:
            out["sequence"] = list(self.sequence)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The admin API's view of the rule."""
        return {"id": self.id, **self.spec(), "fired": self.fired}


def rule_from_spec(spec: dict[str, Any]) -> FaultRule:
    """A rule (id 0) from its admin-API form; ValueError when malformed (see :meth:`FaultBook.add`)."""
    method = str(spec.get("method", "*")).upper()
    path = str(spec.get("path", "*"))
    rule = FaultRule(0, method, path, query=parse_query(spec.get("query")))
    rule.retry_after = float(spec.get("retryAfter", spec.get("retry_after", 1.0)))
    rate = spec.get("rate")
    if rate is not None:
        rule.rate = float(rate)
        if not 0.0 <= rule.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if "action" not in spec:
            raise ValueError("a rate rule needs an action")
        rule.action = parse_action(spec["action"])
    elif "sequence" in spec:
        seq = spec["sequence"]
        if not isinstance(seq, list) or not seq:
            raise ValueError("sequence must be a non-empty list of actions")
        rule.sequence = [parse_action(a) for a in seq]
    elif "action" in spec:
        times = int(spec.get("times", 1))
        if times < 1:
            raise ValueError("times must be at least 1")
        rule.sequence = [parse_action(spec["action"])] * times
    else:
        raise ValueError("a fault needs an action (with rate or times) or a sequence")
    return rule


class FaultBook:
    """The active fault rules; thread-safe, first matching rule wins (in the order added)."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._seed = seed
        self._random = random.Random(seed)
        self._next_id = 1

    def __bool__(self) -> bool:
        return bool(self._rules)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from its admin-API form; ValueError when malformed.

        ``{"method": "POST", "path": "/call", "sequence": ["429", "drop"]}`` or
        ``{"action": "500", "rate": 0.1}``; ``times: N`` with ``action`` is a sequence of N;
        ``query: {"createdAtGe": "*"}`` narrows the requests it matches.
        """
        rule = rule_from_spec(spec)
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule and restart the random sequence."""
        with self._lock:
            self._rules.clear()
            self._random = random.Random(self._seed)

    def rules(self) -> list[dict[str, Any]]:
        """Every active rule, in the admin API's form."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def specs(self) -> list[dict[str, Any]]:
        """The active rules as :meth:`add` takes them (to restore them on reset)."""
        with self._lock:
            return [r.spec() for r in self._rules]

    def take(
        self, method: str, path: str, query: Mapping[str, str] | None = None
    ) -> tuple[str, float] | None:
        """The action for this request (and the rule's Retry-After), consuming sequence steps."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path, query):
                    continue
                if rule.rate is not None:
                    if self._random.random() >= rule.rate:
                        continue
                    assert rule.action is not None
                    rule.fired += 1
                    return rule.action, rule.retry_after
                action = rule.sequence.pop(0)
                rule.fired += 1
                if not rule.sequence:
                    self._rules.remove(rule)
                return action, rule.retry_after
        return None


def parse_rate_spec(text: str) -> list[tuple[str, float]]:
    """``"429=0.1,500=0.05"`` -> ``[("429", 0.1), ("500", 0.05)]`` (the CLI's ``--fault-rate``)."""
    out: list[tuple[str, float]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        action, sep, rate = part.rpartition("=")
        if not sep:
            raise ValueError(f"fault rate {part!r} is not ACTION=RATE")
        out.append((parse_action(action), float(rate)))
    return out
