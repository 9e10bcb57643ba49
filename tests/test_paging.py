"""Time-window paging of GET /call is complete whatever order the server answers in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_vapi.wire.paging import PAGE_MAX, PagingError, Window, iso, parse_ts


def _serve(
    calls: list[dict[str, str]], params: dict[str, str], shuffle: random.Random
) -> list[dict[str, str]]:
    """A stand-in for Vapi's filter semantics, answering in an arbitrary order."""
    ops = {
        "Gt": lambda a, b: a > b,
        "Ge": lambda a, b: a >= b,
        "Lt": lambda a, b: a < b,
        "Le": lambda a, b: a <= b,
    }
    out = []
    for call in calls:
        ok = True
        for key, value in params.items():
            for field in ("createdAt", "updatedAt"):
                if key.startswith(field) and key[len(field) :] in ops:
                    ok &= ops[key[len(field) :]](parse_ts(call[field]), parse_ts(value))
        if ok:
            out.append(call)
    shuffle.shuffle(out)
    return out[: int(params["limit"])]


def _page_all(calls: list[dict[str, str]], filters: dict[str, str], seed: int) -> tuple[set[str], int]:
    rng = random.Random(seed)
    seen: set[str] = set()
    windows = [Window.first(filters)]
    requests = 0
    while windows:
        window = windows.pop()
        page = _serve(calls, window.params(), rng)
        requests += 1
        seen.update(c["id"] for c in page)
        if len(page) >= PAGE_MAX:
            windows.extend(window.split([parse_ts(c[window.field]) for c in page]))
    return seen, requests


def _calls(n: int, spread_s: float, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    calls = []
    for i in range(n):
        created = start + timedelta(seconds=rng.uniform(0, spread_s))
        calls.append(
            {
                "id": f"c{i}",
                "createdAt": iso(created),
                "updatedAt": iso(created + timedelta(seconds=rng.uniform(0, 60))),
            }
        )
    return calls


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_call_is_found_past_a_full_page(seed: int) -> None:
    calls = _calls(3500, spread_s=3600, seed=seed)
    seen, requests = _page_all(calls, {}, seed)
    assert seen == {c["id"] for c in calls}
    assert requests < 40


def test_user_bounds_are_kept_and_narrowed_not_widened() -> None:
    calls = _calls(2500, spread_s=600, seed=7)
    lower = iso(datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    seen, _ = _page_all(calls, {"updatedAtGt": lower}, seed=7)
    expected = {c["id"] for c in calls if parse_ts(c["updatedAt"]) > parse_ts(lower)}
    assert seen == expected


def test_window_params_combine_with_user_filters() -> None:
    low = datetime(2026, 1, 1, tzinfo=UTC)
    window = Window("createdAt", {"createdAtGe": "2026-06-01T00:00:00.000Z", "assistantId": "a"}, low, None)
    params = window.params()
    assert params["createdAtGe"] == "2026-06-01T00:00:00.000Z"  # the user's tighter bound wins
    assert params["assistantId"] == "a" and params["limit"] == PAGE_MAX


def test_too_many_calls_in_one_millisecond_is_a_clear_error() -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    window = Window("createdAt", {}, stamp, stamp + timedelta(milliseconds=1))
    with pytest.raises(PagingError, match="Narrow the filters"):
        window.split([stamp] * PAGE_MAX)
