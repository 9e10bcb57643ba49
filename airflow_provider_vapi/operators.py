"""Public import path of every operator: ``from airflow_provider_vapi.operators import ...``.

A face, nothing more: each operator lives in the feature package that owns it (``ARCHITECTURE.md``).
"""

from __future__ import annotations

from airflow_provider_vapi.campaigns.contacts import LoadCampaignContactsOperator
from airflow_provider_vapi.campaigns.operator import RunCampaignOperator
from airflow_provider_vapi.landing.export import ExportCallsOperator
from airflow_provider_vapi.landing.warehouse import LoadCallsOperator
from airflow_provider_vapi.placing.operator import PlaceCallOperator
from airflow_provider_vapi.structured_outputs.operator import RunStructuredOutputOperator

__all__ = [
    "ExportCallsOperator",
    "LoadCallsOperator",
    "LoadCampaignContactsOperator",
    "PlaceCallOperator",
    "RunCampaignOperator",
    "RunStructuredOutputOperator",
]
