"""Public import path of the sensors: ``from airflow_provider_vapi.sensors import ...``.

A face, nothing more: ``CallStatusSensor`` lives in :mod:`airflow_provider_vapi.waiting.sensor`,
``CampaignStatusSensor`` in :mod:`airflow_provider_vapi.campaigns.sensor` (``ARCHITECTURE.md``).
"""

from __future__ import annotations

from airflow_provider_vapi.campaigns.sensor import CampaignStatusSensor
from airflow_provider_vapi.waiting.sensor import CallStatusSensor

__all__ = ["CallStatusSensor", "CampaignStatusSensor"]
