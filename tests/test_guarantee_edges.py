"""The edges of the retry-safety guarantees that mutation testing (``make mutate``) found untested:
each test pins one rule the tests before it let a mutant break unnoticed."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.once import campaign_key, keyed_name, legacy_marker, marker
from airflow_provider_vapi.campaigns.plan import CAMPAIGN_STATE_KEY, plan_campaign, remember_campaign
from airflow_provider_vapi.exceptions import VapiCreateUnresolvedError, VapiResponseError, VapiStaleTryError
from airflow_provider_vapi.idempotency.create import (
    ANSWERED_SETTLE,
    BATCH_MAX,
    SendOutcome,
    _settle,
    judge_send,
)
from airflow_provider_vapi.idempotency.keys import (
    IDEMPOTENCY_METADATA_KEY,
    call_key,
    carries_key,
    key_of,
    keyed_body,
    redial_key,
)
from airflow_provider_vapi.idempotency.persons import match, person_key, tokens
from airflow_provider_vapi.landing.export import (
    ExportCallsOperator,
    WindowNotSettledError,
    check_settled,
    settles_at,
)
from airflow_provider_vapi.models import Call, CreateCallRequest
from airflow_provider_vapi.placing.place import place_planned, plan_calls
from airflow_provider_vapi.placing.retry import (
    SENT_KEY,
    STATE_KEY,
    TRY_KEY,
    claim_try,
    had_earlier_try,
    may_have_earlier,
    note_sending,
    remember,
    run_began,
    wait_out_earlier_send,
)
from airflow_provider_vapi.wire.skew import CLOCK_SKEW
from tests.conftest import vapi_conn_json

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Store:
    """A task state store: what Airflow 3.3 gives a task instance across its tries."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


#: The create_settle of the tests that must not wait: long enough to tell, short enough that a
#: mutant that waits anyway costs a mutation run little.
SETTLE_NOT_WAITED = 3.0


def _hook(create_settle: float) -> Any:
    return SimpleNamespace(settings=SimpleNamespace(create_settle=create_settle), log=logging.getLogger("t"))


# -- the key of a single call ------------------------------------------------------------------------


def _single(number: str) -> CreateCallRequest:
    return CreateCallRequest.from_payload(
        {"assistantId": "a", "phoneNumberId": "p", "customer": {"number": number}}
    )


def test_a_single_calls_key_names_the_scope_the_person_and_the_dedupe_key() -> None:
    request = _single("+14155550123")
    key = call_key("d/r/t", request)
    assert key == person_key("d/r/t", tokens(request)[0]) and carries_key(key, "d/r/t")
    assert key.startswith("d/r/t|") and "None" not in key
    assert call_key("d/r/t", _single("+14155550199")) != key
    assert call_key("d/r/t", request, dedupe_key="appointment-2") not in (key, None)
    assert call_key("d/r/t", request, "appointment-2") == person_key(
        "d/r/t", tokens(request, "appointment-2")[0]
    )


# -- when the dag run began: where every lookup of an earlier try starts ------------------------------


def test_a_run_began_at_its_earliest_stamp_whichever_it_is() -> None:
    run = SimpleNamespace(
        run_after=T0, logical_date=T0 + timedelta(hours=1), queued_at=T0 - timedelta(days=2), start_date=None
    )
    assert run_began({"dag_run": run}) == T0 - timedelta(days=2)  # type: ignore[typeddict-item]
    run.queued_at = "not a time"
    assert run_began({"dag_run": run}) == T0  # type: ignore[typeddict-item]


def test_a_run_without_stamps_looks_back_one_day() -> None:
    before = datetime.now(UTC)
    began = run_began({"dag_run": None})  # type: ignore[typeddict-item]
    assert before - timedelta(days=1, seconds=5) <= began <= datetime.now(UTC) - timedelta(days=1)


@pytest.mark.parametrize(("try_number", "earlier"), [(1, False), (2, True), (None, False), (0, False)])
def test_only_a_try_after_the_first_had_an_earlier_try(try_number: Any, earlier: bool) -> None:
    assert had_earlier_try({"ti": SimpleNamespace(try_number=try_number)}) is earlier  # type: ignore[typeddict-item]


