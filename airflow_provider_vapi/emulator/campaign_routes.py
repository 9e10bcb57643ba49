"""Vapi's ``/v2/campaign`` routes (see :mod:`.campaigns`) and the admin routes that read campaigns
without being recorded (``/_emulator/campaigns...``: the same answers as the Vapi routes, with
counters by default). The v1 ``/campaign`` routes are not emulated."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .asgi import json_response
from .constants import ADMIN_PREFIX
from .engine import Engine
from .listing import parse_contact_query, parse_counters_flag
from .route_helpers import base_url, check_uuid, list_query, object_body

_OBJECT = ["body must be an object"]


def add_campaign_routes(app: FastAPI, engine: Engine) -> None:
    """``POST``/``GET /v2/campaign``, ``GET``/``PATCH``/``DELETE /v2/campaign/{id}`` and
    ``GET /v2/campaign/{id}/contacts``."""

    @app.post("/v2/campaign")
    async def create_campaign(request: Request) -> Response:
        body = await object_body(request, _OBJECT)
        return json_response(engine.create_campaign(body, base_url(request)), 201)

    @app.get("/v2/campaign")
    async def list_campaigns(request: Request) -> Response:
        return json_response(engine.list_campaigns(list_query("/v2/campaign", request)))

    @app.get("/v2/campaign/{campaign_id}")
    async def get_campaign(campaign_id: str, request: Request) -> Response:
        check_uuid(campaign_id)
        counters = parse_counters_flag(dict(request.query_params))
        return json_response(engine.get_campaign(campaign_id, counters))

    @app.patch("/v2/campaign/{campaign_id}")
    async def update_campaign(campaign_id: str, request: Request) -> Response:
        check_uuid(campaign_id)
        body = await object_body(request, _OBJECT)
        return json_response(engine.update_campaign(campaign_id, body))

    @app.delete("/v2/campaign/{campaign_id}")
    async def delete_campaign(campaign_id: str) -> Response:
        check_uuid(campaign_id)
        return json_response(engine.delete_campaign(campaign_id))

    @app.get("/v2/campaign/{campaign_id}/contacts")
    async def campaign_contacts(campaign_id: str, request: Request) -> Response:
        check_uuid(campaign_id)
        query = parse_contact_query(request.query_params.multi_items())
        return json_response(engine.campaign_contacts(campaign_id, query))


def add_campaign_admin_routes(app: FastAPI, engine: Engine) -> None:
    """``/_emulator/campaigns`` (a page of ``CampaignSummary``, counters included unless
    ``includeCounters=false``), ``/_emulator/campaigns/{id}`` and ``.../contacts``: what the Vapi
    routes answer, neither recorded nor open to faults (what tests read to check a campaign)."""

    @app.get(f"{ADMIN_PREFIX}/campaigns")
    async def admin_campaigns(request: Request) -> Response:
        query = list_query("/v2/campaign", request)
        query.flags.setdefault("includeCounters", True)
        return json_response(engine.list_campaigns(query))

    @app.get(f"{ADMIN_PREFIX}/campaigns/{{campaign_id}}")
    async def admin_campaign(campaign_id: str, request: Request) -> Response:
        params = dict(request.query_params)
        counters = parse_counters_flag(params) if "includeCounters" in params else True
        return json_response(engine.get_campaign(campaign_id, counters))

    @app.get(f"{ADMIN_PREFIX}/campaigns/{{campaign_id}}/contacts")
    async def admin_campaign_contacts(campaign_id: str, request: Request) -> Response:
        query = parse_contact_query(request.query_params.multi_items())
        return json_response(engine.campaign_contacts(campaign_id, query))
