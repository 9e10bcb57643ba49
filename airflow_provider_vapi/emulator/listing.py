"""The query of Vapi's list routes (``GET /call``, ``GET /assistant``, ``GET /phone-number``,
``GET /structured-output``, ``GET /v2/campaign``, ``GET /v2/campaign/{id}/contacts``), as the spec
defines it, validated the way Vapi's query DTOs are, and the ``PaginationMeta`` of a page.

Every list route takes ``limit`` (a number, 0 to 1000, default 100) and the eight time filters
``createdAtGt/Lt/Ge/Le`` and ``updatedAtGt/Lt/Ge/Le`` (ISO 8601 date-times); ``GET /call`` also
``id``, ``assistantId`` and ``phoneNumberId``; the paginated ``GET /structured-output`` also
``id``, ``name``, ``page`` (a number >= 1), ``sortOrder`` and ``sortBy``; the paginated
``GET /v2/campaign`` ``id``, ``status`` and ``includeCounters`` (``true``/``false``). The contacts
of a campaign have a query of their own (:func:`parse_contact_query`). Anything else is
``property X should not exist``; all violations come in one 400 whose ``message`` is a list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .campaign_records import CAMPAIGN_STATUSES, CONTACT_STATUSES
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
    "/v2/campaign": ("id", "status"),
}
#: The values an equality filter may take, when the spec lists them.
FILTER_VALUES: dict[str, dict[str, tuple[str, ...]]] = {"/v2/campaign": {"status": CAMPAIGN_STATUSES}}
#: The list routes' boolean parameters (``true``/``false``).
FLAGS: dict[str, tuple[str, ...]] = {"/v2/campaign": ("includeCounters",)}
#: The routes answering one page of a paginated response, and their paging parameters' values.
PAGED_ROUTES = frozenset({"/structured-output", "/v2/campaign"})
SORT_ORDERS = ("ASC", "DESC")
SORT_BY = ("createdAt", "duration", "cost")
#: ``GET /v2/campaign/{id}/contacts``: its default ``limit`` (1 to 1000) and its ``sortBy`` values.
CONTACT_LIMIT = 50
CONTACT_SORT_BY = ("position", "status")


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
    flags: dict[str, bool] = field(default_factory=dict)

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


def _limit(raw: str, errors: list[str], low: int = 0, default: int = DEFAULT_LIMIT) -> int:
    try:
        value = float(raw)
    except ValueError:
        errors.append("limit must be a number conforming to the specified constraints")
        return default
    if value != value or value in (float("inf"), float("-inf")):
        errors.append("limit must be a number conforming to the specified constraints")
    elif value < low:
        errors.append(f"limit must not be less than {low}")
    elif value > MAX_LIMIT:
        errors.append(f"limit must not be greater than {MAX_LIMIT}")
    else:
        return int(value)
    return default


def _page(raw: str, errors: list[str]) -> int:
    """``page``: a number >= 1 (1 when it is not one, with the violation noted)."""
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        errors.append("page must be a number conforming to the specified constraints")
    elif value < 1:
        errors.append("page must not be less than 1")
    else:
        return int(value)
    return 1


def _one_of(key: str, raw: str, allowed: tuple[str, ...], errors: list[str]) -> bool:
    """Whether ``raw`` is one of ``allowed`` (else class-validator's ``IsEnum`` message is noted)."""
    if raw in allowed:
        return True
    errors.append(f"{key} must be one of the following values: {', '.join(allowed)}")
    return False


def _flag(key: str, raw: str, errors: list[str]) -> bool:
    """A boolean query parameter (``true``/``false``, as Vapi's ``@Transform`` reads them)."""
    if raw not in ("true", "false"):
        errors.append(f"{key} must be a boolean value")
    return raw == "true"


def _paging(parsed: ListQuery, key: str, raw: str, errors: list[str]) -> None:
    """``page``, ``sortOrder`` or ``sortBy`` of a paginated route (``sortBy`` is checked, not used:
    only ``createdAt`` means something for the objects these routes list)."""
    if key == "page":
        parsed.page = _page(raw, errors)
    elif _one_of(key, raw, SORT_ORDERS if key == "sortOrder" else SORT_BY, errors) and key == "sortOrder":
        parsed.sort_order = raw


def parse_list_query(route: str, query: dict[str, str]) -> ListQuery:
    """The query of the list route ``route``; a 400 listing every violation."""
    errors: list[str] = []
    parsed = ListQuery()
    allowed = ID_FILTERS[route]
    values = FILTER_VALUES.get(route, {})
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
            if key not in values or _one_of(key, raw, values[key], errors):
                parsed.equal[key] = raw
        elif key in FLAGS.get(route, ()):
            parsed.flags[key] = _flag(key, raw, errors)
        elif route in PAGED_ROUTES and key in ("page", "sortOrder", "sortBy"):
            _paging(parsed, key, raw, errors)
        else:
            errors.append(f"property {key} should not exist")
    if errors:
        raise bad_request(errors)
    return parsed


def parse_counters_flag(query: dict[str, str]) -> bool:
    """The query of ``GET /v2/campaign/{id}``: ``includeCounters`` alone; a 400 otherwise."""
    errors = [f"property {key} should not exist" for key in query if key != "includeCounters"]
    wanted = (
        _flag("includeCounters", query["includeCounters"], errors) if "includeCounters" in query else False
    )
    if errors:
        raise bad_request(errors)
    return wanted


@dataclass
class ContactQuery:
    """A validated ``GET /v2/campaign/{id}/contacts`` query: ``statuses`` (None: any)."""

    statuses: frozenset[str] | None = None
    limit: int = CONTACT_LIMIT
    page: int = 1
    sort_by: str = "position"


def parse_contact_query(items: list[tuple[str, str]]) -> ContactQuery:
    """The contacts query (``status`` may repeat: any of them); a 400 listing every violation."""
    errors: list[str] = []
    parsed = ContactQuery()
    statuses: set[str] = set()
    for key, raw in items:
        if key == "status":
            if raw not in CONTACT_STATUSES:
                allowed = ", ".join(CONTACT_STATUSES)
                errors.append(f"each value in status must be one of the following values: {allowed}")
            statuses.add(raw)
        elif key == "limit":
            parsed.limit = _limit(raw, errors, low=1, default=CONTACT_LIMIT)
        elif key == "page":
            parsed.page = _page(raw, errors)
        elif key == "sortBy":
            if _one_of(key, raw, CONTACT_SORT_BY, errors):
                parsed.sort_by = raw
        else:
            errors.append(f"property {key} should not exist")
    if errors:
        raise bad_request(sorted(set(errors), key=errors.index))
    parsed.statuses = frozenset(statuses) if statuses else None
    return parsed


def page_meta(total: int, page: int, limit: int, sort_order: str | None = None) -> dict[str, Any]:
    """The ``PaginationMeta`` of page ``page`` of ``limit`` items out of ``total``."""
    meta: dict[str, Any] = {
        "itemsPerPage": limit,
        "totalItems": total,
        "currentPage": page,
        "totalPages": math.ceil(total / limit) if limit else 0,
        "hasNextPage": bool(limit) and page * limit < total,
    }
    if sort_order is not None:
        meta["sortOrder"] = sort_order
    return meta
