"""Reading ``GET /call`` for the shared poll: every page decoded a call at a time, only the watched
calls made into models, the event loop never held for long.

The shared poll (:mod:`airflow_provider_vapi.waiting.watcher`) asks Vapi what changed on the whole account.
On a busy account that is mostly other people's calls: a full page of long conversations is about
32 MB of JSON, and decoding it in one ``json.loads`` then validating a thousand ``Call`` models
would stop every other trigger of the triggerer for seconds. So a page is read here as raw bytes
(:meth:`.VapiHook.alist_calls_page`) and walked element by element with
``json.JSONDecoder.raw_decode``, giving the loop back every :data:`SLICE_SECONDS`. Of each
element only ``id`` and the window's timestamp are looked at; the calls the watcher waits for
(``wanted``) become :class:`~airflow_provider_vapi.models.Call` models (a live one only its
header, :data:`LIVE_KEYS`), the rest are dropped at once. Paging past 1,000 is :class:`~airflow_provider_vapi.wire.paging.Window`'s splitting, as for
:meth:`.VapiHook.list_calls`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from airflow_provider_vapi.exceptions import VapiResponseError
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.wire.paging import PAGE_MAX, Window, parse_ts_or_none

#: The longest stretch the decoder keeps the event loop before it lets other tasks run.
SLICE_SECONDS = 0.005
#: What of a call that has not ended is kept (a wait judges a live call by these alone; an ended
#: call is kept whole: its analysis and outputs decide whether the wait is over).
LIVE_KEYS = ("id", "orgId", "type", "status", "createdAt", "updatedAt", "startedAt", "endedAt", "endedReason")
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass
class Listing:
    """What a listing held: the wanted calls (newest state of each), and how much it saw."""

    #: False: only the ids of the wanted calls listed are kept (``ids``), no model is made.
    models: bool = True
    #: ``known(call_id, updated_at)``: the caller holds this state already, no model is needed.
    known: Callable[[str, datetime], bool] | None = None
    #: Keep every ended call listed as a model, wanted or not (the call-event watchers' tap).
    ended: bool = False
    calls: dict[str, Call] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    #: The newest ``updatedAt`` of any call listed, wanted or not (the watcher's cursor moves by it).
    newest: datetime | None = None
    listed: int = 0
    requests: int = 0

    def keep(self, call: Call) -> None:
        known = self.calls.get(call.id)
        if known is None or _newer(call.updated_at, known.updated_at):
            self.calls[call.id] = call

    def note(self, stamp: datetime | None) -> None:
        if stamp is not None and (self.newest is None or stamp > self.newest):
            self.newest = stamp


def _newer(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and (b is None or a >= b)


def _unreadable(why: str) -> VapiResponseError:
    return VapiResponseError(
        f"Vapi answered GET /call with a body that is not a list of calls ({why}). This is usually a "
        "proxy or an outage page; the shared poll tries again at its next interval.",
        method="GET",
        path="/call",
    )


async def decode_page(
    body: bytes, wanted: Container[str], stamp_field: str, listing: Listing
) -> list[datetime]:
    """Walk one page: keep the wanted calls in ``listing``; return every element's ``stamp_field``
    (what :meth:`.Window.split` needs when the page is full). Yields to the loop as it goes."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise _unreadable("not UTF-8") from exc
    at = _SPACE.match(text).end()  # type: ignore[union-attr]
    if text[at : at + 1] != "[":
        raise _unreadable("not a JSON array")
    at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    stamps: list[datetime] = []
    slice_end = time.perf_counter() + SLICE_SECONDS
    while text[at : at + 1] != "]":
        try:
            element, at = _DECODER.raw_decode(text, at)
        except ValueError as exc:
            raise _unreadable("cut off or not JSON") from exc
        stamps.append(_take(element, wanted, stamp_field, listing))
        at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
        if text[at : at + 1] == ",":
            at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
        elif text[at : at + 1] != "]":
            raise _unreadable("cut off or not JSON")
        if time.perf_counter() >= slice_end:
            await asyncio.sleep(0)
            slice_end = time.perf_counter() + SLICE_SECONDS
    return stamps


def _take(element: Any, wanted: Container[str], stamp_field: str, listing: Listing) -> datetime:
    if not isinstance(element, dict) or not isinstance(element.get("id"), str):
        raise _unreadable("an element without an id")
    stamp = parse_ts_or_none(element.get(stamp_field))
    if stamp is None:
        raise _unreadable(f"call {element['id']} without {stamp_field}")
    listing.listed += 1
    listing.note(stamp if stamp_field == "updatedAt" else parse_ts_or_none(element.get("updatedAt")))
    is_wanted = element["id"] in wanted
    every_ended = listing.ended and element.get("status") == "ended"
    if not (is_wanted or every_ended):
        return stamp
    if is_wanted:
        listing.ids.add(element["id"])
    if not listing.models or (
        not every_ended and listing.known is not None and listing.known(element["id"], stamp)
    ):
        return stamp
    if element.get("status") != "ended":  # a live call: judged by its header alone
        element = {key: element[key] for key in LIVE_KEYS if key in element}
    try:
        listing.keep(Call.model_validate(element))
    except ValidationError as exc:
        raise _unreadable(f"call {element['id']} is not a call: {exc.error_count()} problem(s)") from None
    return stamp


async def alist_wanted(
    hook: VapiHook,
    filters: Mapping[str, Any],
    wanted: Container[str],
    *,
    models: bool = True,
    known: Callable[[str, datetime], bool] | None = None,
    ended: bool = False,
) -> Listing:
    """Every call matching ``filters`` (``updatedAtGt``, ``createdAtGe`` ...), paged past 1,000, of
    which only those in ``wanted`` are kept, as models (``models=False``: their ids; none either for a
    state the caller says it already holds, by ``known(id, updatedAt)``: ``updatedAt`` windows only). Raises what the
    hook raises, :class:`~.paging.PagingError`, or :class:`~.exceptions.VapiResponseError` for a
    garbage page. ``ended``: every ended call listed is kept too (the call-event watchers' tap)."""
    listing = Listing(models=models, known=known, ended=ended)
    windows = [Window.first({k: v for k, v in filters.items() if v is not None})]
    while windows:
        window = windows.pop()
        body = await hook.alist_calls_page(window.params())
        listing.requests += 1
        stamps = await decode_page(body, wanted, window.field, listing)
        if len(stamps) >= PAGE_MAX:
            windows.extend(window.split(stamps))
    return listing


async def aended_pages(hook: VapiHook, filters: Mapping[str, Any]) -> AsyncIterator[Listing]:
    """The ended calls matching ``filters``, a :class:`Listing` per page as it arrives (a catch-up
    after hours holds one page in memory, not the hours), paged past 1,000 like
    :func:`alist_wanted`. ``newest`` of each page is the newest ``updatedAt`` on it."""
    windows = [Window.first({k: v for k, v in filters.items() if v is not None})]
    while windows:
        window = windows.pop()
        page = Listing(ended=True)
        body = await hook.alist_calls_page(window.params())
        page.requests += 1
        stamps = await decode_page(body, (), window.field, page)
        if len(stamps) >= PAGE_MAX:
            windows.extend(window.split(stamps))
        yield page


__all__ = ["SLICE_SECONDS", "Listing", "aended_pages", "alist_wanted", "decode_page"]
