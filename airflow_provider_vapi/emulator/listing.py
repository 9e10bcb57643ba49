"""The query of Vapi's list routes (``GET /call``, ``GET /assistant``, ``GET /phone-number``,
``GET /structured-output``), as the spec defines it, validated the way Vapi's query DTOs are.

Every list route takes ``limit`` (a number, 0 to 1000, default 100) and the eight time filters
``createdAtGt/Lt/Ge/Le`` and ``updatedAtGt/Lt/Ge/Le`` (ISO 8601 date-times); ``GET /call`` also
``id``, ``assistantId`` and ``phoneNumberId``; the paginated ``GET /structured-output`` also
``id``, ``name``, ``page`` (a number >= 1), ``sortOrder`` and ``sortBy``. Anything else is
``property X should not exist``; all violations come in one 400 whose ``message`` is a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request
from .validation import parse_iso

TIME_FILTERS = (
    "createdAtGt",
    "createdAtLt",
    "createdAtGe",
    "createdAtLe",
    "updatedAtGt",
    "updatedAtLt",
    "updatedAtGe",
    "updatedAtLe",
)
DEFAULT_LIMIT = 100
#: Beyond any millisecond timestamp (an open end of :meth:`ListQuery.ms_ranges`).
UNBOUNDED = 2**62
MAX_LIMIT = 1000
#: The list routes' own equality filters (beside ``limit`` and the time filters).
ID_FILTERS: dict[str, tuple[str, ...]] = {
    "/call": ("id", "assistantId", "phoneNumberId"),
    "/assistant": (),
    "/phone-number": (),
    "/structured-output": ("id", "name"),
}
#: The routes answering one page of a paginated response, and their paging parameters' values.
PAGED_ROUTES = frozenset({"/structured-output"})
SORT_ORDERS = ("ASC", "DESC")
SORT_BY = ("createdAt", "duration", "cost")


def micros(value: str) -> int | None:
    """An ISO 8601 timestamp in microseconds since the epoch (None when it is not one)."""
    parsed = parse_iso(value)
    if parsed is None:
        return None
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond


@dataclass
class ListQuery:
    """A validated list query: ``limit``, time bounds and equality filters."""

    limit: int = DEFAULT_LIMIT
    bounds: list[tuple[str, str, int]] = field(default_factory=list)  # (createdAt|updatedAt, Gt.., µs)
    equal: dict[str, str] = field(default_factory=dict)
    page: int = 1
    sort_order: str = "DESC"

    def within(self, created_ms: int, updated_ms: int) -> bool:
        """Whether an object with these times passes every time bound."""
        for name, op, bound in self.bounds:
            value = (created_ms if name == "createdAt" else updated_ms) * 1000
            ok = {"Gt": value > bound, "Lt": value < bound, "Ge": value >= bound, "Le": value <= bound}[op]
            if not ok:
                return False
        return True

    def ms_ranges(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The time bounds as inclusive millisecond ranges ``(createdAt, updatedAt)``: an object
        passes :meth:`within` exactly when ``lo <= its ms <= hi`` for both (cheap to test on many)."""
        ranges = {"createdAt": [-UNBOUNDED, UNBOUNDED], "updatedAt": [-UNBOUNDED, UNBOUNDED]}
        for name, op, bound in self.bounds:
            low, high = ranges[name]
            if op == "Gt":
                low = max(low, bound // 1000 + 1)
            elif op == "Ge":
                low = max(low, -(-bound // 1000))
            elif op == "Lt":
                high = min(high, -(-bound // 1000) - 1)
            else:
                high = min(high, bound // 1000)
            ranges[name] = [low, high]
        created, updated = ranges["createdAt"], ranges["updatedAt"]
        return (created[0], created[1]), (updated[0], updated[1])

    def within_iso(self, obj: dict[str, Any]) -> bool:
        """:meth:`within` for an object carrying ``createdAt``/``updatedAt`` as ISO strings."""
        created, updated = micros(obj.get("createdAt", "")), micros(obj.get("updatedAt", ""))
        return self.within((created or 0) // 1000, (updated or 0) // 1000)


def _limit(raw: str, errors: list[str]) -> int:
    try:
        value = float(raw)
    except ValueError:
        errors.append("limit must be a number conforming to the specified constraints")
        return DEFAULT_LIMIT
    if value != value or value in (float("inf"), float("-inf")):
        errors.append("limit must be a number conforming to the specified constraints")
    elif value < 0:
        errors.append("limit must not be less than 0")
    elif value > MAX_LIMIT:
        errors.append(f"limit must not be greater than {MAX_LIMIT}")
    else:
        return int(value)
    return DEFAULT_LIMIT


def _paging(parsed: ListQuery, key: str, raw: str, errors: list[str]) -> None:
    """``page``, ``sortOrder`` or ``sortBy`` of a paginated route (``sortBy`` is checked, not used:
    only ``createdAt`` means something for the objects these routes list)."""
    if key == "page":
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")):
            errors.append("page must be a number conforming to the specified constraints")
        elif value < 1:
            errors.append("page must not be less than 1")
        else:
            parsed.page = int(value)
        return
    allowed = SORT_ORDERS if key == "sortOrder" else SORT_BY
    if raw not in allowed:
        errors.append(f"{key} must be one of the following values: {', '.join(allowed)}")
    elif key == "sortOrder":
        parsed.sort_order = raw


def parse_list_query(route: str, query: dict[str, str]) -> ListQuery:
    """The query of the list route ``route``; a 400 listing every violation."""
    errors: list[str] = []
    parsed = ListQuery()
    allowed = ID_FILTERS[route]
    for key, raw in query.items():
        if key == "limit":
            parsed.limit = _limit(raw, errors)
        elif key in TIME_FILTERS:
            bound = micros(raw)
            if bound is None:
                errors.append(f"{key} must be a valid ISO 8601 date string")
            else:
                parsed.bounds.append((key[:9], key[9:], bound))
        elif key in allowed:
            parsed.equal[key] = raw
        elif route in PAGED_ROUTES and key in ("page", "sortOrder", "sortBy"):
            _paging(parsed, key, raw, errors)
        else:
            errors.append(f"property {key} should not exist")
    if errors:
        raise bad_request(errors)
    return parsed
