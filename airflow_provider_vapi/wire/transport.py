"""How ``VapiHook`` sends requests: one generator per operation, a sync and an async driver.

The protocol (the same idea as httpx's ``Auth.auth_flow``)
----------------------------------------------------------
An *operation* is a generator that never does I/O itself. It **yields steps** and is **sent
answers**:

* it yields :class:`Send` (one HTTP request) and is sent back the ``httpx.Response``, or the
  ``httpx.TransportError`` the request raised (timeouts and dropped connections are answers too,
  so the operation decides what they mean);
* it yields :class:`Sleep` (a back-off) and is sent ``None`` when the time has passed;
* it ``return``\\ s its result (``StopIteration.value``) or raises a :class:`~.exceptions.VapiError`.

:func:`run` drives an operation with a blocking ``httpx.Client`` (workers) and :func:`arun` with an
``httpx.AsyncClient`` (the triggerer's event loop). They are the only two places that touch a
client or a clock, and the only intended pair of look-alike functions in the package. Everything
else (retries, reconciliation of an ambiguous create, paging, errors) is written once, in
operations, so the sync methods and their ``a``-prefixed async twins cannot drift apart.
Operations compose with ``yield from``: :func:`request_op` is the retrying building block of the
others, and ``idempotency.create_op`` combines sends, sleeps and listings the same way.

Reading a 2xx answer is written once too: :func:`decode_json` ``(step, reply, conn_id,
call_id=None, expect=dict)`` returns its JSON body if it is an object (``expect=dict``), an array
(``list``) or anything (``None``), and :func:`validate` ``(kind, body, step, reply, conn_id,
call_id=None)`` makes that body a ``kind`` (``Call``, ``list[Call]``). Neither lets a decode or
validation error out: a garbage 2xx (an HTML page, ``null``, cut-off JSON, the wrong shape) raises
:class:`~.exceptions.VapiResponseError`. :func:`request_op` reads with an ``expect`` too, and
retries a garbage answer to a ``GET`` like a 5xx (to anything else it is raised at once: a 2xx
means the request took effect). An operation reading a 2xx itself (``idempotency.create_op``)
must use these two functions.

What the hook reads from its Airflow connection is :mod:`.connection`'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar, get_origin

import httpx
from airflow.providers.common.compat.sdk import redact
from pydantic import TypeAdapter, ValidationError

from airflow_provider_vapi.exceptions import (
    VapiConnectionError,
    VapiResponseError,
    error_class_for_status,
)
from airflow_provider_vapi.wire.retries import RetryPolicy, is_retryable_status

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """One HTTP request an operation wants sent; the driver answers with a response or an error."""

    method: str
    url: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    #: ``False`` for a monitor URL: it lives on another host and is a capability URL itself.
    authenticated: bool = True
    #: Sent as ``Bearer`` instead of the API key: the public key, to a locked control URL (control.py).
    bearer: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """``METHOD /path`` for messages (never the query string, never a host's secret path)."""
        return f"{self.method} {httpx.URL(self.url).path or self.url}"


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds before the next step."""

    seconds: float


class Log(Protocol):
    """What operations log through: a hook's or a task's logger (stdlib or Airflow's)."""

    def info(self, msg: str, /, *args: Any) -> Any: ...
    def warning(self, msg: str, /, *args: Any) -> Any: ...


Step = Send | Sleep
Reply = httpx.Response | httpx.TransportError | None
Op = Generator[Step, Reply, T]


# -- the drivers --------------------------------------------------------------------------------


def _build(client: httpx.Client | httpx.AsyncClient, step: Send) -> httpx.Request:
    request = client.build_request(step.method, step.url, params=step.params, json=step.json)
    if not step.authenticated:
        request.headers.pop("Authorization", None)
    if step.bearer:
        request.headers["Authorization"] = f"Bearer {step.bearer}"
    return request


def run(op: Op[T], client: httpx.Client) -> T:
    """Drive ``op`` to its result with a blocking client."""
    reply: Reply = None
    try:
        while True:
            step = op.send(reply)
            reply = None
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                continue
            try:
                reply = client.send(_build(client, step))
            except httpx.TransportError as exc:
                reply = exc
    except StopIteration as stop:
        result: T = stop.value
        return result


async def arun(op: Op[T], client: httpx.AsyncClient) -> T:
    """Drive ``op`` to its result on the running event loop."""
    reply: Reply = None
    try:
        while True:
            step = op.send(reply)
            reply = None
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                continue
            try:
                reply = await client.send(_build(client, step))
            except httpx.TransportError as exc:
                reply = exc
    except StopIteration as stop:
        result: T = stop.value
        return result


# -- building blocks of operations ---------------------------------------------------------------


@dataclass
class Attempts:
    """Book-keeping for one logical request across its retries."""

    policy: RetryPolicy
    started: float = field(default_factory=time.monotonic)
    attempt: int = 0

    def next_delay(self, reply: Reply) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when the budget is spent."""
        self.attempt += 1
        response = reply if isinstance(reply, httpx.Response) else None
        return self.policy.delay(self.attempt, time.monotonic() - self.started, response)


def describe(reply: Reply) -> str:
    """``HTTP 503`` or ``ReadTimeout``: what went wrong, for a log line."""
    if isinstance(reply, httpx.Response):
        return f"HTTP {reply.status_code}"
    return type(reply).__name__


def vapi_messages(response: httpx.Response) -> list[str]:
    """Vapi's own reason(s) from a NestJS-shaped error body, whatever its exact shape."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return [text[:500]] if text else []
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, list):
        return [str(m) for m in message]
    if message:
        return [str(message)]
    return [str(body)[:500]] if body else []


def _hint(status: int, conn_id: str, call_id: str | None) -> str:
    if status in (401, 403):
        return (
            f" Fix the API key of Airflow connection {conn_id!r}: it must be your Vapi "
            "*private* key (Dashboard -> Organization -> API Keys), in the Password field."
        )
    if status == 404 and call_id:
        return f" No call {call_id!r} exists for this API key."
    if status == 429:
        return " Vapi is rate limiting this account; lower the concurrency of your DAGs (a pool)."
    return ""


def raise_for(step: Send, reply: Reply, conn_id: str, call_id: str | None = None) -> NoReturn:
    """Raise the typed error for a failed step: Vapi's message, status, ``METHOD /path``, call id."""
    if not isinstance(reply, httpx.Response):
        raise VapiConnectionError(
            f"No answer from Vapi for {step.where} after retries ({type(reply).__name__}: {reply}). "
            f"Check the base URL of connection {conn_id!r} and your network.",
            method=step.method,
            path=step.url,
            call_id=call_id,
        ) from reply
    status = reply.status_code
    messages = vapi_messages(reply)
    said = "; ".join(messages).rstrip(".") or reply.reason_phrase
    id_part = f" (call {call_id})" if call_id else ""
    raise error_class_for_status(status)(
        f"Vapi answered {status} to {step.where}{id_part}: {said}.{_hint(status, conn_id, call_id)}",
        status_code=status,
        vapi_messages=messages,
        method=step.method,
        path=step.url,
        call_id=call_id,
    )


def request_op(
    step: Send,
    *,
    policy: RetryPolicy,
    conn_id: str,
    log: Log,
    call_id: str | None = None,
    expect: Any = None,
) -> Op[Any]:
    """Send a *safe* request, retrying transient failures; return the body read as ``expect``.

    Retried within ``policy``: connection errors, timeouts, the statuses of
    :func:`.retries.is_retryable_status`, and a 2xx to a ``GET`` whose body is not ``expect``
    (``dict``, ``list``, a model such as ``Call`` or ``list[Call]``; ``None``: any JSON). Once the
    budget is spent that raises :class:`~.exceptions.VapiResponseError`. Other answers are final.
    """
    attempts = Attempts(policy)
    while True:
        reply = yield step
        unreadable: VapiResponseError | None = None
        if isinstance(reply, httpx.Response):
            if reply.is_success:
                try:
                    return read_as(expect, step, reply, conn_id, call_id, attempts.attempt)
                except VapiResponseError as exc:
                    if step.method not in SAFE_METHODS:
                        raise
                    unreadable = exc
            elif not is_retryable_status(reply.status_code):
                raise_for(step, reply, conn_id, call_id)
        delay = attempts.next_delay(reply)
        if delay is None:
            if unreadable is not None:
                raise unreadable
            raise_for(step, reply, conn_id, call_id)
        log.warning(
            "Vapi %s failed (%s), attempt %d; retrying in %.1fs",
            step.where,
            describe(reply) + (", unreadable body" if unreadable else ""),
            attempts.attempt,
            delay,
        )
        yield Sleep(delay)


# -- reading a 2xx answer -------------------------------------------------------------------------

#: Methods whose 2xx answer changed nothing, so an unreadable one may simply be asked for again.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: How much of an unreadable body an error message quotes (a body may echo the request).
EXCERPT_CHARS = 120
_JSON_KINDS: dict[type, str] = {dict: "a JSON object", list: "a JSON array", str: "a JSON string"}


def _json_kind(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return f"JSON {'null' if value is None else str(value).lower()}"
    return _JSON_KINDS.get(type(value), "a JSON number")


def _excerpt(reply: httpx.Response) -> str:
    """``text/html: '<!DOCTYPE html> ...'``: the body's type and start, secrets masked, one line."""
    media = reply.headers.get("content-type", "no content type").split(";")[0].strip()
    # Masked before it is cut, so a secret across the cut is masked whole, not half-quoted.
    text = str(redact(" ".join(reply.text[: EXCERPT_CHARS * 40].split())))
    return f"{media}: {text[:EXCERPT_CHARS] + ('...' if len(text) > EXCERPT_CHARS else '')!r}"


def unreadable_error(
    step: Send, reply: httpx.Response, conn_id: str, call_id: str | None, reason: str, retried: int = 0
) -> VapiResponseError:
    """The :class:`~.exceptions.VapiResponseError` for a 2xx whose body is not what the API returns."""
    id_part = f" (call {call_id})" if call_id else ""
    tail = f"it was retried {retried} time{'' if retried == 1 else 's'}" if retried else "it was not retried"
    if step.method not in SAFE_METHODS:
        tail += f" (a 2xx to a {step.method} means it most likely took effect)"
    return VapiResponseError(
        f"Vapi answered {reply.status_code} to {step.where}{id_part} with a body that is not what "
        f"the API returns ({_excerpt(reply)}; {reason}). This is usually a proxy or an outage page "
        f"(or the base URL of connection {conn_id!r} is not Vapi's API); {tail}.",
        status_code=reply.status_code,
        method=step.method,
        path=step.url,
        call_id=call_id,
    )


def decode_json(
    step: Send,
    reply: httpx.Response,
    conn_id: str,
    call_id: str | None = None,
    expect: type[dict[Any, Any]] | type[list[Any]] | None = dict,
    retried: int = 0,
) -> Any:
    """The JSON body of the 2xx ``reply`` to ``step``: an object (``expect=dict``), an array
    (``list``) or anything (``None``; an empty body is then ``None``).

    :param retried: how many times the request was retried already (said in the message).
    :raises VapiResponseError: the body is not JSON, or not ``expect``; never a decode error.
    """
    if not reply.content:
        if expect is None:
            return None
        reason = "an empty body"
    else:
        try:
            body = reply.json()
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise unreadable_error(step, reply, conn_id, call_id, "not valid JSON", retried) from exc
        if expect is None or isinstance(body, expect):
            return body
        reason = f"{_json_kind(body)} where {_json_kind(expect())} was expected"
    raise unreadable_error(step, reply, conn_id, call_id, reason, retried)


def _misfit(kind: Any, body: Any) -> tuple[Any, str | None]:
    """``(body as kind, None)``, or ``(None, why it does not fit)`` without quoting its values."""
    try:
        return TypeAdapter(kind).validate_python(body), None
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False, include_context=False)
        said = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return None, f"{_json_kind(body)} that is not a {getattr(kind, '__name__', kind)}: {said}{more}"


def validate(
    kind: type[T],
    body: Any,
    step: Send,
    reply: httpx.Response,
    conn_id: str,
    call_id: str | None = None,
    retried: int = 0,
) -> T:
    """``body``, decoded from ``reply``, as ``kind``: a model (``Call``), ``list[Call]`` ...

    :raises VapiResponseError: it does not fit; never a ``ValidationError`` (which quotes values).
    """
    value, reason = _misfit(kind, body)
    if reason is not None:
        raise unreadable_error(step, reply, conn_id, call_id, reason, retried)
    result: T = value
    return result


def read_as(
    expect: Any, step: Send, reply: httpx.Response, conn_id: str, call_id: str | None, retried: int
) -> Any:
    """The 2xx ``reply`` read as ``expect``: :func:`decode_json`, then :func:`validate` for a model;
    ``bytes``: the raw body of a JSON array, left for the caller to decode (``feed.py``)."""
    if expect is bytes:
        if reply.content.lstrip()[:1] != b"[":
            raise unreadable_error(step, reply, conn_id, call_id, "not a JSON array", retried)
        return reply.content
    origin = get_origin(expect) or expect
    top: type[dict[Any, Any]] | type[list[Any]] | None = None
    if origin is not None:
        top = list if isinstance(origin, type) and issubclass(origin, list) else dict
    body = decode_json(step, reply, conn_id, call_id, top, retried)
    if expect is None or expect is top:
        return body
    return validate(expect, body, step, reply, conn_id, call_id, retried)