@pytest.mark.parametrize("name", ["run_after", "logical_date", "execution_date", "queued_at", "start_date"])
def test_each_stamp_of_a_run_counts_when_it_is_the_earliest(name: str) -> None:
    stamps = dict.fromkeys(("run_after", "logical_date", "execution_date", "queued_at", "start_date"), T0)
    run = SimpleNamespace(**{**stamps, name: T0 - timedelta(hours=3)})
    assert run_began({"dag_run": run}) == T0 - timedelta(hours=3)  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("ti", "run", "earlier"),
    [
        (SimpleNamespace(), SimpleNamespace(), False),  # neither number: a fresh run's first try
        (SimpleNamespace(try_number=None), SimpleNamespace(clear_number=None), False),
        (SimpleNamespace(try_number=1), SimpleNamespace(clear_number=1), True),
        (SimpleNamespace(try_number=2), SimpleNamespace(), True),
        (SimpleNamespace(), SimpleNamespace(clear_number=2), True),
    ],
)
def test_what_counts_as_a_run_that_may_have_made_something(ti: Any, run: Any, earlier: bool) -> None:
    assert may_have_earlier({"ti": ti, "dag_run": run}) is earlier  # type: ignore[typeddict-item]
    assert had_earlier_try({"ti": ti}) is (int(getattr(ti, "try_number", 1) or 1) > 1)  # type: ignore[typeddict-item]


def test_a_try_stands_down_before_creating_once_a_later_try_has_started() -> None:
    store = Store()
    claim_try({"ti": SimpleNamespace(try_number=3), "task_state_store": store})  # type: ignore[typeddict-item]
    assert store.values[TRY_KEY] == 3
    with pytest.raises(VapiStaleTryError, match=r"Try 2 .* try 3"):
        note_sending({"ti": SimpleNamespace(try_number=2), "task_state_store": store})  # type: ignore[typeddict-item]
    assert isinstance(store.values[SENT_KEY], float), "its send is noted first: the later try waits it out"
    note_sending({"ti": SimpleNamespace(try_number=3), "task_state_store": store})  # type: ignore[typeddict-item]
    note_sending({"ti": SimpleNamespace(), "task_state_store": Store(**{TRY_KEY: 1})})  # type: ignore[typeddict-item]
    with pytest.raises(VapiStaleTryError):
        note_sending({"ti": SimpleNamespace(), "task_state_store": Store(**{TRY_KEY: 2})})  # type: ignore[typeddict-item]
    note_sending({"ti": SimpleNamespace(try_number=1), "task_state_store": Store(**{TRY_KEY: "2"})})  # type: ignore[typeddict-item]
    claim_try({"ti": SimpleNamespace()})  # type: ignore[typeddict-item]  # no store: nothing to claim
    note_sending({"ti": SimpleNamespace()})  # type: ignore[typeddict-item]


# -- an earlier try's create that may still be in flight ------------------------------------------------


def test_no_earlier_send_in_the_store_means_nothing_to_wait_for() -> None:
    context = {"ti": SimpleNamespace(), "task_state_store": Store()}
    started = time.monotonic()
    assert wait_out_earlier_send(_hook(SETTLE_NOT_WAITED), context) is False  # type: ignore[arg-type]
    assert time.monotonic() - started < 1


def test_an_earlier_send_is_waited_out_until_its_create_can_no_longer_appear() -> None:
    settle = 1.5
    context = {"ti": SimpleNamespace(), "task_state_store": Store(**{SENT_KEY: time.time()})}
    assert wait_out_earlier_send(_hook(settle), context) is True  # type: ignore[arg-type]
    assert time.time() >= context["task_state_store"].values[SENT_KEY] + settle  # type: ignore[attr-defined]


def test_a_send_long_settled_is_not_waited_for() -> None:
    context = {"ti": SimpleNamespace(), "task_state_store": Store(**{SENT_KEY: time.time() - 60})}
    started = time.monotonic()
    assert wait_out_earlier_send(_hook(SETTLE_NOT_WAITED), context) is True  # type: ignore[arg-type]
    assert time.monotonic() - started < 1


def test_without_a_store_the_wait_counts_from_this_tries_start() -> None:
    settle = 1.5
    began = datetime.now(UTC)
    context = {"ti": SimpleNamespace(start_date=began)}
    assert wait_out_earlier_send(_hook(settle), context) is True  # type: ignore[arg-type]
    assert time.time() >= began.timestamp() + settle
    long_ago = {"ti": SimpleNamespace(start_date=began - timedelta(minutes=5))}
    started = time.monotonic()
    assert wait_out_earlier_send(_hook(settle), long_ago) is True  # type: ignore[arg-type]
    assert time.monotonic() - started < 1


def test_what_a_try_sent_and_placed_is_kept_for_the_next_try() -> None:
    store = Store()
    before = time.time()
    note_sending({"task_state_store": store})  # type: ignore[typeddict-item]
    assert before <= store.values[SENT_KEY] <= time.time()
    remember({"task_state_store": store}, [])  # type: ignore[typeddict-item]
    assert STATE_KEY not in store.values, "nothing placed: nothing to remember"
    remember({"task_state_store": store}, ["c1", "c2"])  # type: ignore[typeddict-item]
    assert store.values[STATE_KEY] == ["c1", "c2"]


