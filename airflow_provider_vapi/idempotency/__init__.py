"""Idempotency: why a retry never dials a person twice, all in one package.

Vapi has no idempotency key of its own, so the provider carries one in the call's metadata, which
Vapi echoes back on the ``Call``. This package owns every part of that:

* **the key** (:func:`task_key`): ``<dag>/<run>/<task>/<map index>``, the same for every try of one
  task instance; a batch's customers get ``<key>:<i>`` (:func:`batch_key`) and a deliberate redial
  ``<key>~<try>`` (:func:`redial_key`); :func:`carries_key` matches all three forms;
* **writing it** into a request (:func:`keyed_body`): single, batch, squad and workflow calls;
* **reading it** back from a ``Call`` (:func:`key_of`);
* **whose call it is** (:func:`same_person`): a call is reused only by a request for the same
  customer, so an upstream list that changed between tries never hands Bob Alice's call;
* **the reconciliation after an ambiguous failure** (:func:`create_op`): a create that timed out,
  lost its connection or got a 5xx may have made the call, or may still make it; it is looked for
  by its key until it can no longer appear (``create_settle_seconds``) before it is ever resent,
  and a lost batch answer still accounts for every customer;
* **a retry or clear of the task** (:func:`earlier_calls`, :func:`settle_earlier_creates`,
  :func:`key_for_try`, :func:`remember`): the ids an earlier try saved in the task state store,
  else the calls on Vapi's side carrying the key, over the whole dag run.
* **campaigns** (:mod:`.campaign`): the same key as a tag in the campaign's name (a campaign has no
  metadata), the create that is never sent twice, and what a retried or cleared task re-attaches to.

The operations here follow the hook's generator protocol (:mod:`airflow_provider_vapi.transport`).

Its modules: :mod:`.keys` (the key, where it travels, whose call it is), :mod:`.create` (the
create that never sends again while an earlier attempt may still make the call), :mod:`.retry`
(what a retried or cleared task re-attaches to), :mod:`.campaign` (all of it, for campaigns). Import
the call names from here.
"""

from __future__ import annotations

from airflow_provider_vapi.idempotency.create import (
    ANSWERED_SETTLE,
    RECONCILE_LOOKBACK,
    create_op,
    find_op,
)
from airflow_provider_vapi.idempotency.keys import (
    IDEMPOTENCY_METADATA_KEY,
    batch_key,
    carries_key,
    intended_customer,
    key_of,
    keyed_body,
    narrowing,
    redial_key,
    same_person,
    task_key,
)
from airflow_provider_vapi.idempotency.retry import (
    REDIALABLE,
    SENT_KEY,
    STATE_KEY,
    earlier_calls,
    key_for_try,
    note_sending,
    remember,
    run_began,
    settle_earlier_creates,
)

__all__ = [
    "ANSWERED_SETTLE",
    "IDEMPOTENCY_METADATA_KEY",
    "RECONCILE_LOOKBACK",
    "REDIALABLE",
    "SENT_KEY",
    "STATE_KEY",
    "batch_key",
    "carries_key",
    "create_op",
    "earlier_calls",
    "find_op",
    "intended_customer",
    "key_for_try",
    "key_of",
    "keyed_body",
    "narrowing",
    "note_sending",
    "redial_key",
    "remember",
    "run_began",
    "same_person",
    "settle_earlier_creates",
    "task_key",
]
