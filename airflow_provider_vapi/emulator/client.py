"""A handle on a running emulator, for tests: the Vapi details plus the admin API as methods.

Works the same for an in-process server and a subprocess (it only speaks HTTP). Needs ``httpx``
(a dependency of the provider), nothing of FastAPI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx

from .client_faults import FaultControls
from .constants import (
    ADMIN_PREFIX,
    ASSISTANT_ID,
    CUSTOMER_ID,
    DEFAULT_API_KEY,
    DEFAULT_PUBLIC_KEY,
    PHONE_NUMBER_ID,
)


class EmulatorHandle(FaultControls):
    """What a test needs to talk to one emulator.

    Attributes: ``url`` (base URL, no trailing slash), ``api_key``, ``public_key`` (what a call's
    ``monitor.controlUrl`` wants when its assistant sets ``monitorPlan.controlAuthenticationEnabled``),
    ``assistant_id``, ``phone_number_id``, ``customer_id`` and ``headers`` (the bearer header, for
    the Vapi routes and the admin API alike: only ``/_emulator/health`` answers without it).
    """

    def __init__(
        self,
        url: str,
        api_key: str = DEFAULT_API_KEY,
        timeout: float = 10.0,
        *,
        public_key: str = DEFAULT_PUBLIC_KEY,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.public_key = public_key
        self.assistant_id = ASSISTANT_ID
        self.phone_number_id = PHONE_NUMBER_ID
        self.customer_id = CUSTOMER_ID
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self._admin = httpx.Client(
            base_url=f"{self.url}{ADMIN_PREFIX}", headers=self.headers, timeout=timeout
        )

    def __repr__(self) -> str:
        return f"EmulatorHandle(url={self.url!r})"

    def close(self) -> None:
        """Close the admin connection pool."""
        self._admin.close()

    # -- Vapi side ------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on the Vapi routes with the bearer key set (caller closes it)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, **{"timeout": 10.0, **kwargs})

    def call_body(self, number: str = "+15550001234", **fields: Any) -> dict[str, Any]:
        """A valid ``POST /call`` body using the seeded assistant and phone number."""
        body: dict[str, Any] = {
            "assistantId": self.assistant_id,
            "phoneNumberId": self.phone_number_id,
            "customer": {"number": number},
        }
        body.update(fields)
        return body

    def create_call(self, number: str = "+15550001234", **fields: Any) -> dict[str, Any]:
        """``POST /call`` with :meth:`call_body` (recorded like any client request); the Call."""
        with self.client() as http:
            answer = http.post("/call", json=self.call_body(number, **fields))
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def create_structured_output(self, name: str, schema: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """``POST /structured-output`` (recorded like any client request) with ``name``, ``schema``
        and any other ``CreateStructuredOutputDTO`` fields; the ``StructuredOutput``. Attach it to
        calls with ``assistantOverrides={"artifactPlan": {"structuredOutputIds": [its id]}}``."""
        with self.client() as http:
            answer = http.post("/structured-output", json={"name": name, "schema": schema, **fields})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def structured_outputs(self) -> list[dict[str, Any]]:
        """Every saved structured output, newest first (``GET /structured-output``, page by page;
        recorded like any client request)."""
        found: list[dict[str, Any]] = []
        with self.client() as http:
            page = 1
            while True:
                answer = http.get("/structured-output", params={"limit": 1000, "page": page})
                answer.raise_for_status()
                data = answer.json()
                found.extend(data["results"])
                if not data["metadata"].get("hasNextPage"):
                    return found
                page += 1

    def run_structured_output(
        self,
        call_ids: list[str],
        structured_output_id: str | None = None,
        *,
        structured_output: dict[str, Any] | None = None,
        preview: bool = False,
    ) -> dict[str, Any]:
        """``POST /structured-output/run`` (recorded like any client request): a saved output by id
        or an inline one, on calls that have ended; the preview's results, or the rerun answer
        (the results land on the calls after the structured-output delay)."""
        body: dict[str, Any] = {"callIds": call_ids, "previewEnabled": preview}
        if structured_output_id is not None:
            body["structuredOutputId"] = structured_output_id
        if structured_output is not None:
            body["structuredOutput"] = structured_output
        with self.client() as http:
            answer = http.post("/structured-output/run", json=body)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def campaign_body(self, numbers: Sequence[str], **fields: Any) -> dict[str, Any]:
        """A valid ``POST /v2/campaign`` body calling ``numbers`` with the seeded assistant and line."""
        body: dict[str, Any] = {
            "name": "emulator campaign",
            "assistantId": self.assistant_id,
            "phoneNumberId": self.phone_number_id,
            "customers": [{"number": number} for number in numbers],
        }
        body.update(fields)
        return body

    def create_campaign(self, numbers: Sequence[str], **fields: Any) -> dict[str, Any]:
        """``POST /v2/campaign`` with :meth:`campaign_body` (recorded like any client request);
        the ``Campaign``."""
        with self.client() as http:
            answer = http.post("/v2/campaign", json=self.campaign_body(numbers, **fields))
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def end_call(self, call_id: str) -> None:
        """End a live call through its ``monitor.controlUrl`` (ends ``manually-canceled``), with the
        public key (needed once the assistant sets ``monitorPlan.controlAuthenticationEnabled``)."""
        control_url = self.call(call_id)["monitor"]["controlUrl"]
        auth = {"Authorization": f"Bearer {self.public_key}"}
        httpx.post(control_url, json={"type": "end-call"}, headers=auth, timeout=10.0).raise_for_status()

    def backdate_call(self, call_id: str, seconds: float) -> dict[str, Any]:
        """Move the call's timestamps ``seconds`` into the past (admin API), as if placed then."""
        result: dict[str, Any] = self._send("POST", f"/calls/{call_id}/backdate", {"seconds": seconds})
        return result

    # -- admin side -----------------------------------------------------------------------------

    def _get(self, route: str, **params: Any) -> Any:
        answer = self._admin.get(route, params={k: v for k, v in params.items() if v is not None})
        answer.raise_for_status()
        return answer.json()

    def _send(self, method: str, route: str, body: Any = None) -> Any:
        answer = self._admin.request(method, route, json=body)
        answer.raise_for_status()
        return answer.json()

    def health(self) -> dict[str, Any]:
        """``GET /_emulator/health``."""
        result: dict[str, Any] = self._get("/health")
        return result

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Recorded Vapi-API requests (and presigned storage downloads, ``/_storage/*``), oldest
        first: ``{method, path, query, body, fingerprints, status, timestamp, fault,
        authorization}``. ``path`` is exact, or a prefix when it ends in ``*``. Bodies have their
        secrets replaced with ``"***"``; ``fingerprints`` maps each one's path to
        :func:`~.redaction.fingerprint` of the secret (compare with ``fingerprint("the-secret")``);
        ``authorization`` is whether an ``Authorization`` header was sent (never its value)."""
        result: list[dict[str, Any]] = self.request_log(method, path)["requests"]
        return result

    def request_log(self, method: str | None = None, path: str | None = None) -> dict[str, Any]:
        """``GET /_emulator/requests``: ``{requests, dropped, refused, limit, limitBytes, bytes}``:
        since the log was cleared, the oldest entries its bounds ``dropped`` and the requests
        ``refused`` for want of a valid key (a line each, no body); ``bytes``: the entries' memory."""
        result: dict[str, Any] = self._get("/requests", method=method, path=path)
        return result

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._send("DELETE", "/requests")

    def reset(self) -> None:
        """Back to the seeds: no calls, no recorded requests, no faults, start-up config."""
        self._send("POST", "/reset")

    def configure(
        self,
        *,
        speed: float | None = None,
        concurrency_limit: int | None = None,
        concurrency_mode: str | None = None,
        analysis_delay: float | None = None,
        structured_output_delay: float | None = None,
        presigned_url_ttl: float | None = None,
        clock_offset: float | None = None,
    ) -> dict[str, Any]:
        """Change run-time settings (``None`` keeps one); returns the whole config. Durations of
        calls already created do not change (a structured-output run takes the delay in force);
        ``presigned_url_ttl`` (real seconds, not divided by the speed) applies to URLs signed from
        now on; ``clock_offset``: see :meth:`set_clock_offset`."""
        changes = {
            "speed": speed,
            "concurrencyLimit": concurrency_limit,
            "concurrencyMode": concurrency_mode,
            "analysisDelaySeconds": analysis_delay,
            "structuredOutputDelaySeconds": structured_output_delay,
            "presignedUrlTtlSeconds": presigned_url_ttl,
            "clockOffsetSeconds": clock_offset,
        }
        result: dict[str, Any] = self._send(
            "PATCH", "/config", {k: v for k, v in changes.items() if v is not None}
        )
        return result

    def config(self) -> dict[str, Any]:
        """The current run-time settings."""
        result: dict[str, Any] = self._get("/config")
        return result

    def calls(self) -> list[dict[str, Any]]:
        """Every call, oldest first (admin view: not recorded, no limit)."""
        result: list[dict[str, Any]] = self._get("/calls")
        return result

    def call(self, call_id: str) -> dict[str, Any]:
        """One call as ``GET /call/{id}`` would answer it (not recorded)."""
        result: dict[str, Any] = self._get(f"/calls/{call_id}")
        return result

    def _pages(self, route: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated admin route, page after page of 1,000."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self._get(route, limit=1000, page=page, **params)
            found.extend(data["results"])
            if not data["metadata"].get("hasNextPage"):
                return found
            page += 1

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign (``CampaignSummary`` with counters), oldest first (admin, not recorded)."""
        return self._pages("/campaigns", sortOrder="ASC")

    def campaign(self, campaign_id: str, include_counters: bool = True) -> dict[str, Any]:
        """One campaign as ``GET /v2/campaign/{id}`` answers it (admin view: not recorded)."""
        result: dict[str, Any] = self._get(
            f"/campaigns/{campaign_id}", includeCounters=str(include_counters).lower()
        )
        return result

    def campaign_contacts(
        self, campaign_id: str, status: str | list[str] | None = None, sort_by: str | None = None
    ) -> list[dict[str, Any]]:
        """Every contact of a campaign (``CampaignContactWithOutcome``), in position order unless
        ``sort_by="status"``, only those in ``status`` if given (admin view: not recorded)."""
        return self._pages(f"/campaigns/{campaign_id}/contacts", status=status, sortBy=sort_by)

    def wait_for_campaign(
        self,
        campaign_id: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        timeout: float = 30.0,
        interval: float = 0.02,
    ) -> dict[str, Any]:
        """Poll (admin view, with counters) until ``predicate(campaign)`` holds, by default until
        it is over: ``ended``, or ``cancelled`` with none of its calls still under way; returns
        the ``CampaignSummary``, or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.campaign(campaign_id)
            if predicate is not None:
                done = predicate(found)
            else:
                over = found["status"] in ("ended", "cancelled")
                done = over and found["contactCounters"]["dispatched"] == 0
            if done:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"campaign {campaign_id} is still {found['status']} after {timeout}s")
            time.sleep(interval)

    def inject_inbound_call(
        self,
        number: str = "+15550001234",
        *,
        phone_number_id: str | None = None,
        assistant_id: str | None = None,
        ended: bool = False,
        name: str | None = None,
        customer: dict[str, Any] | None = None,
        assistant_overrides: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /_emulator/calls/inbound``: a customer at ``number`` calls the line
        ``phone_number_id`` (default: the seeded one) answered by ``assistant_id`` (default: the
        seeded one); the ``Call`` (``type: "inboundPhoneCall"``). The call goes through the normal
        lifecycle (the last four digits of ``number`` script its outcome, as for outbound calls;
        it shares the concurrency limit), or, with ``ended``, has just ended with all its content.
        ``customer``: more ``customer`` fields (``name``, ``externalId``...)."""
        body: dict[str, Any] = {"number": number, "ended": ended}
        optional = {
            "phoneNumberId": phone_number_id,
            "assistantId": assistant_id,
            "name": name,
            "customer": customer,
            "assistantOverrides": assistant_overrides,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        result: dict[str, Any] = self._send("POST", "/calls/inbound", body)
        return result

    def seed_calls(
        self,
        count: int,
        start: str | datetime,
        end: str | datetime,
        *,
        assistant_id: str | None = None,
        phone_number_id: str | None = None,
        campaign_id: str | None = None,
        call_type: str = "outboundPhoneCall",
        recording: bool = True,
        ids: bool = False,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """``POST /_emulator/calls/seed``: ``count`` calls that have already ended, the ``i``-th
        (0-based) last updated at ``start + floor(i * (end - start) / count)`` (ms; ``createdAt``
        and ``endedAt`` a little before). Each has realistic content (a mix of outcomes, messages,
        analysis, costs, a recording unless ``recording=False``) and ``campaignId`` when given.
        ``call_type``: ``"outboundPhoneCall"``, ``"inboundPhoneCall"`` or ``"mixed"`` (one in four
        inbound). ``start``/``end``: ISO 8601 strings or datetimes (naive: UTC). Returns
        ``{count, firstId, lastId}``, plus ``ids`` (in ``updatedAt`` order) with ``ids=True``."""
        body: dict[str, Any] = {
            "count": count,
            "start": start.isoformat() if isinstance(start, datetime) else start,
            "end": end.isoformat() if isinstance(end, datetime) else end,
            "type": call_type,
            "recording": recording,
            "returnIds": ids,
        }
        optional = {"assistantId": assistant_id, "phoneNumberId": phone_number_id, "campaignId": campaign_id}
        body.update({k: v for k, v in optional.items() if v is not None})
        answer = self._admin.post("/calls/seed", json=body, timeout=timeout)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def wait_for(
        self,
        call_id: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        status: str | None = "ended",
        analysis: bool = False,
        structured_outputs: bool = False,
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> dict[str, Any]:
        """Poll (admin view) until the call has ``status`` (and ``analysis``, and
        ``artifact.structuredOutputs``, if asked) or ``predicate(call)`` holds; returns the call,
        or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            call = self.call(call_id)
            if predicate is not None:
                done = predicate(call)
            else:
                done = (
                    (status is None or call["status"] == status)
                    and (not analysis or "analysis" in call)
                    and (not structured_outputs or "structuredOutputs" in call.get("artifact", {}))
                )
            if done:
                return call
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {call_id} is still {call['status']} after {timeout}s")
            time.sleep(interval)
