"""Placing a task's calls: ``PlaceCallOperator``, each person of its list called once.

:mod:`.operator` (the operator), :mod:`.call_body` (its parameters to a ``POST /call`` body),
:mod:`.place` (each person once, whatever try, map index or position), :mod:`.retry` (what a
retried or cleared task may have made already, and when it may dial). The key and the create that
never sends twice are :mod:`airflow_provider_vapi.idempotency`'s, under the hook.
"""
