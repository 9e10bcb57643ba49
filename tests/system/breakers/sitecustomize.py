"""Break a guarantee on purpose, to show that the system tests catch it (mutation switch).

Loaded by every Airflow process of the system deployment (``PYTHONPATH``) only when the suite is
run with ``VAPI_SYSTEM_BREAK=<name>``; never touches the product's files. Names:

* ``skip_idempotency_lookup``: a retried PlaceCallOperator never looks for the call its earlier
  try placed (test_task_killed_between_call_created_and_id_saved must fail: two calls).
* ``blind_create_retry``: the hook never reconciles an ambiguous POST /call before sending it again
  (test_campaign_survives_429_5xx_and_dropped_connections must fail: doubled calls).
* ``no_trigger_on_kill``: the trigger's on_kill does nothing
  (test_marking_a_deferred_wait_failed_ends_the_call must fail: the call goes on).
* ``no_secret_masking``: the provider tells Airflow's log masker nothing
  (test_no_canary_is_stored_anywhere must fail: canaries in task logs and the Rendered tab).
* ``no_secret_redaction``: the provider's redacted copies keep every secret
  (test_no_canary_is_stored_anywhere must fail: canaries in XComs, export files, the warehouse).
"""

from __future__ import annotations

import os

_BREAK = os.environ.get("VAPI_SYSTEM_BREAK", "")

if _BREAK == "skip_idempotency_lookup":
    from airflow_provider_vapi.placing import place

    place.may_have_earlier = lambda context: False  # every try plans as a fresh run's first
elif _BREAK == "blind_create_retry":
    from airflow_provider_vapi.idempotency import create

    def _never_found(*args, **kwargs):  # type: ignore[no-untyped-def]
        return []
        yield  # a generator, like the original

    create.find_op = _never_found
elif _BREAK == "no_trigger_on_kill":
    from airflow_provider_vapi.triggers import CallStatusTrigger

    async def _nothing(self) -> None:  # type: ignore[no-untyped-def]
        return None

    CallStatusTrigger.on_kill = _nothing  # type: ignore[method-assign]
elif _BREAK == "no_secret_masking":
    from airflow_provider_vapi import secrets

    secrets.mask = lambda values: None
elif _BREAK == "no_secret_redaction":
    import copy

    from airflow_provider_vapi import secrets

    secrets.redact_secrets = copy.deepcopy
elif _BREAK:
    raise SystemExit(f"unknown VAPI_SYSTEM_BREAK={_BREAK!r}")
