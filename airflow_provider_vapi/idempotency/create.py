"""The create that never dials twice: judged, and looked for before it is resent (:func:`send_once_op`,
used by ``POST /call`` here and ``POST /v2/campaign`` in :mod:`airflow_provider_vapi.campaigns.once`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import httpx

from airflow_provider_vapi.exceptions import VapiCreateUnresolvedError, VapiError, VapiResponseError
from airflow_provider_vapi.models import (
    Call,
    CallBatchError,
    CallBatchResponse,
    CreateCallRequest,
)
from airflow_provider_vapi.wire.paging import PAGE_MAX
from airflow_provider_vapi.wire.retries import is_retryable_status
from airflow_provider_vapi.wire.skew import looking_back
from airflow_provider_vapi.wire.transport import (
    Attempts,
    Log,
    Op,
    Reply,
    Send,
    Sleep,
    decode_json,
    describe,
    raise_for,
    validate,
)

if TYPE_CHECKING:
    from airflow_provider_vapi.wire.connection import ConnectionSettings

from airflow_provider_vapi.idempotency.keys import (
    batch_key,
    carries_key,
    key_of,
    keyed_body,
    narrowing,
    person_of,
    same_person,
)
from airflow_provider_vapi.idempotency.persons import tokens

T = TypeVar("T")
F = TypeVar("F")


class CallsApi(Protocol):
    """What the create needs of the hook (:class:`~airflow_provider_vapi.hook.core.VapiHook` is one):
    its connection, its log, and ``GET /call`` as an operation. A protocol, so that this package
    stays under the hook that uses it (``ARCHITECTURE.md``)."""

    vapi_conn_id: str

    @property
    def log(self) -> Log: ...

    @property
    def settings(self) -> ConnectionSettings: ...

    def _list_calls_op(self, limit: int | None, filters: Mapping[str, Any]) -> Op[list[Call]]: ...


#: The most customers one ``POST /call`` carries. A lost answer is resolved by listing, and a listing
#: pages by ``createdAt`` (:mod:`airflow_provider_vapi.wire.paging`): it cannot page past a full page
#: (``PAGE_MAX``, 1,000) of calls stamped in one millisecond, as one batch's calls may be. Half a
#: page leaves room for a second batch (another task, same assistant) stamped in the same millisecond.
BATCH_MAX: Final = PAGE_MAX // 2
#: After Vapi's own error answer (500, 503) its processing is over: a call it made anyway is listed
#: at once, give or take a replica's lag.
ANSWERED_SETTLE: Final = 1.0


def find_op(
    hook: CallsApi,
    key: str,
    since: datetime,
    filters: Mapping[str, Any],
    request: CreateCallRequest | None = None,
) -> Op[list[Call]]:
    """The calls created since ``since`` that carry ``key`` (and, given ``request``, went to its
    customers), oldest first."""
    calls = yield from hook._list_calls_op(None, {**filters, "createdAtGe": since})
    found = [c for c in calls if carries_key(key_of(c), key)]
    if request is not None:
        others = [c for c in found if not same_person(c, request)]
        if others:
            hook.log.warning(
                "Not reusing call(s) %s: they carry this task's key but went to other customers "
                "(the input changed since they were placed).",
                [c.id for c in others],
            )
        found = [c for c in found if c not in others]
    return sorted(found, key=lambda c: c.created_at or since)


class SendOutcome(Enum):
    """What an answer to a request that must not be sent twice (``POST /call``, a structured
    output run) says about whether it took effect."""

    REFUSED = "refused"  #: nothing was created (429, the connection never opened): send again
    ANSWERED = "answered"  #: Vapi finished with an error (500, 503): a call made is listed soon
    IN_FLIGHT = "in flight"  #: no answer, or a gateway's (timeout, dropped, 502, 504): may still come
    CREATED = "created"  #: 2xx, but its body cannot be read: the call exists


def judge_send(reply: Reply) -> SendOutcome:
    """Whether the request took effect, as far as its answer (or its failure) tells."""
    if isinstance(reply, httpx.Response):
        if reply.is_success:
            return SendOutcome.CREATED
        if reply.status_code == 429:
            return SendOutcome.REFUSED
        return SendOutcome.IN_FLIGHT if reply.status_code in (502, 504) else SendOutcome.ANSWERED
    if isinstance(reply, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return SendOutcome.REFUSED
    return SendOutcome.IN_FLIGHT


def look_until(
    hook: CallsApi, find: Callable[[], Op[list[F]]], until: float, what: str, tag: str
) -> Op[list[F]]:
    """Look (``find``) for what a create made until found, or until a listing that began after
    ``until`` (``time.monotonic()``) found nothing: only then can the create no longer make it.
    ``what`` ("call", "campaign") and ``tag`` (its key as the user can search for it) word the logs."""
    pause = 0.25
    while True:
        began = time.monotonic()
        try:
            found = yield from find()
        except VapiError as exc:
            raise VapiCreateUnresolvedError(
                f"Creating the Vapi {what} got no clear answer, and Vapi could not be asked whether "
                f"it made the {what} ({exc}). Not sending it again: that could call people twice. "
                f"A retry of the task looks for it by its key ({tag}) first."
            ) from exc
        if found or began >= until:
            return found
        hook.log.info(
            "No %s with key %s yet; Vapi may still be creating it. Looking again for up to %.0fs "
            "before daring to send it again.",
            what,
            tag,
            until - began,
        )
        yield Sleep(min(pause, max(0.0, until - time.monotonic()) + 0.001))
        pause = min(pause * 2, 5.0)


def _result(
    request: CreateCallRequest, key: str, people: Sequence[str], calls: list[Call]
) -> Call | CallBatchResponse:
    """What the create returns when its calls were found instead of read from the answer.

    A batch's answer also listed the customers Vapi refused; it was lost, so every customer whose
    call is not found is reported as an error (refused, or never created), never left out.
    """
    if not request.customers:
        return calls[-1]
    placed = {key_of(c) for c in calls} | {person_of(c.customer) for c in calls}
    errors = [
        CallBatchError(
            customer=customer,
            error="no call was found for this customer after Vapi's answer to the batch was lost: "
            "Vapi refused it (the reason was in that answer) or never created it. Not sent again "
            "by this try, so that nobody is called twice; a retry of the task asks Vapi again.",
        )
        for customer, person_token in zip(request.to_wire()["customers"], people, strict=True)
        if batch_key(key, person_token) not in placed and person_of(customer) not in placed
    ]
    return CallBatchResponse(results=calls, errors=errors)


def send_once_op(
    hook: CallsApi,
    step: Send,
    *,
    read: Callable[[httpx.Response], T],
    look: Callable[[float], Op[T | None]],
    what: str,
    tag: str,
) -> Op[T]:
    """Send a create that must not take effect twice (``POST /call``, ``POST /v2/campaign``).

    Each answer is judged (:class:`SendOutcome`): a *refused* one (429, no connection) is sent again
    after a back-off; any other may have made it, so ``look(until)`` looks for it by its key until
    the create can no longer produce it (:func:`_settle`). Only when nothing has appeared by then is
    it sent again; a 2xx whose body ``read`` cannot read made it: that one is only looked for.
    """
    settings = hook.settings
    attempts = Attempts(settings.policy)
    while True:
        sent = time.monotonic()
        reply = yield step
        verdict = judge_send(reply)
        unreadable: VapiResponseError | None = None
        if verdict is SendOutcome.CREATED:
            assert isinstance(reply, httpx.Response)
            try:
                return read(reply)
            except VapiResponseError as exc:
                unreadable = exc
        elif verdict is SendOutcome.ANSWERED and not is_retryable_status(reply.status_code):  # type: ignore[union-attr]
            raise_for(step, reply, hook.vapi_conn_id)
        delay = attempts.next_delay(reply)
        replied = time.monotonic()
        if verdict is not SendOutcome.REFUSED:
            settle = _settle(settings.create_settle, verdict)
            found = yield from look(sent + settle)
            if found is not None:
                hook.log.info("The earlier attempt did create the %s; not sending it again.", what)
                return found
            if unreadable is not None:
                raise _made_but_not_found(unreadable, step, what, tag, settle)
        if delay is None:
            raise_for(step, reply, hook.vapi_conn_id)
        _log_resend(hook, what, reply, attempts.attempt, verdict, delay)
        yield Sleep(max(0.0, delay - (time.monotonic() - replied)))


def _log_resend(
    hook: CallsApi, what: str, reply: Reply, attempt: int, verdict: SendOutcome, delay: float
) -> None:
    """The warning before a create is sent again: what failed, and why sending again is safe."""
    hook.log.warning(
        "Creating the Vapi %s failed (%s), attempt %d; %s; sending it again in %.1fs",
        what,
        describe(reply),
        attempt,
        "nothing was created" if verdict is SendOutcome.REFUSED else f"no {what} with its key appeared",
        delay,
    )


def _settle(create_settle: float, verdict: SendOutcome) -> float:
    """Seconds after the send that the create may still take effect: ``create_settle_seconds``
    (default 120) without an answer or with a gateway's, a second after Vapi's own error."""
    return min(create_settle, ANSWERED_SETTLE) if verdict is SendOutcome.ANSWERED else create_settle


def create_op(
    hook: CallsApi, request: CreateCallRequest, key: str, person_tokens: Sequence[str] | None = None
) -> Op[Call | CallBatchResponse]:
    """``POST /call`` that is never sent again while an earlier attempt may still make the call
    (:func:`send_once_op`); a batch whose answer was lost still accounts for every customer, and a
    batch of more than :data:`BATCH_MAX` customers is sent in parts of at most that many (each
    person keeps its own key, ``person_tokens``, by default :func:`.persons.tokens`)."""
    people = list(tokens(request) if person_tokens is None else person_tokens)
    if request.customers is None or len(request.customers) <= BATCH_MAX:
        return (yield from _create_one_op(hook, request, key, people))
    results: list[Call] = []
    errors: list[CallBatchError] = []
    for start in range(0, len(request.customers), BATCH_MAX):
        part = request.model_copy(update={"customers": request.customers[start : start + BATCH_MAX]})
        hook.log.info(
            "Batch of %d customers: sending customers %d to %d (at most %d a request, so that a lost "
            "answer can still be looked up).",
            len(request.customers),
            start + 1,
            start + len(part.customers or []),
            BATCH_MAX,
        )
        answer = yield from _create_one_op(hook, part, key, people[start : start + BATCH_MAX])
        assert isinstance(answer, CallBatchResponse)
        results += answer.results
        errors += answer.errors
    return CallBatchResponse(results=results, errors=errors)


def _create_one_op(
    hook: CallsApi, request: CreateCallRequest, key: str, people: Sequence[str]
) -> Op[Call | CallBatchResponse]:
    step = Send("POST", "/call", json=keyed_body(request, key, people))
    since = looking_back(datetime.now(UTC))

    mine = {batch_key(key, p) for p in people} | {key} if request.customers else None

    def find() -> Op[list[Call]]:
        found = yield from find_op(hook, key, since, narrowing(request), request)
        # Another part of a split batch (or a later retry's part) carries the same key: not ours.
        return found if mine is None else [c for c in found if key_of(c) in mine]

    def look(until: float) -> Op[Call | CallBatchResponse | None]:
        found = yield from look_until(hook, find, until, "call", repr(key))
        return _result(request, key, people, found) if found else None

    def read(reply: httpx.Response) -> Call | CallBatchResponse:
        return _created(step, reply, hook.vapi_conn_id)

    return (yield from send_once_op(hook, step, read=read, look=look, what="call", tag=repr(key)))


def _made_but_not_found(
    unreadable: VapiResponseError, step: Send, what: str, tag: str, settle: float
) -> VapiResponseError:
    """A 2xx made it, its body was unreadable, and nothing with its key showed up."""
    error = VapiResponseError(
        f"{unreadable} Vapi did make the {what}, but none with its key ({tag}) was found within "
        f"{settle:.0f}s: not sending it again. Look for it in Vapi's dashboard.",
        status_code=unreadable.status_code,
        method=step.method,
        path=step.url,
    )
    error.__cause__ = unreadable
    return error


def _created(step: Send, reply: Reply, conn_id: str) -> Call | CallBatchResponse:
    """The created call(s) from a 2xx answer; ``VapiResponseError`` when its body cannot be read."""
    assert isinstance(reply, httpx.Response)
    data = decode_json(step, reply, conn_id)
    kind: type[Call] | type[CallBatchResponse] = CallBatchResponse if "results" in data else Call
    return validate(kind, data, step, reply, conn_id)