# -- the export window rule ---------------------------------------------------------------------------


def test_a_window_settles_exactly_the_clock_skew_margin_after_its_end() -> None:
    assert settles_at(T0) == T0 + CLOCK_SKEW == T0 + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("now", "wait"),
    [
        (T0 + timedelta(minutes=30), timedelta(0)),  # settled long ago
        (T0 + CLOCK_SKEW, timedelta(0)),  # settles now
        (T0 + timedelta(minutes=4), timedelta(minutes=6)),  # closed, not settled
        (T0, CLOCK_SKEW),  # closing now
        (T0 - CLOCK_SKEW, 2 * CLOCK_SKEW),  # the furthest future window still waited for
    ],
)
def test_a_window_is_exported_once_settled(now: datetime, wait: timedelta) -> None:
    assert check_settled(T0 - timedelta(hours=1), T0, now) == wait


def test_a_window_ending_more_than_the_margin_ahead_is_refused() -> None:
    with pytest.raises(WindowNotSettledError):
        check_settled(T0 - timedelta(hours=1), T0, T0 - CLOCK_SKEW - timedelta(microseconds=1))


def _export(**kwargs: Any) -> ExportCallsOperator:
    return ExportCallsOperator(task_id="export", path="/tmp/unused", **kwargs)


def test_the_window_is_the_data_interval_unless_given() -> None:
    interval = {"data_interval_start": T0 - timedelta(days=1), "data_interval_end": T0}
    assert _export().window(interval) == (T0 - timedelta(days=1), T0)  # type: ignore[arg-type]
    given = _export(updated_after="2026-01-01T10:00:00Z", updated_before="2026-01-01T11:00:00Z")
    assert given.window(interval) == (T0 - timedelta(hours=2), T0 - timedelta(hours=1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "interval"),
    [
        ({}, (T0, T0)),  # a manual run: an empty data interval
        ({}, (None, T0)),
        ({}, (T0, None)),
        ({"updated_after": "2026-01-01T12:00:00Z", "updated_before": "2026-01-01T12:00:00Z"}, (None, None)),
        ({"updated_after": "2026-01-01T13:00:00Z"}, (T0 - timedelta(days=1), T0)),
    ],
)
def test_an_empty_or_missing_window_is_refused(kwargs: dict[str, Any], interval: tuple[Any, Any]) -> None:
    context = {"data_interval_start": interval[0], "data_interval_end": interval[1]}
    with pytest.raises(AirflowFailException):
        _export(**kwargs).window(context)  # type: ignore[arg-type]


def test_a_window_not_settled_is_waited_for_in_the_worker_until_it_settles() -> None:
    end = datetime.now(UTC) - CLOCK_SKEW + timedelta(seconds=1.5)
    _export(deferrable=False).wait_until_settled(end - timedelta(hours=1), end)
    assert datetime.now(UTC) >= settles_at(end)
    # deferrable: the same wait is the triggerer's, firing when the window settles, into the export
    later = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(TaskDeferred) as deferred:
        _export(deferrable=True).wait_until_settled(later - timedelta(hours=1), later)
    assert deferred.value.trigger.moment == settles_at(later)
    assert deferred.value.method_name == "execute_complete"


# -- placing a task's calls: plan_calls and place_planned against the emulator ------------------------
#
# The task context is a small fake (what the operator reads of it); the hook, the requests and the
# calls are real: every assertion reads the emulator's own records.


#: When the fake dag run began: the lookups of an earlier try's calls start CLOCK_SKEW before it.
RUN_AFTER = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _listed_since(request: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(request["query"]["createdAtGe"].replace("Z", "+00:00"))


def _context(
    store: Store | None = None,
    *,
    try_number: int = 1,
    map_index: int = -1,
    clear_number: int = 0,
    task: str = "t",
) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="d", run_id="r", task_id=task, map_index=map_index, try_number=try_number, start_date=None
    )
    run = SimpleNamespace(run_after=RUN_AFTER, clear_number=clear_number)
    context: dict[str, Any] = {"ti": ti, "dag_run": run}
    if store is not None:
        context["task_state_store"] = store
    return context


def _batch(emu: Any, *numbers: str) -> CreateCallRequest:
    return CreateCallRequest.from_payload(
        {
            "assistantId": emu.assistant_id,
            "phoneNumberId": emu.phone_number_id,
            "customers": [{"number": n} for n in numbers],
        }
    )


