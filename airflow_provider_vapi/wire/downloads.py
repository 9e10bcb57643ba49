"""How ``VapiHook`` downloads a call's recording: ask Vapi where it is, then fetch it from there.

``GET /call/{id}/mono-recording`` (and ``stereo``, ``customer``, ``assistant``) answers a redirect
to a short-lived presigned URL on a storage host. Two rules make this safe and restartable:

* **The API key never leaves for the storage host.** The redirect is not followed by the hook's
  client (which sends ``Authorization`` on every request): the location is read, and the file is
  fetched by a second client that has no credentials at all. A presigned URL is its own
  authorisation.
* **A link that expired is asked for again**, not retried: storage answers 403 once the URL's time
  is up (a slow queue of downloads, a retry hours later), so the next attempt starts with a new
  redirect. Connection errors and 5xx from either host are retried within the connection's
  retry policy; a body shorter than its ``Content-Length`` counts as a dropped connection.

The caller gives a *sink factory*: each attempt writes into a fresh sink (the caller truncates its
temporary file), so a half-written attempt never survives into a later one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, Final

import httpx

from airflow_provider_vapi.exceptions import VapiConnectionError, VapiResponseError
from airflow_provider_vapi.wire.connection import ConnectionSettings
from airflow_provider_vapi.wire.ids import checked_id, path_segment
from airflow_provider_vapi.wire.retries import RetryPolicy, is_retryable_status
from airflow_provider_vapi.wire.transport import (
    Attempts,
    Log,
    Op,
    Send,
    Sleep,
    describe,
    raise_for,
)

#: The recordings a call can have, and the route that redirects to each.
RECORDING_ROUTES: Final[dict[str, str]] = {
    "mono": "mono-recording",
    "stereo": "stereo-recording",
    "customer": "customer-recording",
    "assistant": "assistant-recording",
}
CHUNK_BYTES: Final = 256 * 1024

SinkFactory = Callable[[], AbstractContextManager[IO[bytes]]]


@dataclass(frozen=True)
class Located:
    """Where a recording is: a presigned ``url``, or its ``body`` when Vapi answered with the file."""

    url: str | None = None
    body: bytes | None = None


@dataclass(frozen=True)
class Downloaded:
    """A recording that was written: its size and the storage's content type."""

    size: int
    content_type: str


class Recordings:
    """A hook's recording downloads: its client for storage hosts (made on first use, no
    credentials and no base URL: a presigned URL authorises itself; shared by the threads that
    download) and the locate-then-fetch of :func:`download`, with the hook's driver and settings."""

    def __init__(
        self, run: Callable[[Op[Any]], Any], settings: Callable[[], ConnectionSettings], log: Any
    ) -> None:
        self._run, self._settings, self._log = run, settings, log
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def download(self, call_id: str, kind: str, sinks: SinkFactory) -> Downloaded | None:
        call_id = checked_id(call_id, "call_id")  # before any client is made or request sent
        settings = self._settings()
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(settings.timeout), follow_redirects=True)
            storage = self._client
        what = f"the {check_kinds(kind)[0]} recording of call {call_id}"
        locate = partial(self._locate, call_id, kind)
        return download(locate, storage, sinks, policy=settings.policy, log=self._log, what=what)

    def _locate(self, call_id: str, kind: str) -> Located | None:
        settings = self._settings()
        op = locate_op(call_id, kind, policy=settings.policy, conn_id=settings.conn_id, log=self._log)
        result: Located | None = self._run(op)
        return result

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class _Expired(Exception):
    """The presigned URL was refused (expired or revoked): ask Vapi for a new one."""


def check_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """``kinds`` (one or several of :data:`RECORDING_ROUTES`) as a tuple; a clear error otherwise."""
    chosen = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not chosen or any(k not in RECORDING_ROUTES for k in chosen):
        raise ValueError(
            f"recordings={list(chosen)!r}: each must be one of {', '.join(map(repr, RECORDING_ROUTES))}."
        )
    return chosen


