"""Paging ``GET /call`` past its 1,000-per-request cap by splitting time windows.

Vapi's list has no cursor and no documented order, so "the next page" cannot be asked for. What can
be asked is a narrower time range: a window whose answer is full is split in two, until every
window answers with less than a full page. That is correct whatever order Vapi returns, and it is
pure arithmetic on timestamps, kept here so it can be tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_vapi.exceptions import VapiError, VapiInvalidRequestError

PAGE_MAX = 1000
_TICK = timedelta(milliseconds=1)


def iso(value: datetime | str) -> str:
    """Vapi's timestamp format: UTC, milliseconds, ``Z``."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str | datetime) -> datetime:
    """A Vapi timestamp (ISO text, ``Z`` or an offset; naive means UTC) as an aware datetime;
    ``ValueError`` if it is not one."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_ts_or_none(value: Any) -> datetime | None:
    """:func:`parse_ts`, or ``None`` for anything that is not a timestamp (absent, empty, garbage)."""
    if not isinstance(value, str | datetime) or value == "":
        return None
    try:
        return parse_ts(value)
    except ValueError:
        return None


def parse_param_ts(value: Any, name: str) -> datetime | None:
    """A date-time parameter of an operator (ISO text or a datetime; naive means UTC): ``None`` when
    it is empty, an error naming ``name`` (before any request) when it is not a date-time."""
    if value is None or value == "":
        return None
    stamp = parse_ts_or_none(value)
    if stamp is None:
        raise VapiInvalidRequestError(
            f"{name}={value!r} is not a date and time: give ISO 8601 text "
            "('2026-11-01T00:00:00+00:00') or a datetime, e.g. '{{ data_interval_start }}'."
        )
    return stamp


class PagingError(VapiError, ValueError):
    """More calls share one millisecond than one request can return (a ``VapiError``, so a trigger
    or task reports it like any other; still a ``ValueError`` for code that caught it as one)."""


@dataclass(frozen=True)
class Window:
    """Calls with ``low <= field < high`` (either end open when ``None``), on top of the filters."""

    field: str
    filters: dict[str, Any]
    low: datetime | None = None
    high: datetime | None = None

    @classmethod
    def first(cls, filters: dict[str, Any]) -> Window:
        """The window the user asked for; the field is ``updatedAt`` when they filter on it."""
        name = "updatedAt" if any(k.startswith("updatedAt") for k in filters) else "createdAt"
        return cls(name, filters)

    def params(self) -> dict[str, Any]:
        """Query parameters: the user's filters narrowed by this window (the server ANDs them)."""
        params = {k: iso(v) if isinstance(v, datetime) else v for k, v in self.filters.items()}
        if self.low is not None:
            given = params.get(f"{self.field}Ge")
            params[f"{self.field}Ge"] = iso(max(self.low, parse_ts(given)) if given else self.low)
        if self.high is not None:
            given = params.get(f"{self.field}Lt")
            params[f"{self.field}Lt"] = iso(min(self.high, parse_ts(given)) if given else self.high)
        params["limit"] = PAGE_MAX
        return params

    def split(self, stamps: list[datetime]) -> list[Window]:
        """Two windows covering this one, after it answered a full page with these timestamps."""
        oldest, newest = min(stamps), max(stamps)
        top = self.high if self.high is not None else newest + _TICK
        if self.low is None:
            # Unbounded below: what is older than anything seen, then the seen span in two halves
            # (a window holding the whole full page would only come back full again).
            middle = oldest + (top - oldest) / 2
            if top - oldest <= _TICK:
                return [self._with(None, oldest), self._with(oldest, self.high)]
            return [self._with(None, oldest), self._with(oldest, middle), self._with(middle, self.high)]
        if top - self.low <= _TICK:
            raise PagingError(
                f"More than {PAGE_MAX} calls have the same {self.field} ({iso(self.low)}): "
                "GET /call cannot page past them. Narrow the filters (assistantId, phoneNumberId)."
            )
        middle = self.low + (top - self.low) / 2
        return [self._with(self.low, middle), self._with(middle, self.high)]

    def _with(self, low: datetime | None, high: datetime | None) -> Window:
        return Window(self.field, self.filters, low, high)