def _one(emu: Any, number: str) -> CreateCallRequest:
    return CreateCallRequest.from_payload(
        {
            "assistantId": emu.assistant_id,
            "phoneNumberId": emu.phone_number_id,
            "customer": {"number": number},
        }
    )


def _keys_on_vapi(emu: Any) -> dict[str, str]:
    """The emulator's calls: number -> the idempotency key it echoes."""
    found = {}
    for call in emu.calls():
        meta = (call.get("assistantOverrides") or {}).get("metadata") or {}
        meta = meta or ((call.get("customer") or {}).get("assistantOverrides") or {}).get("metadata") or {}
        found[call["customer"]["number"]] = meta.get(IDEMPOTENCY_METADATA_KEY)
    return found


def _place(hook: Any, context: dict[str, Any], request: CreateCallRequest, **kwargs: Any) -> Any:
    plan = plan_calls(hook, context, request, **kwargs)  # type: ignore[arg-type]
    calls, errors = place_planned(hook, context, plan)  # type: ignore[arg-type]
    return plan, calls, errors


@pytest.fixture
def hook(vapi_conn: str) -> Any:
    from airflow_provider_vapi.hooks import VapiHook

    return VapiHook(vapi_conn)


def test_a_fresh_runs_first_try_places_every_person_without_looking(hook: Any, vapi_emulator: Any) -> None:
    emu, store = vapi_emulator, Store()
    request = _batch(emu, "+15552001000", "+15552002000")
    plan, calls, errors = _place(hook, _context(store), request)
    assert emu.requests(method="GET", path="/call") == [], "a fresh run's first try lists nothing"
    assert plan.batch and not plan.mapped and plan.earlier.found == {} and plan.to_place() == [0, 1]
    assert errors == [] and [c.customer["number"] for c in calls] == ["+15552001000", "+15552002000"]
    assert _keys_on_vapi(emu) == {
        "+15552001000": person_key("d/r/t", tokens(request)[0]),
        "+15552002000": person_key("d/r/t", tokens(request)[1]),
    }
    assert isinstance(store.values[SENT_KEY], float) and store.values[TRY_KEY] == 1
    assert len(emu.requests(method="POST", path="/call")) == 1


def test_a_retry_reattaches_to_the_calls_its_earlier_try_saved_without_listing(
    hook: Any, vapi_emulator: Any
) -> None:
    emu, store = vapi_emulator, Store()
    request = _batch(emu, "+15552003000", "+15552004000")
    _, first, _ = _place(hook, _context(store), request)
    remember({"task_state_store": store}, [c.id for c in first])  # type: ignore[typeddict-item]
    emu.clear_requests()
    plan, again, errors = _place(hook, _context(store, try_number=2), request)
    assert [c.id for c in again] == [c.id for c in first] and errors == []
    assert plan.to_place() == [] and [c.id for c in plan.reused()] == [c.id for c in first]
    assert emu.requests(method="GET", path="/call") == [], "the store had them all: no listing"
    assert emu.requests(method="POST", path="/call") == []
    assert store.values[TRY_KEY] == 2


