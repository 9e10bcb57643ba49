"""Fault injection: make matching Vapi-API requests fail, on a schedule or at a rate.

A *rule* matches requests by method and path (``*`` matches anything; a path ending in ``*`` is a
prefix) and says what to do with them:

* an HTTP status (``429``, ``500``, ``502``, ``503``, ...): answered at once with Vapi's error body,
  the request is NOT processed (nothing is created); 429 carries ``Retry-After``;
* ``drop`` ("answer lost"): the request IS processed (a call is created), then the connection is
  closed after the headers and part of the body, so the client sees a transport error, not a 5xx;
* ``delay:S``: the answer is held back ``S`` seconds (not divided by speed), then given normally;
* ``ok``: no fault (useful inside a sequence).

A rule either fires at a ``rate`` (probability per matching request, seeded for repeatability) or
plays a ``sequence`` of actions, one per matching request, and is then used up. Spec strings, as
the CLI's ``--fault-rate`` takes them: ``429=0.1,500=0.05,drop=0.01,delay:2=0.2``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

_KINDS = ("drop", "ok")


def parse_action(action: str | int) -> str:
    """Normalise an action (``429``, ``"503"``, ``"drop"``, ``"delay:1.5"``, ``"ok"``); ValueError if bad."""
    text = str(action).strip().lower()
    if text in _KINDS:
        return text
    if text.startswith("delay:"):
        seconds = float(text.split(":", 1)[1])
        if seconds < 0:
            raise ValueError(f"negative delay in fault action {action!r}")
        return f"delay:{seconds:g}"
    if text.isdigit() and 400 <= int(text) <= 599:
        return text
    raise ValueError(f"unknown fault action {action!r} (use a 4xx/5xx status, drop, delay:S or ok)")


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

    def matches(self, method: str, path: str) -> bool:
        """Does this rule apply to the request?"""
        if self.method != "*" and self.method != method:
            return False
        if self.path == "*":
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return self.path == path

    def to_dict(self) -> dict[str, Any]:
        """The admin API's view of the rule."""
        out: dict[str, Any] = {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "retryAfter": self.retry_after,
            "fired": self.fired,
        }
        if self.rate is not None:
            out.update(rate=self.rate, action=self.action)
        else:
            out["sequence"] = list(self.sequence)
        return out


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
        ``{"action": "500", "rate": 0.1}``; ``times: N`` with ``action`` is a sequence of N.
        """
        method = str(spec.get("method", "*")).upper()
        path = str(spec.get("path", "*"))
        retry_after = float(spec.get("retryAfter", spec.get("retry_after", 1.0)))
        rate = spec.get("rate")
        if rate is not None:
            rate = float(rate)
            if not 0.0 <= rate <= 1.0:
                raise ValueError("rate must be between 0 and 1")
            if "action" not in spec:
                raise ValueError("a rate rule needs an action")
            rule = FaultRule(0, method, path, rate=rate, action=parse_action(spec["action"]))
        elif "sequence" in spec:
            seq = spec["sequence"]
            if not isinstance(seq, list) or not seq:
                raise ValueError("sequence must be a non-empty list of actions")
            rule = FaultRule(0, method, path, sequence=[parse_action(a) for a in seq])
        elif "action" in spec:
            times = int(spec.get("times", 1))
            if times < 1:
                raise ValueError("times must be at least 1")
            rule = FaultRule(0, method, path, sequence=[parse_action(spec["action"])] * times)
        else:
            raise ValueError("a fault needs an action (with rate or times) or a sequence")
        rule.retry_after = retry_after
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
            out = []
            for r in self._rules:
                spec: dict[str, Any] = {"method": r.method, "path": r.path, "retryAfter": r.retry_after}
                if r.rate is not None:
                    spec.update(rate=r.rate, action=r.action)
                else:
                    spec["sequence"] = list(r.sequence)
                out.append(spec)
            return out

    def take(self, method: str, path: str) -> tuple[str, float] | None:
        """The action for this request (and the rule's Retry-After), consuming sequence steps."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
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
