"""``VapiHook``: the one place that speaks HTTP to Vapi.

Every operation is written once, as a generator that *describes* its requests and waits (see
``_Send`` / ``_Sleep``); ``_run`` drives it with a pooled ``httpx.Client`` for workers and ``_arun``
with an ``httpx.AsyncClient`` for triggers. So the sync methods and their ``a``-prefixed async twins
cannot drift apart, and retries and the create-reconciliation logic exist exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from pydantic import ValidationError

from airflow_provider_vapi.exceptions import (
    VapiConnectionError,
    VapiError,
    VapiInvalidRequestError,
    error_class_for_status,
)
from airflow_provider_vapi.models import (
    IDEMPOTENCY_METADATA_KEY,
    Call,
    CallBatchResponse,
    CreateCallRequest,
)
from airflow_provider_vapi.paging import PAGE_MAX, Window, iso, parse_ts
from airflow_provider_vapi.retries import RetryPolicy, is_retryable_status

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.vapi.ai"
DASHBOARD_CALL_URL = "https://dashboard.vapi.ai/calls/{call_id}"
# How far before an attempt the reconciliation looks for the call it may have created: covers clock
# skew between this worker and Vapi. The idempotency key, not the window, decides the match.
RECONCILE_LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class _Send:
    """One HTTP request an operation wants sent; the driver answers with a response or an error."""

    method: str
    url: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    authenticated: bool = True


@dataclass(frozen=True)
class _Sleep:
    seconds: float


_Step = _Send | _Sleep
_Op = Generator[_Step, "httpx.Response | httpx.TransportError | None", T]


@dataclass
class _Attempts:
    """Book-keeping for one logical request across its retries."""

    policy: RetryPolicy
    started: float = field(default_factory=time.monotonic)
    attempt: int = 0

    def next_delay(self, response: httpx.Response | None) -> float | None:
        self.attempt += 1
        return self.policy.delay(self.attempt, time.monotonic() - self.started, response)


def _carries_key(call_key: str | None, key: str) -> bool:
    """The call was created with ``key``: exactly, or as a batch's ``<key>:<i>`` / a redial's ``<key>~<n>``."""
    if not call_key or not call_key.startswith(key):
        return False
    return len(call_key) == len(key) or call_key[len(key)] in ":~"


def _vapi_messages(response: httpx.Response) -> list[str]:
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


class VapiHook(BaseHook):
    """Talk to Vapi's call API with the API key of an Airflow connection.

    The connection (type ``vapi``): **password** is the Vapi private API key; **host** is the base
    URL (default ``https://api.vapi.ai``; point it at the bundled emulator for tests). Optional
    extras: ``timeout`` (seconds per request, default 30), ``max_retries`` (attempts in all, default
    5), ``retry_max_wait`` (cap of one backoff, default 20 s), ``retry_total_seconds`` (default 120).

    Reads retry on connection errors, timeouts, 429 (honouring ``Retry-After``) and 5xx. Creating a
    call never retries blindly: every create carries an idempotency key in
    ``assistantOverrides.metadata``; after an ambiguous failure the hook lists the calls created
    since just before the attempt and returns the one carrying the key, and sends again only when
    there is none.

    :param vapi_conn_id: the Airflow connection id.
    :param timeout: overrides the connection's per-request timeout (seconds).
    :param retry_policy: overrides the retry bounds read from the connection.
    """

    conn_name_attr = "vapi_conn_id"
    default_conn_name = "vapi_default"
    conn_type = "vapi"
    hook_name = "Vapi"

    def __init__(
        self,
        vapi_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.vapi_conn_id = vapi_conn_id
        self._timeout_override = timeout
        self._policy_override = retry_policy
        self._settings: tuple[str, str, float, RetryPolicy] | None = None
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    # -- connection -----------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow 2.11 to 3.1 (3.2+ reads the same from provider metadata)."""
        from airflow_provider_vapi.connection_form import UI_FIELD_BEHAVIOUR

        return dict(UI_FIELD_BEHAVIOUR)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.11 to 3.1 (kept in sync with ``conn-fields``)."""
        from airflow_provider_vapi.connection_form import legacy_form_widgets

        return legacy_form_widgets()

    def _settings_from(self, conn: Any) -> tuple[str, str, float, RetryPolicy]:
        api_key = conn.password or ""
        if not api_key:
            raise VapiError(
                f"The Airflow connection {self.vapi_conn_id!r} has no API key. Put your Vapi *private* "
                "API key in its Password field (Admin -> Connections, or the password part of "
                "AIRFLOW_CONN_VAPI_DEFAULT)."
            )
        mask_secret(api_key)
        host = (conn.host or "").strip()
        if host and "://" not in host:
            schema = conn.schema or "https"
            host = f"{schema}://{host}" + (f":{conn.port}" if conn.port else "")
        elif host and conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        base_url = (host or DEFAULT_BASE_URL).rstrip("/")
        extra = conn.extra_dejson or {}
        timeout = float(self._timeout_override or extra.get("timeout") or 30.0)
        policy = self._policy_override or RetryPolicy(
            max_attempts=int(extra.get("max_retries", 5)),
            max_delay=float(extra.get("retry_max_wait", 20.0)),
            max_total=float(extra.get("retry_total_seconds", 120.0)),
        )
        return base_url, api_key, timeout, policy

    def _load_settings(self) -> tuple[str, str, float, RetryPolicy]:
        if self._settings is None:
            self._settings = self._settings_from(self.get_connection(self.vapi_conn_id))
        return self._settings

    async def _aload_settings(self) -> tuple[str, str, float, RetryPolicy]:
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection

            conn = await get_async_connection(self.vapi_conn_id, hook=self)
            self._settings = self._settings_from(conn)
        return self._settings

    @property
    def base_url(self) -> str:
        return self._load_settings()[0]

    @staticmethod
    def dashboard_url(call_id: str) -> str:
        """The call's page in Vapi's dashboard."""
        return DASHBOARD_CALL_URL.format(call_id=call_id)

    # -- drivers --------------------------------------------------------------------------------

    def _client_kwargs(self, settings: tuple[str, str, float, RetryPolicy]) -> dict[str, Any]:
        base_url, api_key, timeout, _ = settings
        return {
            "base_url": base_url,
            "headers": {"Authorization": f"Bearer {api_key}", "User-Agent": "airflow-provider-vapi"},
            "timeout": httpx.Timeout(timeout, connect=min(10.0, timeout)),
        }

    def get_conn(self) -> httpx.Client:
        """The hook's pooled sync client (one per hook, reused by every request)."""
        if self._client is None:
            self._client = httpx.Client(**self._client_kwargs(self._load_settings()))
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        """The hook's pooled async client, bound to the running event loop."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            settings = await self._aload_settings()
            # Checked again after the await: a concurrent first request may have built it meanwhile.
            if self._aclient is None or self._aclient_loop is not loop:
                self._aclient = httpx.AsyncClient(**self._client_kwargs(settings))
                self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    @staticmethod
    def _build(client: httpx.Client | httpx.AsyncClient, step: _Send) -> httpx.Request:
        request = client.build_request(step.method, step.url, params=step.params, json=step.json)
        if not step.authenticated:
            # A monitor URL lives on another host: it is a capability URL and needs no API key.
            request.headers.pop("Authorization", None)
        return request

    def _run(self, op: _Op[T]) -> T:
        client = self.get_conn()
        reply: httpx.Response | httpx.TransportError | None = None
        try:
            while True:
                step = op.send(reply)
                reply = None
                if isinstance(step, _Sleep):
                    time.sleep(step.seconds)
                    continue
                try:
                    reply = client.send(self._build(client, step))
                except httpx.TransportError as exc:
                    reply = exc
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _arun(self, op: _Op[T]) -> T:
        client = await self.aget_conn()
        reply: httpx.Response | httpx.TransportError | None = None
        try:
            while True:
                step = op.send(reply)
                reply = None
                if isinstance(step, _Sleep):
                    await asyncio.sleep(step.seconds)
                    continue
                try:
                    reply = await client.send(self._build(client, step))
                except httpx.TransportError as exc:
                    reply = exc
        except StopIteration as stop:
            result: T = stop.value
            return result

    # -- requests -------------------------------------------------------------------------------

    def _policy(self) -> RetryPolicy:
        if self._settings is not None:
            return self._settings[3]
        return self._policy_override or RetryPolicy()

    def _raise_for(self, step: _Send, reply: httpx.Response | Exception, call_id: str | None) -> None:
        where = f"{step.method} {httpx.URL(step.url).path or step.url}"
        if isinstance(reply, Exception):
            raise VapiConnectionError(
                f"No answer from Vapi for {where} after retries ({type(reply).__name__}: {reply}). "
                f"Check the base URL of connection {self.vapi_conn_id!r} and your network.",
                method=step.method,
                path=step.url,
                call_id=call_id,
            ) from reply
        status = reply.status_code
        messages = _vapi_messages(reply)
        said = "; ".join(messages).rstrip(".") or reply.reason_phrase
        hint = ""
        if status in (401, 403):
            hint = (
                f" Fix the API key of Airflow connection {self.vapi_conn_id!r}: it must be your Vapi "
                "*private* key (Dashboard -> Organization -> API Keys), in the Password field."
            )
        elif status == 404 and call_id:
            hint = f" No call {call_id!r} exists for this API key."
        elif status == 429:
            hint = " Vapi is rate limiting this account; lower the concurrency of your DAGs (a pool)."
        id_part = f" (call {call_id})" if call_id else ""
        raise error_class_for_status(status)(
            f"Vapi answered {status} to {where}{id_part}: {said}.{hint}",
            status_code=status,
            vapi_messages=messages,
            method=step.method,
            path=step.url,
            call_id=call_id,
        )

    def _request_op(self, step: _Send, *, call_id: str | None = None) -> _Op[Any]:
        """Send a *safe* request, retrying transient failures; return the decoded JSON body."""
        attempts = _Attempts(self._policy())
        while True:
            reply = yield step
            assert reply is not None
            if isinstance(reply, httpx.Response):
                if reply.is_success:
                    return reply.json() if reply.content else None
                if not is_retryable_status(reply.status_code):
                    self._raise_for(step, reply, call_id)
                reason = f"HTTP {reply.status_code}"
                delay = attempts.next_delay(reply)
            else:
                reason = type(reply).__name__
                delay = attempts.next_delay(None)
            if delay is None:
                self._raise_for(step, reply, call_id)
                return None  # unreachable: _raise_for always raises
            self.log.warning(
                "Vapi %s %s failed (%s), attempt %d; retrying in %.1fs",
                step.method,
                httpx.URL(step.url).path,
                reason,
                attempts.attempt,
                delay,
            )
            yield _Sleep(delay)

    # -- calls: read ----------------------------------------------------------------------------

    def _get_call_op(self, call_id: str) -> _Op[Call]:
        body = yield from self._request_op(_Send("GET", f"/call/{call_id}"), call_id=call_id)
        return Call.model_validate(body)

    def get_call(self, call_id: str) -> Call:
        """Fetch one call."""
        return self._run(self._get_call_op(call_id))

    async def aget_call(self, call_id: str) -> Call:
        """Fetch one call without blocking the event loop."""
        return await self._arun(self._get_call_op(call_id))

    def _list_calls_op(self, limit: int | None, filters: Mapping[str, Any]) -> _Op[list[Call]]:
        if limit is not None and limit <= PAGE_MAX:
            params = {
                k: iso(v) if isinstance(v, datetime) else v for k, v in filters.items() if v is not None
            }
            body = yield from self._request_op(_Send("GET", "/call", params={**params, "limit": limit}))
            return [Call.model_validate(item) for item in body]
        seen: dict[str, Call] = {}
        windows = [Window.first({k: v for k, v in filters.items() if v is not None})]
        while windows and (limit is None or len(seen) < limit):
            window = windows.pop()
            body = yield from self._request_op(_Send("GET", "/call", params=window.params()))
            page = [Call.model_validate(item) for item in body]
            for call in page:
                seen.setdefault(call.id, call)
            if len(page) >= PAGE_MAX:
                attr = "updated_at" if window.field == "updatedAt" else "created_at"
                windows.extend(window.split([parse_ts(getattr(c, attr)) for c in page]))
        calls = sorted(
            seen.values(), key=lambda c: c.created_at or datetime.min.replace(tzinfo=UTC), reverse=True
        )
        return calls[:limit] if limit is not None else calls

    def list_calls(self, limit: int | None = None, **filters: Any) -> list[Call]:
        """List calls, newest first.

        :param limit: at most this many; ``None`` lists every match, paging past Vapi's 1,000 per
            request by time windows.
        :param filters: Vapi's filters in camelCase (``assistantId``, ``phoneNumberId``, ``id``,
            ``createdAtGt``/``Ge``/``Lt``/``Le``, ``updatedAtGt``/...); datetimes are accepted.
        """
        return self._run(self._list_calls_op(limit, filters))

    async def alist_calls(self, limit: int | None = None, **filters: Any) -> list[Call]:
        """Async twin of :meth:`list_calls`."""
        return await self._arun(self._list_calls_op(limit, filters))

    # -- calls: create --------------------------------------------------------------------------

    def _prepare(self, request: CreateCallRequest | Mapping[str, Any]) -> CreateCallRequest:
        if isinstance(request, CreateCallRequest):
            model = request
        else:
            try:
                model = CreateCallRequest.from_payload(dict(request))
            except ValidationError as exc:
                raise VapiInvalidRequestError(
                    f"The call request is invalid; nothing was sent to Vapi.\n{exc}"
                ) from exc
        for secret in model.secret_values():
            mask_secret(secret)
        return model

    @staticmethod
    def _narrowing(model: CreateCallRequest) -> dict[str, Any]:
        """List filters that every call of this request matches: fewer calls to page through."""
        return {"assistantId": model.assistant_id, "phoneNumberId": model.phone_number_id}

    def _find_op(self, key: str, since: datetime, filters: Mapping[str, Any]) -> _Op[list[Call]]:
        calls = yield from self._list_calls_op(None, {**filters, "createdAtGe": since})
        found = [c for c in calls if _carries_key(c.idempotency_key, key)]
        return sorted(found, key=lambda c: c.created_at or since)

    def _create_call_op(self, model: CreateCallRequest, key: str) -> _Op[Call | CallBatchResponse]:
        step = _Send("POST", "/call", json=model.wire_with_idempotency_key(key))
        attempts = _Attempts(self._policy())
        since = datetime.now(UTC) - RECONCILE_LOOKBACK
        while True:
            reply = yield step
            assert reply is not None
            if isinstance(reply, httpx.Response) and reply.is_success:
                data = reply.json()
                return (
                    CallBatchResponse.model_validate(data) if "results" in data else Call.model_validate(data)
                )
            if isinstance(reply, httpx.Response) and not is_retryable_status(reply.status_code):
                self._raise_for(step, reply, None)
            # 429 is refused before anything is created; a 5xx, timeout or dropped connection may
            # have created the call: wait, then look for it before daring to send again.
            ambiguous = not (isinstance(reply, httpx.Response) and reply.status_code == 429)
            delay = attempts.next_delay(reply if isinstance(reply, httpx.Response) else None)
            reason = (
                f"HTTP {reply.status_code}" if isinstance(reply, httpx.Response) else type(reply).__name__
            )
            if delay is None:
                if ambiguous:
                    found = yield from self._find_op(key, since, self._narrowing(model))
                    if found:
                        return self._from_found(model, found)
                self._raise_for(step, reply, None)
            self.log.warning(
                "Creating the Vapi call failed (%s), attempt %d; %s in %.1fs",
                reason,
                attempts.attempt,
                "checking whether it was created anyway" if ambiguous else "retrying",
                delay,
            )
            yield _Sleep(delay)  # type: ignore[arg-type]
            if ambiguous:
                found = yield from self._find_op(key, since, self._narrowing(model))
                if found:
                    self.log.info("The earlier attempt did create the call(s); not dialling again.")
                    return self._from_found(model, found)

    @staticmethod
    def _from_found(model: CreateCallRequest, found: list[Call]) -> Call | CallBatchResponse:
        if model.customers:
            return CallBatchResponse(results=found, errors=[])
        return found[0]

    def create_call(
        self, request: CreateCallRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call | CallBatchResponse:
        """Place a call (``customer``) or a batch (``customers``). Never dials a person twice.

        :param request: a ``CreateCallRequest`` or Vapi's camelCase body (validated here, before
            anything is sent; payloads written for the older API are upgraded with a warning).
        :param idempotency_key: written into ``assistantOverrides.metadata``; give a stable one
            (the operator derives it from dag, run, task and map index) so that a *retry of the
            task* finds its call too. A random one is used when omitted.
        :returns: the ``Call``, or a ``CallBatchResponse`` for a batch.
        :raises VapiInvalidRequestError: the request breaks a rule; nothing was sent.
        """
        key = idempotency_key or uuid.uuid4().hex
        return self._run(self._create_call_op(self._prepare(request), key))

    async def acreate_call(
        self, request: CreateCallRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call | CallBatchResponse:
        """Async twin of :meth:`create_call`."""
        key = idempotency_key or uuid.uuid4().hex
        return await self._arun(self._create_call_op(self._prepare(request), key))

    def find_calls(
        self, idempotency_key: str, *, created_after: datetime | None = None, **filters: Any
    ) -> list[Call]:
        """Calls created with this idempotency key, oldest first.

        A batch's calls carry ``<key>:<index>`` and redials ``<key>~<try>``; both are found.

        :param created_after: where to start looking; default: the last 24 hours.
        :param filters: narrow the listing (``assistantId``, ``phoneNumberId``).
        """
        since = created_after or datetime.now(UTC) - timedelta(days=1)
        return self._run(self._find_op(idempotency_key, since - RECONCILE_LOOKBACK, filters))

    # -- calls: end, delete ---------------------------------------------------------------------

    def _end_call_op(self, call: Call | str) -> _Op[Call]:
        current = call if isinstance(call, Call) else (yield from self._get_call_op(call))
        if current.is_ended:
            return current
        control_url = current.control_url
        if not control_url:
            raise VapiError(
                f"Call {current.id} has no monitor.controlUrl, so it cannot be ended from here "
                "(it may not have started yet: a scheduled call is cancelled with delete_call).",
                call_id=current.id,
            )
        yield from self._request_op(
            _Send("POST", control_url, json={"type": "end-call"}, authenticated=False), call_id=current.id
        )
        self.log.info("Asked Vapi to end call %s", current.id)
        return (yield from self._get_call_op(current.id))

    def end_call(self, call: Call | str) -> Call:
        """End a live call through its ``monitor.controlUrl`` (it ends ``manually-canceled``).

        A call that has already ended is returned as it is.
        """
        return self._run(self._end_call_op(call))

    async def aend_call(self, call: Call | str) -> Call:
        """Async twin of :meth:`end_call`."""
        return await self._arun(self._end_call_op(call))

    def _delete_call_op(self, call_id: str) -> _Op[Call | None]:
        body = yield from self._request_op(_Send("DELETE", f"/call/{call_id}"), call_id=call_id)
        return Call.model_validate(body) if isinstance(body, dict) and body.get("id") else None

    def delete_call(self, call_id: str) -> Call | None:
        """Delete a call's data; a *scheduled* call is cancelled (``scheduled-call-deleted``)."""
        return self._run(self._delete_call_op(call_id))

    async def adelete_call(self, call_id: str) -> Call | None:
        """Async twin of :meth:`delete_call`."""
        return await self._arun(self._delete_call_op(call_id))

    # -- other resources ------------------------------------------------------------------------

    def _list_op(self, path: str, limit: int | None) -> _Op[list[dict[str, Any]]]:
        params = {"limit": limit} if limit else None
        body = yield from self._request_op(_Send("GET", path, params=params))
        return list(body or [])

    def list_assistants(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The account's assistants (raw JSON objects)."""
        return self._run(self._list_op("/assistant", limit))

    async def alist_assistants(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._arun(self._list_op("/assistant", limit))

    def list_phone_numbers(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The account's phone numbers (raw JSON objects)."""
        return self._run(self._list_op("/phone-number", limit))

    async def alist_phone_numbers(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._arun(self._list_op("/phone-number", limit))

    def test_connection(self) -> tuple[bool, str]:
        """Cheap and read-only: list one assistant. Used by the UI's Test button and the CLI."""
        quick = VapiHook(self.vapi_conn_id, retry_policy=RetryPolicy(max_attempts=2, max_total=5.0))
        try:
            quick.list_assistants(limit=1)
        except VapiError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI shows the message; anything else is a crash there
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            quick.close()
        return True, f"Connected to Vapi at {self.base_url}."


__all__ = ["DEFAULT_BASE_URL", "IDEMPOTENCY_METADATA_KEY", "VapiHook"]
