"""Public import path of the triggers: ``from airflow_provider_vapi.triggers import ...``.

A face, nothing more: each trigger lives with its feature (``ARCHITECTURE.md``):
``CallStatusTrigger`` in :mod:`airflow_provider_vapi.waiting.trigger`, ``CampaignStatusTrigger`` in
:mod:`airflow_provider_vapi.campaigns.trigger`, ``VapiCallEventTrigger`` in
:mod:`airflow_provider_vapi.call_events.trigger`.
"""

from __future__ import annotations

from airflow_provider_vapi.call_events.trigger import VapiCallEventTrigger
from airflow_provider_vapi.campaigns.trigger import CampaignStatusTrigger
from airflow_provider_vapi.waiting.trigger import CallStatusTrigger

__all__ = ["CallStatusTrigger", "CampaignStatusTrigger", "VapiCallEventTrigger"]
