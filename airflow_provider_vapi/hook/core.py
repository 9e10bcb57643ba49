"""``VapiHook``: the one place that speaks HTTP to Vapi.

Each method is an *operation* (a ``_*_op`` generator that describes its requests and back-offs)
driven by the blocking driver for workers or the async one (``a``-prefixed twins) for triggers:
:mod:`airflow_provider_vapi.wire.transport` documents that protocol once, and holds the drivers, the
retrying request and the errors. Creating a call is :mod:`airflow_provider_vapi.idempotency`'s
operation: it never sends a create again while an earlier attempt may have created the call.
Recordings are the one streamed download: :mod:`airflow_provider_vapi.wire.downloads` (redirect, then a
presigned URL fetched without the API key).

The hook imports no feature: campaigns and structured outputs wrap it
(:class:`~airflow_provider_vapi.campaigns.api.CampaignApi`,
:class:`~airflow_provider_vapi.structured_outputs.api.StructuredOutputApi`), on the same protocol.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from airflow.providers.common.compat.sdk import BaseHook
from pydantic import ValidationError

from airflow_provider_vapi import idempotency
from airflow_provider_vapi.exceptions import VapiError, VapiInvalidRequestError
from airflow_provider_vapi.hook.links import dashboard_url
from airflow_provider_vapi.hook.resources import SavedResources
from airflow_provider_vapi.models import Call, CallBatchResponse, CreateCallRequest
from airflow_provider_vapi.secrets import find_secret_values, mask
from airflow_provider_vapi.wire import control, downloads
from airflow_provider_vapi.wire.connection import DEFAULT_BASE_URL, ConnectionSettings
from airflow_provider_vapi.wire.ids import path_segment
from airflow_provider_vapi.wire.paging import PAGE_MAX, Window, iso, parse_ts
from airflow_provider_vapi.wire.retries import RetryPolicy
from airflow_provider_vapi.wire.skew import looking_back
from airflow_provider_vapi.wire.transport import (
    Op,
    Send,
    arun,
    request_op,
    run,
)

T = TypeVar("T")


class VapiHook(SavedResources, BaseHook):
    """Talk to Vapi's call API with the API key of an Airflow connection.

    The connection (type ``vapi``): **password** is the Vapi private API key; **host** is the base
    URL (default ``https://api.vapi.ai``; point it at the bundled emulator for tests). Optional
    extras: ``timeout`` (seconds per request, default 30), ``max_retries`` (attempts in all, default
    5), ``retry_max_wait`` (cap of one backoff, default 20 s), ``retry_total_seconds`` (default 120),
    ``public_api_key`` (sent only to control URLs an assistant locks: :mod:`~.control`).

    Reads retry on connection errors, timeouts, 429 (honouring ``Retry-After``) and 5xx. Creating a
    call never retries blindly: every create carries an idempotency key in the call's metadata;
    after an ambiguous failure the hook lists the calls created since just before the attempt and
    returns the one carrying the key, and sends again only when there is none.

    :param vapi_conn_id: the Airflow connection id.
    :param timeout: overrides the connection's per-request timeout (seconds).
    :param retry_policy: overrides the retry bounds read from the connection.
    """

    conn_name_attr = "vapi_conn_id"
    default_conn_name = "vapi_default"
    conn_type = "vapi"
    hook_name = "Vapi"
    dashboard_url = staticmethod(dashboard_url)

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
        self._settings: ConnectionSettings | None = None
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._recordings = downloads.Recordings(self._run, lambda: self.settings, self.log)

    # -- connection -----------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow 2.11 to 3.1 (3.2+ reads the same from provider metadata)."""
        from airflow_provider_vapi.wire.connection import UI_FIELD_BEHAVIOUR

        return dict(UI_FIELD_BEHAVIOUR)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.11 to 3.1 (kept in sync with ``conn-fields``)."""
        from airflow_provider_vapi.wire.connection import legacy_form_widgets

        return legacy_form_widgets()

    def _settings_from(self, conn: Any) -> ConnectionSettings:
        settings = ConnectionSettings.from_connection(
            conn, self.vapi_conn_id, timeout=self._timeout_override, policy=self._policy_override
        )
        mask([settings.api_key, settings.public_key or ""])
        return settings

    @property
    def settings(self) -> ConnectionSettings:
        """The connection's settings, read once (the async path reads them without blocking first)."""
        if self._settings is None:
            self._settings = self._settings_from(self.get_connection(self.vapi_conn_id))
        return self._settings

    async def _asettings(self) -> ConnectionSettings:
        """Read the connection without blocking the event loop (the triggerer's is shared): the
        extras and the masker are synchronous Airflow calls (on Airflow 3 ``extra_dejson`` and
        ``mask_secret`` talk to the supervisor), so they run in a worker thread."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection
            from asgiref.sync import sync_to_async

            conn = await get_async_connection(self.vapi_conn_id, hook=self)
            self._settings = await sync_to_async(self._settings_from)(conn)
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        """:attr:`settings`, read without blocking the event loop."""
        return await self._asettings()

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    # -- clients and drivers (see airflow_provider_vapi.wire.transport) ------------------------------

    def get_conn(self) -> httpx.Client:
        """The hook's pooled sync client (one per hook, reused by every request)."""
        if self._client is None:
            self._client = httpx.Client(**self.settings.client_kwargs())
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        """The hook's pooled async client, bound to the running event loop."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            settings = await self._asettings()
            # Checked again after the await: a concurrent first request may have built it meanwhile.
            if self._aclient is None or self._aclient_loop is not loop:
                self._aclient = httpx.AsyncClient(**settings.client_kwargs())
                self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        self._recordings.close()
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    def _run(self, op: Op[T]) -> T:
        return run(op, self.get_conn())

    async def _arun(self, op: Op[T]) -> T:
        return await arun(op, await self.aget_conn())

    def _request_op(self, step: Send, *, call_id: str | None = None, expect: Any = None) -> Op[Any]:
        """A safe request, retried within the connection's bounds (see ``transport.request_op``)."""
        settings = self.settings
        return request_op(
            step,
            policy=settings.policy,
            conn_id=settings.conn_id,
            log=self.log,
            call_id=call_id,
            expect=expect,
        )

    def _read_op(self, step: Send, expect: type[T], call_id: str | None = None) -> Op[T]:
        """:meth:`_request_op` whose 2xx body must read as ``expect`` (``Call``, ``list[Call]`` ...): a
        garbage one is retried like a 5xx, then raises ``VapiResponseError`` (``transport.read_as``)."""
        body: T = yield from self._request_op(step, call_id=call_id, expect=expect)
        return body

    # -- calls: read ----------------------------------------------------------------------------

    def _get_call_op(self, call_id: str) -> Op[Call]:
        cid = path_segment(call_id, "call_id")  # never a path or a query: ids.py
        return (yield from self._read_op(Send("GET", f"/call/{cid}"), Call, cid))

    def get_call(self, call_id: str) -> Call:
        """Fetch one call."""
        return self._run(self._get_call_op(call_id))

    async def aget_call(self, call_id: str) -> Call:
        """Fetch one call without blocking the event loop."""
        return await self._arun(self._get_call_op(call_id))

    def _list_calls_op(self, limit: int | None, filters: Mapping[str, Any]) -> Op[list[Call]]:
        if limit is not None and limit <= PAGE_MAX:
            params = {
                k: iso(v) if isinstance(v, datetime) else v for k, v in filters.items() if v is not None
            }
            return (
                yield from self._read_op(Send("GET", "/call", params={**params, "limit": limit}), list[Call])
            )
        seen: dict[str, Call] = {}
        windows = [Window.first({k: v for k, v in filters.items() if v is not None})]
        while windows and (limit is None or len(seen) < limit):
            window = windows.pop()
            page = yield from self._read_op(Send("GET", "/call", params=window.params()), list[Call])
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

    async def alist_calls_page(self, params: Mapping[str, Any]) -> bytes:
        """One ``GET /call`` answer as the raw JSON array Vapi sent (retried like any read): the shared
        poll decodes it a call at a time and keeps only the calls it waits for (``feed.py``)."""
        return await self._arun(self._read_op(Send("GET", "/call", params=dict(params)), bytes))

    def iter_call_pages(
        self, *, updated_from: datetime, updated_to: datetime, **filters: Any
    ) -> Iterator[list[dict[str, Any]]]:
        """The calls updated in ``[updated_from, updated_to)`` (raw JSON), a page at a time, oldest
        first, each page sorted by ``(updatedAt, id)``: one page in memory whatever the count.

        A full page is not used but split in halves (:mod:`~.paging`), so the windows yielded never
        overlap and each call comes once, provided ``updated_to`` is in the past: a call changed
        during the listing moves past it rather than into another window.
        """
        wanted = {k: v for k, v in filters.items() if v is not None}
        windows = [Window("updatedAt", wanted, updated_from, updated_to)]
        while windows:
            window = windows.pop()
            step = Send("GET", "/call", params=window.params())
            page = self._run(self._read_op(step, list[dict[str, Any]]))
            if len(page) >= PAGE_MAX:
                windows.extend(reversed(window.split([parse_ts(c["updatedAt"]) for c in page])))
            elif page:
                yield sorted(page, key=lambda c: (parse_ts(c["updatedAt"]), str(c.get("id"))))

    # -- calls: create --------------------------------------------------------------------------

    def _prepare(self, request: CreateCallRequest | Mapping[str, Any]) -> CreateCallRequest:
        if isinstance(request, CreateCallRequest):
            model = request
        else:
            mask(find_secret_values(request))  # before validating: an error must not be the first to show it
            try:
                model = CreateCallRequest.from_payload(request)
            except ValidationError as exc:
                raise VapiInvalidRequestError.from_validation(exc) from None
        mask(model.secret_values())
        return model

    def create_call(
        self,
        request: CreateCallRequest | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        person_tokens: Sequence[str] | None = None,
    ) -> Call | CallBatchResponse:
        """Place a call (``customer``) or a batch (``customers``). Never dials a person twice.

        :param request: a ``CreateCallRequest`` or Vapi's camelCase body (validated here, before
            anything is sent; payloads written for the older API are upgraded with a warning).
        :param idempotency_key: written into the call's metadata (random when omitted); a batch's
            customers carry ``<key>|<person>`` (:mod:`~airflow_provider_vapi.idempotency.persons`) and
            go out in parts of at most 500. The operator derives it from the dag run and task.
        :param person_tokens: a batch's person tokens, one per customer (default: from the customers).
        :returns: the ``Call``, or a ``CallBatchResponse`` for a batch.
        :raises VapiInvalidRequestError: the request breaks a rule; nothing was sent.
        """
        key = idempotency_key or uuid.uuid4().hex
        return self._run(idempotency.create_op(self, self._prepare(request), key, person_tokens))

    async def acreate_call(
        self,
        request: CreateCallRequest | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        person_tokens: Sequence[str] | None = None,
    ) -> Call | CallBatchResponse:
        """Async twin of :meth:`create_call`."""
        key = idempotency_key or uuid.uuid4().hex
        return await self._arun(idempotency.create_op(self, self._prepare(request), key, person_tokens))

    def find_calls(
        self,
        idempotency_key: str,
        *,
        created_after: datetime | None = None,
        request: CreateCallRequest | None = None,
        **filters: Any,
    ) -> list[Call]:
        """Calls created with this idempotency key, oldest first.

        A batch's calls carry ``<key>|<person>`` and redials ``<key>~<try>``; both are found.

        :param created_after: where to start looking (less :data:`~airflow_provider_vapi.wire.skew.
            CLOCK_SKEW`, Vapi's clock may be behind); default: the last 24 hours.
        :param request: keep only the calls that went to this request's customer(s).
        :param filters: narrow the listing (``assistantId``, ``phoneNumberId``).
        """
        since = looking_back(created_after or datetime.now(UTC) - timedelta(days=1))
        return self._run(idempotency.find_op(self, idempotency_key, since, filters, request))

    # -- calls: end, delete ---------------------------------------------------------------------

    def _end_call_op(self, call: Call | str) -> Op[Call]:
        current = call if isinstance(call, Call) else (yield from self._get_call_op(call))
        if current.is_ended:
            return current
        if current.status == "scheduled":
            # Not started: there is no monitor.controlUrl yet. Vapi cancels it on DELETE.
            deleted = yield from self._delete_call_op(current.id)
            self.log.info("Cancelled scheduled Vapi call %s (DELETE /call/%s)", current.id, current.id)
            if deleted is not None and deleted.is_ended:
                return deleted
            return (yield from self._get_call_op(current.id))
        yield from control.end_live_op(current, self.settings, self._request_op)  # public key if locked
        self.log.info("Ended live Vapi call %s through its monitor.controlUrl", current.id)
        return (yield from self._get_call_op(current.id))

    def end_call(self, call: Call | str) -> Call:
        """Stop a call, whatever its stage; returns it as Vapi then reports it.

        * a **scheduled** call (not started, so it has no ``monitor.controlUrl`` yet) is cancelled
          with ``DELETE /call/{id}``: it ends ``scheduled-call-deleted``;
        * a **live** call (queued, ringing, in progress) is ended through its
          ``monitor.controlUrl``: it ends ``manually-canceled``;
        * a call that has already ended is returned as it is, and nothing is sent.

        The log line says which was done. The choice rests on the status just read (or on the
        ``Call`` given), so pass an id, or a fresh ``Call``.

        :raises VapiError: a live call without ``monitor.controlUrl``, or Vapi refused; a locked
            control URL (``monitorPlan.controlAuthenticationEnabled``) wants the connection's public
            API key (:mod:`~.control`).
        :raises VapiInvalidRequestError: ``call`` is not a call id (a UUID); nothing was sent.
        """
        return self._run(self._end_call_op(call))

    async def aend_call(self, call: Call | str) -> Call:
        """Async twin of :meth:`end_call`: a scheduled call is deleted, a live one ended."""
        return await self._arun(self._end_call_op(call))

    def _delete_call_op(self, call_id: str) -> Op[Call | None]:
        # Vapi answers the deleted Call. Not retried when unreadable: the 2xx says it was deleted.
        cid = path_segment(call_id, "call_id")
        return (yield from self._read_op(Send("DELETE", f"/call/{cid}"), Call, cid))

    def delete_call(self, call_id: str) -> Call | None:
        """Delete a call's data; a *scheduled* call is cancelled (``scheduled-call-deleted``)."""
        return self._run(self._delete_call_op(call_id))

    async def adelete_call(self, call_id: str) -> Call | None:
        """Async twin of :meth:`delete_call`."""
        return await self._arun(self._delete_call_op(call_id))

    # -- recordings -----------------------------------------------------------------------------

    def download_recording(
        self, call_id: str, sinks: downloads.SinkFactory, kind: str = "mono"
    ) -> downloads.Downloaded | None:
        """Write a call's recording (``mono``, ``stereo``, ``customer`` or ``assistant``) into a
        fresh sink from ``sinks()`` per attempt; ``None`` when the call has no such recording. The
        API key is never sent to the storage host (:mod:`~.downloads`)."""
        return self._recordings.download(call_id, kind, sinks)

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


__all__ = ["DEFAULT_BASE_URL", "VapiHook"]
