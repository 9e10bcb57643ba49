"""Faults at the HTTP client boundary: an ``httpx`` transport under the hook's own client.

The provider's code runs unchanged; only what crosses the wire is disturbed, the way a network, a
gateway or a dying worker would:

* ``500``/``503``/``429``: answered at once by the "gateway", the request never reaches Vapi;
  ``502``: the request reaches Vapi half of the time, the answer is a 502 either way;
* ``drop`` (lost answer): the request reaches Vapi and takes effect, the connection then breaks;
* ``late`` (an answer 1x-6x slower than the timeout): Vapi processes the request only that much
  later (a thread sends it then); the client times out first;
* ``stall``: Vapi processes it at once, its answer comes 1x-6x the timeout later (the client
  times out);
* ``garbage:*``: Vapi processes it; the 2xx answer's body is HTML, ``null`` or cut in half;
* a kill before a request (nothing sent) or after it (it took effect, nobody read the answer):
  :class:`WorkerKilled`, a ``BaseException`` as nothing of the provider may catch a dead worker.

A real kill cannot happen inside a process; raising out of the transport is the closest honest
stand-in: the task's code stops where the worker would have.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import httpx

from tests.simulation.plan import TryFate


class WorkerKilled(BaseException):
    """The worker running this try died (SIGKILL, OOM, a lost node)."""


class InFlight:
    """The requests Vapi will still process later (``late`` faults): waited for before a clear
    days later (by then they had long landed) and before the invariants are judged."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def send_later(self, request: httpx.Request, delay: float) -> None:
        content = request.read()

        def send() -> None:
            time.sleep(delay)
            copy = httpx.Request(request.method, request.url, headers=request.headers, content=content)
            with httpx.HTTPTransport() as transport, contextlib.suppress(httpx.HTTPError):
                transport.handle_request(copy).read()

        thread = threading.Thread(target=send, daemon=True, name="vapi-sim-late")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def drain(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(30)


class FaultyTransport(httpx.BaseTransport):
    """Counts the requests of one try and applies its :class:`~.plan.TryFate` to them."""

    def __init__(
        self,
        fate: TryFate,
        in_flight: InFlight,
        *,
        on_request: Callable[[int, str, str], None] | None = None,
    ) -> None:
        self.fate = fate
        self.in_flight = in_flight
        self.on_request = on_request
        self.inner = httpx.HTTPTransport()
        self.count = 0
        self.trace: list[str] = []

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        number, method, path = self.count, request.method, request.url.path
        if self.on_request is not None:
            self.on_request(number, method, path)
        fate = self.fate
        if fate.kill_at == number and not fate.kill_after:
            self.trace.append(f"#{number} {method} {path}: killed before sending")
            raise WorkerKilled(f"killed before request {number}")
        fault = fate.fault_for(number, method, path)
        action = fault[0] if fault else "ok"
        self.trace.append(f"#{number} {method} {path}: {action}")
        try:
            response = self._apply(request, fault)
        except httpx.TransportError:
            if fate.kill_at == number:
                raise WorkerKilled(f"killed after request {number}") from None
            raise
        if fate.kill_at == number:
            raise WorkerKilled(f"killed after request {number}")
        return response

    def _apply(self, request: httpx.Request, fault: tuple[str, float] | None) -> httpx.Response:
        if fault is None:
            return self._send(request)
        action, factor = fault
        timeout = self.fate.timeout
        if action in ("500", "503", "429"):
            headers = {"Retry-After": "0.05"} if action == "429" else {}
            return httpx.Response(int(action), json={"message": "gateway"}, headers=headers, request=request)
        if action == "502":
            if factor > 3.5:  # about half of the time the request got through
                self._send(request)
            return httpx.Response(502, text="Bad Gateway", request=request)
        if action == "drop":
            self._send(request)
            raise httpx.RemoteProtocolError(
                "peer closed connection without a complete answer", request=request
            )
        if action == "late":
            self.in_flight.send_later(request, factor * timeout)
            time.sleep(timeout)
            raise httpx.ReadTimeout("timed out (Vapi is still working on it)", request=request)
        if action == "stall":
            self._send(request)
            time.sleep(timeout)
            raise httpx.ReadTimeout("timed out (the answer is on its way)", request=request)
        response = self._send(request)
        if not response.is_success:
            return response
        kind = action.partition(":")[2]
        body = {"html": b"<html>upstream</html>", "null": b"null"}.get(
            kind, response.content[: len(response.content) // 2]
        )
        content_type = "text/html" if kind == "html" else "application/json"
        return httpx.Response(
            response.status_code, content=body, headers={"content-type": content_type}, request=request
        )

    def close(self) -> None:
        self.inner.close()
