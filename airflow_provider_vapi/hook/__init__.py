"""The hook: :class:`~airflow_provider_vapi.hook.core.VapiHook`, the one object that speaks HTTP to Vapi.

:mod:`.core` (calls: read, list, create once, end, delete; recordings; the connection),
:mod:`.resources` (assistants, phone numbers), :mod:`.links` (dashboard URLs and the extra links).
It stands on the wire layer and :mod:`airflow_provider_vapi.idempotency`, and imports no feature:
campaigns and structured outputs wrap a hook (``CampaignApi(hook)``, ``StructuredOutputApi(hook)``).
"""
