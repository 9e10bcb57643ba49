"""Which ended calls a :class:`~.trigger.VapiCallEventTrigger` turns into asset events.

Every filter is a keyword argument of the trigger, checked when the DAG is parsed (a typo in an
outcome or a direction must fail there, naming the argument, not silently match nothing), and
kept in the trigger's serialized kwargs in a canonical form, so that two watchers written with
the same filters in a different order are one trigger for Airflow.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_vapi.exceptions import VapiInvalidRequestError
from airflow_provider_vapi.models import Call, CallOutcome

#: ``direction`` -> the ``Call.type`` values it stands for.
DIRECTIONS: dict[str, frozenset[str]] = {
    "inbound": frozenset({"inboundPhoneCall"}),
    "outbound": frozenset({"outboundPhoneCall"}),
    "web": frozenset({"webCall"}),
}
_SCALARS = (str, int, float, bool)


def _strings(name: str, value: str | Collection[str] | None) -> tuple[str, ...]:
    """One string or a collection of them, sorted and without repeats; empty for ``None``."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    bad = [item for item in items if not isinstance(item, str) or not item]
    if bad or isinstance(value, Mapping):
        raise VapiInvalidRequestError(
            f"{name} must be a string or a list of non-empty strings (got {type(value).__name__}); "
            f"e.g. {name}=['first', 'second']."
        )
    return tuple(sorted(set(items)))


def _choices(name: str, value: str | Collection[str] | None, allowed: Collection[str]) -> tuple[str, ...]:
    items = _strings(name, value)
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise VapiInvalidRequestError(
            f"{name} has {', '.join(map(repr, unknown))}, which is not one of "
            f"{', '.join(map(repr, sorted(allowed)))}. Use those names (case matters)."
        )
    return items


def _metadata(value: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise VapiInvalidRequestError(
            f"metadata must be a dict of key/value pairs the call's metadata must hold (got "
            f"{type(value).__name__}); e.g. metadata={{'line': 'support'}}."
        )
    bad = [str(k) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, _SCALARS)]
    if bad:
        raise VapiInvalidRequestError(
            f"metadata keys {', '.join(map(repr, bad))}: each key must be a string and each value a "
            "string, number or boolean (matched by equality)."
        )
    return tuple(sorted(value.items()))


@dataclass(frozen=True)
class CallFilter:
    """What an ended call must be to become an event (every given criterion must hold; inside one
    criterion, any of its values). An empty filter matches every ended call of the account."""

    direction: tuple[str, ...] = ()
    assistant_id: tuple[str, ...] = ()
    squad_id: tuple[str, ...] = ()
    phone_number_id: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    ended_reasons: tuple[str, ...] = ()
    metadata: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def build(
        cls,
        *,
        direction: str | Collection[str] | None = None,
        assistant_id: str | Collection[str] | None = None,
        squad_id: str | Collection[str] | None = None,
        phone_number_id: str | Collection[str] | None = None,
        outcomes: str | Collection[str] | None = None,
        ended_reasons: str | Collection[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CallFilter:
        """Check and normalise the trigger's filter arguments (errors name the argument)."""
        return cls(
            direction=_choices("direction", direction, DIRECTIONS),
            assistant_id=_strings("assistant_id", assistant_id),
            squad_id=_strings("squad_id", squad_id),
            phone_number_id=_strings("phone_number_id", phone_number_id),
            outcomes=_choices("outcomes", outcomes, [o.value for o in CallOutcome]),
            ended_reasons=_strings("ended_reasons", ended_reasons),
            metadata=_metadata(metadata),
        )

    def to_kwargs(self) -> dict[str, Any]:
        """The canonical serialized form (lists, ``None`` when not given)."""
        out: dict[str, Any] = {}
        for name in ("direction", "assistant_id", "squad_id", "phone_number_id", "outcomes", "ended_reasons"):
            values = getattr(self, name)
            out[name] = list(values) if values else None
        out["metadata"] = dict(self.metadata) if self.metadata else None
        return out

    def matches(self, call: Call) -> bool:
        if self.direction and not any(call.type in DIRECTIONS[d] for d in self.direction):
            return False
        for name in ("assistant_id", "squad_id", "phone_number_id"):
            wanted = getattr(self, name)
            if wanted and getattr(call, name) not in wanted:
                return False
        if self.outcomes and call.outcome.value not in self.outcomes:
            return False
        if self.ended_reasons and call.ended_reason not in self.ended_reasons:
            return False
        found = call.metadata
        return all(key in found and found[key] == value for key, value in self.metadata)

    def describe(self) -> str:
        """For logs: ``direction=inbound assistant_id=a1`` (or ``every ended call``)."""
        parts = [
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in self.to_kwargs().items()
            if v
        ]
        return " ".join(parts) or "every ended call"


__all__ = ["DIRECTIONS", "CallFilter"]
