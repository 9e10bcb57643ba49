"""Vapi campaigns (``/v2/campaign``): thousands of people in one request, paced by Vapi.

The flow, one module each:

* :mod:`.request`: the ``POST /v2/campaign`` body from the operator's parameters, checked before
  anything is sent (and :func:`chunks`, for lists over Vapi's 10,000);
* :mod:`.models`: what Vapi answers (the campaign with its counters, its contacts);
* :mod:`.api`: ``VapiHook().campaigns``: create, read, cancel, page through contacts; the create
  that never makes a second campaign is :mod:`airflow_provider_vapi.campaigns.once`'s;
* :mod:`.operator` (``RunCampaignOperator``) and :mod:`.sensor` (``CampaignStatusSensor``) wait
  through :mod:`.waiting`, in the worker or deferred to :mod:`.trigger` (``CampaignStatusTrigger``);
* :mod:`.contacts`: ``LoadCampaignContactsOperator``, every contact into a SQL table.

The operators are importable from :mod:`airflow_provider_vapi.operators`, the sensor from
:mod:`airflow_provider_vapi.sensors`, the trigger from :mod:`airflow_provider_vapi.triggers`.
"""

from __future__ import annotations

from airflow_provider_vapi.campaigns.request import MAX_CUSTOMERS, chunks

__all__ = ["MAX_CUSTOMERS", "chunks"]
