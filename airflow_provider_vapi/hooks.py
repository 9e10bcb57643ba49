"""Public import path of the hook: ``from airflow_provider_vapi.hooks import VapiHook``.

A face, nothing more: the hook lives in :mod:`airflow_provider_vapi.hook.core`, on the wire layer
(:mod:`airflow_provider_vapi.wire`) and importing no feature (``ARCHITECTURE.md``). Campaigns and
structured outputs wrap a hook: :class:`~airflow_provider_vapi.campaigns.api.CampaignApi` and
:class:`~airflow_provider_vapi.structured_outputs.api.StructuredOutputApi`.
"""

from __future__ import annotations

from airflow_provider_vapi.hook.core import DEFAULT_BASE_URL, VapiHook
from airflow_provider_vapi.wire.retries import RetryPolicy

__all__ = ["DEFAULT_BASE_URL", "RetryPolicy", "VapiHook"]