def test_a_retry_with_a_changed_list_calls_only_the_new_person_and_reports_who_left(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    _, first, _ = _place(hook, _context(Store()), _batch(emu, "+15552005000", "+15552006000"))
    emu.clear_requests()
    store = Store(**{STATE_KEY: [first[0].id]})  # saved before the try died: not every person
    changed = _batch(emu, "+15552007000", "+15552005000")
    plan, calls, errors = _place(hook, _context(store, try_number=2), changed)
    (listing,) = emu.requests(method="GET", path="/call")
    assert _listed_since(listing) == RUN_AFTER - CLOCK_SKEW, "from when the dag run began, less the skew"
    assert listing["query"]["assistantId"] == emu.assistant_id
    assert listing["query"]["phoneNumberId"] == emu.phone_number_id
    assert [c.id for c in plan.left()] == [first[1].id], "the person no longer listed is reported"
    assert plan.to_place() == [0] and [c.id for c in plan.reused()] == [first[0].id]
    assert errors == [] and calls[1].id == first[0].id and calls[0].customer["number"] == "+15552007000"
    (post,) = emu.requests(method="POST", path="/call")
    assert [c["number"] for c in post["body"]["customers"]] == ["+15552007000"]
    assert len(emu.calls()) == 3
    mapped = plan_calls(hook, _context(Store(), try_number=2, map_index=0), changed)  # type: ignore[arg-type]
    assert mapped.mapped and mapped.left() == [], "a mapped instance sees only its own part of the list"


def test_a_cleared_runs_first_try_looks_and_a_single_call_is_found_by_its_person(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    request = _one(emu, "+15552008000")
    plan, (call,), _ = _place(hook, _context(), request)
    assert not plan.batch and plan.left() == []
    assert _keys_on_vapi(emu) == {"+15552008000": call_key("d/r/t", request)}
    again, (same,), errors = _place(hook, _context(clear_number=1), request)
    assert same.id == call.id and errors == [] and again.reused()[0].id == call.id
    assert len(emu.calls()) == 1 and len(emu.requests(method="POST", path="/call")) == 1
    _, (other,), _ = _place(hook, _context(clear_number=1, task="u"), request)
    assert other.id != call.id, "another task's call is not this task's"


def _ended(emu: Any, call_id: str) -> None:
    deadline = time.monotonic() + 30
    while emu.call(call_id).get("status") != "ended":
        assert time.monotonic() < deadline, f"call {call_id} did not end"
        time.sleep(0.05)


def test_redial_on_retry_dials_again_only_the_persons_never_reached(hook: Any, vapi_emulator: Any) -> None:
    emu = vapi_emulator
    busy, talked = "+15552010001", "+15552011000"
    request = _batch(emu, busy, talked)
    _, first, _ = _place(hook, _context(), request)
    for call in first:
        if call.customer["number"] == talked:
            emu.end_call(call.id)
        _ended(emu, call.id)
    plain = plan_calls(hook, _context(try_number=3), request)  # type: ignore[arg-type]
    assert plain.redials == {} and plain.to_place() == [], "without redial_on_retry nobody is dialled again"
    plan, calls, _ = _place(hook, _context(try_number=3), request, redial_on_retry=True)
    busy_key = person_key("d/r/t", tokens(request)[0])
    assert plan.redials == {busy_key: redial_key(busy_key, 3)}
    assert [c.id for c in plan.reused()] == [first[1].id] and plan.to_place() == [0]
    assert calls[1].id == first[1].id and calls[0].id not in {c.id for c in first}
    assert _keys_on_vapi(emu)[busy] == redial_key(busy_key, 3)
    assert len(emu.calls()) == 3


def test_a_retry_waits_out_its_dead_earlier_tries_create_and_finds_its_call(
    hook: Any, vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = vapi_emulator
    request = _one(emu, "+15552012000")
    emu.fault("late:0.6", method="POST", path="/call", times=1)  # create_settle_seconds=1
    store = Store()
    note_sending({"task_state_store": store, "ti": SimpleNamespace(try_number=1)})  # type: ignore[typeddict-item]
    body = keyed_body(request, call_key("d/r/t", request))
    with pytest.raises(httpx.TimeoutException), emu.client(timeout=0.2) as http:
        http.post("/call", json=body)
    plan, (call,), _ = _place(hook, _context(store, try_number=2), request)
    assert len(emu.requests(method="GET", path="/call")) == 2, "looked, waited, looked again"
    assert len(emu.requests(method="POST", path="/call")) == 1 and [call.id] == [c["id"] for c in emu.calls()]
    assert plan.to_place() == []


# -- a task's campaign: plan_campaign and the create, against the emulator ----------------------------


def _campaign_body(emu: Any, *numbers: str) -> dict[str, Any]:
    return {
        "name": "Reminders",
        "assistantId": emu.assistant_id,
        "phoneNumberId": emu.phone_number_id,
        "customers": [{"number": n} for n in numbers],
    }


def test_a_fresh_campaign_task_looks_for_nothing(hook: Any, vapi_emulator: Any) -> None:
    store = Store()
    context = _context(store)
    plan = plan_campaign(hook, context, campaign_key(context))  # type: ignore[arg-type]
    assert plan.own is None and plan.others == [] and plan.called == set()
    assert vapi_emulator.requests(method="GET", path="/v2/campaign*") == []
    assert store.values[TRY_KEY] == 1
    remember_campaign(context, "c-1")  # type: ignore[arg-type]
    assert store.values[CAMPAIGN_STATE_KEY] == "c-1"
    remember_campaign(_context(), "c-2")  # type: ignore[arg-type]  # no store: nothing to keep


def test_a_retried_campaign_task_reattaches_and_leaves_out_the_persons_of_its_other_campaigns(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    mine, other = _context(map_index=0, try_number=2), _context(map_index=1)
    made = CampaignApi(hook).create(_campaign_body(emu, "+15553001000"), campaign_key(mine))
    theirs = CampaignApi(hook).create(_campaign_body(emu, "+15553002000", "+15553003000"), campaign_key(other))
    CampaignApi(hook).create(_campaign_body(emu, "+15553004000"), "d/r/elsewhere")
    assert made.name == f"Reminders {marker('d/r/t#0')}"
    plan = plan_campaign(hook, mine, campaign_key(mine))  # type: ignore[arg-type]
    assert plan.own is not None and plan.own.id == made.id
    assert [c.id for c in plan.others] == [theirs.id]
    fresh, taken = plan.new_customers(["+15553001000", {"number": "+1 555 300 2000"}, "+15553004000"])
    assert fresh == ["+15553001000", "+15553004000"] and taken == [{"number": "+1 555 300 2000"}]
    (listing, *_) = emu.requests(method="GET", path="/v2/campaign")
    assert _listed_since(listing) == RUN_AFTER - CLOCK_SKEW
    stored = Store(**{CAMPAIGN_STATE_KEY: theirs.id})
    by_store = plan_campaign(hook, _context(stored, map_index=0, try_number=2), "d/r/t#0")  # type: ignore[arg-type]
    assert by_store.own is not None and by_store.own.id == theirs.id, "the store's id wins"
    assert [c.id for c in by_store.others] == [made.id]


def test_a_cleared_campaign_task_finds_its_campaign_tagged_before_the_person_rule(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    context = _context(clear_number=1, map_index=2)
    legacy = legacy_marker(context)  # type: ignore[arg-type]
    with emu.client() as http:
        old = http.post("/v2/campaign", json={**_campaign_body(emu, "+15553005000"), "name": f"R {legacy}"})
    plan = plan_campaign(hook, context, campaign_key(context))  # type: ignore[arg-type]
    assert plan.own is not None and plan.own.id == old.json()["id"] and plan.others == []
    first = CampaignApi(hook).create(_campaign_body(emu, "+15553006000"), campaign_key(context))
    again = plan_campaign(hook, context, campaign_key(context))  # type: ignore[arg-type]
    assert again.own is not None and again.own.id == first.id, "the person rule's tag, not the old one"
    twice = CampaignApi(hook).create(_campaign_body(emu, "+15553007000"), campaign_key(context))
    assert twice.id != first.id
    several = plan_campaign(hook, context, campaign_key(context))  # type: ignore[arg-type]
    assert several.own is not None and several.own.id == first.id, "several: the oldest"
    assert [c.id for c in several.others] == [twice.id]


def test_a_retried_campaign_task_waits_out_its_dead_earlier_tries_create(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    store = Store()
    note_sending({"task_state_store": store, "ti": SimpleNamespace(try_number=1)})  # type: ignore[typeddict-item]
    emu.fault("late:0.6", method="POST", path="/v2/campaign", times=1)  # create_settle_seconds=1
    body = {**_campaign_body(emu, "+15553008000"), "name": keyed_name("Reminders", "d/r/t")}
    with pytest.raises(httpx.TimeoutException), emu.client(timeout=0.2) as http:
        http.post("/v2/campaign", json=body)
    context = _context(store, try_number=2)
    plan = plan_campaign(hook, context, campaign_key(context))  # type: ignore[arg-type]
    (made,) = emu.campaigns()
    assert plan.own is not None and plan.own.id == made["id"]
    assert plan.others == [] and plan.called == set()


def test_a_create_made_after_the_client_gave_up_is_looked_for_until_it_appears(
    vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_vapi.hooks import VapiHook

    emu = vapi_emulator
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_LATE",
        vapi_conn_json(emu.url, emu.api_key, timeout=1, retry_max_wait=0.2, create_settle_seconds=6),
    )
    emu.fault("late:2", method="POST", path="/call", times=1)
    call = VapiHook("vapi_late").create_call(_one(emu, "+15552013000"), idempotency_key="late-1")
    assert len(emu.requests(method="POST", path="/call")) == 1, "never sent again"
    assert [c["id"] for c in emu.calls()] == [call.id]  # type: ignore[union-attr]
    assert len(emu.requests(method="GET", path="/call")) >= 2, "looked again until it appeared"


# -- what an answer to a create says about whether it took effect -------------------------------------


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (httpx.Response(201), SendOutcome.CREATED),
        (httpx.Response(200), SendOutcome.CREATED),
        (httpx.Response(429), SendOutcome.REFUSED),
        (httpx.Response(500), SendOutcome.ANSWERED),
        (httpx.Response(503), SendOutcome.ANSWERED),
        (httpx.Response(400), SendOutcome.ANSWERED),
        (httpx.Response(502), SendOutcome.IN_FLIGHT),
        (httpx.Response(504), SendOutcome.IN_FLIGHT),
        (httpx.ConnectError("refused"), SendOutcome.REFUSED),
        (httpx.ConnectTimeout("no connection"), SendOutcome.REFUSED),
        (httpx.PoolTimeout("no connection"), SendOutcome.REFUSED),
        (httpx.ReadTimeout("sent, no answer"), SendOutcome.IN_FLIGHT),
        (httpx.RemoteProtocolError("dropped"), SendOutcome.IN_FLIGHT),
    ],
)
def test_each_answer_to_a_create_is_judged(reply: Any, outcome: SendOutcome) -> None:
    assert judge_send(reply) is outcome


def test_a_create_may_appear_until_the_settle_time_or_a_second_after_vapis_own_error() -> None:
    assert ANSWERED_SETTLE == 1.0 and BATCH_MAX == 500
    assert _settle(120.0, SendOutcome.ANSWERED) == 1.0
    assert _settle(0.5, SendOutcome.ANSWERED) == 0.5
    assert _settle(120.0, SendOutcome.IN_FLIGHT) == _settle(120.0, SendOutcome.CREATED) == 120.0


def test_the_tag_before_the_person_rule_of_an_unmapped_task_names_map_index_minus_one() -> None:
    bare = {"ti": SimpleNamespace(dag_id="d", run_id="r", task_id="t")}
    unmapped = {"ti": SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)}
    assert legacy_marker(bare) == legacy_marker(unmapped) == marker("d/r/t/-1")  # type: ignore[arg-type]


def test_a_stored_campaign_id_that_is_not_an_id_is_ignored(hook: Any, vapi_emulator: Any) -> None:
    emu = vapi_emulator
    context = _context(Store(**{CAMPAIGN_STATE_KEY: 42}), try_number=2)
    made = CampaignApi(hook).create(_campaign_body(emu, "+15553009000"), campaign_key(context))
    plan = plan_campaign(hook, context, campaign_key(context))  # type: ignore[arg-type]
    assert plan.own is not None and plan.own.id == made.id, "found by its tag"


def test_a_create_answered_2xx_unreadably_whose_call_is_never_listed_fails_without_resending(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    emu.faults(["garbage:html"], method="POST", path="/call")

    def vanish() -> None:  # the call made, then gone before any listing can show it
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if made := emu.calls():
                with emu.client() as http:
                    http.delete(f"/call/{made[0]['id']}").raise_for_status()
                return
            time.sleep(0.01)

    emu.faults(["delay:1"], method="GET", path="/call", query={"createdAtGe": "*"})
    deleter = threading.Thread(target=vanish)
    deleter.start()
    try:
        with pytest.raises(VapiResponseError) as failed:
            hook.create_call(_one(emu, "+15552014000"), idempotency_key="unreadable")
    finally:
        deleter.join()
    assert not isinstance(failed.value, VapiCreateUnresolvedError)
    assert isinstance(failed.value.__cause__, VapiResponseError)
    assert failed.value.status_code == failed.value.__cause__.status_code == 201
    assert (failed.value.method, failed.value.path) == ("POST", "/call")
    assert "not sending it again" in str(failed.value), "the error says why nothing was resent"
    assert len(emu.requests(method="POST", path="/call")) == 1, "made: never sent again"


def test_a_task_instance_without_a_map_index_is_unmapped() -> None:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", try_number=1)
    assert campaign_key({"ti": ti}) == "d/r/t"  # type: ignore[arg-type]
    assert plan_calls(None, {"ti": ti}, _single("+15552015000")).mapped is False  # type: ignore[arg-type]


def test_a_stored_state_that_is_not_a_list_of_ids_is_ignored(hook: Any, vapi_emulator: Any) -> None:
    emu = vapi_emulator
    request = _one(emu, "+15552016000")
    _, (call,), _ = _place(hook, _context(), request)
    plan = plan_calls(hook, _context(Store(**{STATE_KEY: "not-a-list"}), try_number=2), request)  # type: ignore[arg-type]
    assert [c.id for c in plan.reused()] == [call.id], "found on Vapi by its key"


def test_a_dedupe_key_makes_its_own_person_across_tries_and_calls_placed_before_the_person_rule(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    request = _one(emu, "+15552017000")
    _, (call,), _ = _place(hook, _context(), request, dedupe_key="appointment-2")
    assert _keys_on_vapi(emu) == {"+15552017000": call_key("d/r/t", request, "appointment-2")}
    # a call placed by a provider version before the person rule: the map index in its key
    old = hook.create_call(_one(emu, "+15552018000"), idempotency_key="d/r/t/0")
    older = _one(emu, "+15552018000")
    emu.clear_requests()
    by_store = plan_calls(  # type: ignore[arg-type]
        hook, _context(Store(**{STATE_KEY: [old.id]}), try_number=2), older, dedupe_key="appointment-2"
    )
    assert [c.id for c in by_store.reused()] == [old.id]
    assert emu.requests(method="GET", path="/call") == [], "the store had it: no listing"
    on_vapi = plan_calls(hook, _context(Store(), try_number=2), older, dedupe_key="appointment-2")  # type: ignore[arg-type]
    assert [c.id for c in on_vapi.reused()] == [old.id], "found on Vapi by its customer"
    assert call.id not in [c.id for c in on_vapi.reused()]


def test_a_retry_waits_out_a_create_in_flight_placed_under_the_key_before_the_person_rule(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    request = _one(emu, "+15552019000")
    emu.fault("late:0.6", method="POST", path="/call", times=1)  # create_settle_seconds=1
    store = Store()
    note_sending({"task_state_store": store, "ti": SimpleNamespace(try_number=1)})  # type: ignore[typeddict-item]
    with pytest.raises(httpx.TimeoutException), emu.client(timeout=0.2) as http:
        http.post("/call", json=keyed_body(request, "d/r/t/-1"))
    plan = plan_calls(hook, _context(store, try_number=2), request, dedupe_key="appointment-2")  # type: ignore[arg-type]
    assert [c.id for c in plan.reused()] == [c["id"] for c in emu.calls()] and plan.to_place() == []


def test_a_retried_task_instance_without_a_campaign_of_its_own_knows_the_persons_of_all_the_others(
    hook: Any, vapi_emulator: Any
) -> None:
    emu = vapi_emulator
    one = CampaignApi(hook).create(_campaign_body(emu, "+15553010000"), "d/r/t#1")
    two = CampaignApi(hook).create(_campaign_body(emu, "+15553011000"), "d/r/t#2")
    context = _context(Store(), map_index=0, try_number=2)
    plan = plan_campaign(hook, context, campaign_key(context))  # type: ignore[arg-type]
    assert plan.own is None and [c.id for c in plan.others] == [one.id, two.id]
    fresh, taken = plan.new_customers(["+15553010000", "+15553011000", "+15553012000"])
    assert taken == ["+15553010000", "+15553011000"] and fresh == ["+15553012000"]


# -- matching the calls of a scope to this try's persons ----------------------------------------------


def _keyed_call(call_id: str, key: str, **fields: Any) -> Call:
    return Call.model_validate(
        {"id": call_id, "assistantOverrides": {"metadata": {IDEMPOTENCY_METADATA_KEY: key}}, **fields}
    )


def test_calls_before_the_person_rule_are_matched_by_saved_customer_and_by_each_listing() -> None:
    saved = CreateCallRequest.from_payload({"assistantId": "a", "phoneNumberId": "p", "customerId": "cust-1"})
    (key,) = (person_key("d/r/t", t) for t in tokens(saved))
    found = match([_keyed_call("1", "d/r/t/0", customerId="cust-1")], "d/r/t", [key], key_of)
    assert {k: c.id for k, c in found.found.items()} == {key: "1"}, "the saved customer is the person"
    thrice = CreateCallRequest.from_payload(
        {"assistantId": "a", "phoneNumberId": "p", "customers": [{"number": "+14155550101"}] * 3}
    )
    keys = [person_key("d/r/t", t) for t in tokens(thrice)]
    calls = [_keyed_call(str(i), f"d/r/t/-1:{i}", customer={"number": "+14155550101"}) for i in range(3)]
    found = match(calls, "d/r/t", keys, key_of)
    assert {k: c.id for k, c in found.found.items()} == dict(zip(keys, ["0", "1", "2"], strict=True))


def test_a_call_of_another_scope_is_skipped_not_the_end_of_the_matching() -> None:
    request = _single("+14155550101")
    (key,) = (person_key("d/r/t", t) for t in tokens(request))
    calls = [_keyed_call("x", "other/r/t|abc"), _keyed_call("1", key)]
    found = match(calls, "d/r/t", [key], key_of)
    assert {k: c.id for k, c in found.found.items()} == {key: "1"} and found.left == []


def test_a_try_without_a_number_is_try_one_and_a_store_less_wait_without_a_start_counts_from_now() -> None:
    store = Store()
    claim_try({"ti": SimpleNamespace(), "task_state_store": store})  # type: ignore[typeddict-item]
    assert store.values[TRY_KEY] == 1
    claim_try({"ti": SimpleNamespace(try_number=None), "task_state_store": store})  # type: ignore[typeddict-item]
    assert store.values[TRY_KEY] == 1
    started = time.time()
    assert wait_out_earlier_send(_hook(0.5), {"ti": SimpleNamespace()}) is True  # type: ignore[arg-type]
    assert time.time() >= started + 0.5
