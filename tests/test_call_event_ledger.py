"""The call-event ledger's rules, one by one (no server: the ledger is pure bookkeeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow_provider_vapi.call_events.ledger import LATE_ENDING, Ledger
from airflow_provider_vapi.models import Call

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def call(cid: str, ended_s: float, updated_s: float | None = None) -> Call:
    return Call(
        id=cid,
        status="ended",
        ended_at=T0 + timedelta(seconds=ended_s),
        updated_at=T0 + timedelta(seconds=updated_s if updated_s is not None else ended_s),
    )


def placed(mark_s: float = 0) -> Ledger:
    ledger = Ledger()
    ledger.place(T0 + timedelta(seconds=mark_s))
    return ledger


def test_nothing_is_sent_before_the_first_look_placed_the_mark():
    assert Ledger().judge(call("a", 10), settled=True) == "behind"


def test_a_call_is_sent_once_and_stored_ids_survive_a_reload():
    ledger = placed()
    assert ledger.judge(call("a", 10), settled=True) == "send"
    assert ledger.judge(call("a", 10, 20), settled=True) == "known", "a later update is the same call"
    ledger.stored(["a"])
    again = Ledger.from_state([ledger.state()])
    assert again.judge(call("a", 10, 99), settled=True) == "known"
    assert again.judge(call("b", 11), settled=True) == "send"


def test_a_call_that_ended_at_or_before_the_mark_is_never_sent():
    ledger = placed(100)
    assert ledger.judge(call("a", 100), settled=True) == "behind"
    assert ledger.judge(call("b", 100.001), settled=True) == "send"


def test_the_mark_trails_the_feed_by_the_late_ending_margin_and_is_held_by_what_is_open():
    ledger = placed()
    ledger.fed(T0 + LATE_ENDING + timedelta(seconds=60))
    ledger.judge(call("sent", 30), settled=True)
    ledger.judge(call("waiting", 20), settled=False)
    assert ledger.advance()
    assert ledger.mark is not None and ledger.mark < T0 + timedelta(seconds=20), "held by the waiting call"
    ledger.judge(call("waiting", 20, 25), settled=True)
    ledger.stored(["waiting"])
    ledger.advance()
    assert ledger.mark is not None and ledger.mark < T0 + timedelta(seconds=30), "held by the unstored one"
    ledger.stored(["sent"])
    ledger.advance()
    assert ledger.mark == T0 + timedelta(seconds=60), "the feed point minus the margin"
    assert ledger.done == {}, "ids behind the mark are dropped from the stored state"


def test_an_event_airflow_did_not_store_is_sent_again():
    ledger = placed()
    ledger.judge(call("a", 10), settled=True)
    ledger.unsent(["a"])
    assert "a" in ledger.waiting and ledger.judge(call("a", 10), settled=True) == "send"


def test_two_assets_merge_to_the_earliest_mark_and_every_stored_id():
    one = {"version": 1, "mark": "2026-12-01T12:00:10.000Z", "done": {"a": "2026-12-01T12:00:11.000Z"}}
    two = {"version": 1, "mark": "2026-12-01T12:00:05.000Z", "done": {"b": "2026-12-01T12:00:06.000Z"}}
    ledger = Ledger.from_state([one, two, None, {"version": 99}])
    assert ledger.mark == T0 + timedelta(seconds=5) and set(ledger.done) == {"a", "b"}


def test_an_unknown_stored_state_starts_a_first_run():
    assert Ledger.from_state([{"version": 2, "mark": "x"}, "garbage"]).mark is None  # type: ignore[list-item]


def test_a_call_sent_but_not_recorded_before_a_restart_is_sent_again_flagged():
    ledger = placed()
    ledger.judge(call("a", 10), settled=True)
    ledger.judge(call("b", 11), settled=True)
    ledger.stored(["b"])
    state = ledger.state()  # written before "a" left: it is in "sending"
    assert set(state["sending"]) == {"a"} and set(state["done"]) == {"b"}
    again = Ledger.from_state([state])
    assert again.judge(call("b", 11), settled=True) == "known"
    assert again.judge(call("a", 10), settled=True) == "send" and again.maybe_delivered("a")
    again.stored(["a"])
    assert not again.maybe_delivered("a") and set(again.state()["sending"]) == set()