def locate_op(call_id: str, kind: str, *, policy: RetryPolicy, conn_id: str, log: Log) -> Op[Located | None]:
    """``GET /call/{id}/<kind>-recording`` read without following it: ``None`` when the call has no
    such recording (404), else where it is. Transient failures are retried within ``policy``."""
    call_id = path_segment(call_id, "call_id")  # never a path or a query (ids.py)
    step = Send("GET", f"/call/{call_id}/{RECORDING_ROUTES[check_kinds(kind)[0]]}")
    attempts = Attempts(policy)
    while True:
        reply = yield step
        if isinstance(reply, httpx.Response):
            location = reply.headers.get("location")
            if reply.is_redirect and location:
                return Located(url=str(reply.request.url.join(location)))
            if reply.is_success:
                return Located(body=reply.content)
            if reply.status_code == 404:
                return None
            if not is_retryable_status(reply.status_code):
                raise_for(step, reply, conn_id, call_id)
        delay = attempts.next_delay(reply)
        if delay is None:
            raise_for(step, reply, conn_id, call_id)
        log.warning("Vapi %s failed (%s); retrying in %.1fs", step.where, describe(reply), delay)
        yield Sleep(delay)


def fetch(storage: httpx.Client, url: str, sink: IO[bytes]) -> Downloaded:
    """Stream ``url`` into ``sink`` with the credential-free ``storage`` client.

    :raises _Expired: storage refused the link (401/403).
    :raises httpx.TransportError: the connection failed or the body was cut short.
    :raises VapiResponseError: any other refusal (its status tells whether to retry).
    """
    with storage.stream("GET", url) as response:
        if response.status_code in (401, 403):
            raise _Expired(response.status_code)
        if not response.is_success:
            # Never the URL's path or query in a message: a presigned URL is a credential.
            raise VapiResponseError(
                f"The recording's storage ({httpx.URL(url).host}) answered {response.status_code}.",
                status_code=response.status_code,
                method="GET",
            )
        expected = response.headers.get("content-length")
        size, head = 0, b""
        for chunk in response.iter_bytes(CHUNK_BYTES):
            sink.write(chunk)
            size += len(chunk)
            head = head if len(head) >= 12 else (head + chunk)[:12]
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise httpx.ReadError(f"recording body cut short: {size} of {expected} bytes")
        declared = riff_size(head)
        if declared is not None and declared != size:
            raise httpx.ReadError(f"WAV file cut short: {size} of the {declared} bytes its header declares")
        return Downloaded(size, response.headers.get("content-type", ""))


def riff_size(head: bytes) -> int | None:
    """The file size a RIFF/WAVE header declares (``None`` for any other format): a stored object
    cut short whose ``Content-Length`` matches what is left is still caught."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    return int.from_bytes(head[4:8], "little") + 8


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, httpx.UnsupportedProtocol):  # file://, ftp://: no retry makes it a web link
        return False
    if isinstance(exc, httpx.TransportError | _Expired):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and is_retryable_status(status)


def download(
    locate: Callable[[], Located | None],
    storage: httpx.Client,
    sinks: SinkFactory,
    *,
    policy: RetryPolicy,
    log: Any,
    what: str,
) -> Downloaded | None:
    """Locate and fetch one recording into a fresh sink per attempt; ``None`` when there is none."""
    attempts = Attempts(policy)
    while True:
        located = locate()
        if located is None:
            return None
        try:
            with sinks() as sink:
                if located.url is None:
                    sink.write(located.body or b"")
                    return Downloaded(len(located.body or b""), "")
                return fetch(storage, located.url, sink)
        except (httpx.TransportError, _Expired, VapiResponseError) as exc:
            if not _retryable(exc):
                if isinstance(exc, httpx.UnsupportedProtocol):  # the scheme only: a link may be presigned
                    scheme = httpx.URL(located.url or "").scheme or "no"
                    raise VapiResponseError(
                        f"Vapi's link to {what} is not an http(s) link ({scheme} scheme): it was not "
                        "fetched, and is not asked for again.",
                        method="GET",
                    ) from None
                raise
            delay = attempts.next_delay(None)
            if delay is None:
                raise VapiConnectionError(
                    f"Could not download {what} after {attempts.attempt} attempts: {type(exc).__name__}.",
                    method="GET",
                ) from None
            log.warning("Downloading %s failed (%s); asking again in %.1fs", what, type(exc).__name__, delay)
            time.sleep(delay)
