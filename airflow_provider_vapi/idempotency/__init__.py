"""Idempotency: why a retry never dials a person twice, all in one package.

Vapi has no idempotency key of its own, so the provider carries one in the call's metadata, which
Vapi echoes back on the ``Call``. This package owns every part of that:

* **the person, not the position, is the key** (:mod:`.persons`): within one dag run and task
  (:func:`task_key`, ``<dag>/<run>/<task>``: every map index and try together) each person is
  called at most once; a call carries ``<dag>/<run>/<task>|<person>`` (:func:`person_key`), a
  deliberate redial ``...~<try>`` (:func:`redial_key`); :func:`carries_key` matches every form;
* **writing it** into a request (:func:`keyed_body`): single, batch, squad and workflow calls;
* **reading it** back from a ``Call`` (:func:`key_of`);
* **the reconciliation after an ambiguous failure** (:func:`create_op`): a create that timed out,
  lost its connection or got a 5xx may have made the call, or may still make it; it is looked for
  by its key until it can no longer appear (``create_settle_seconds``) before it is ever resent; a
  lost batch answer still accounts for every customer, and a batch is sent in parts of at most
  :data:`BATCH_MAX` customers so that a lost answer can always be looked up;
* **a retry, a clear, a moved row** (:func:`plan_calls`, :func:`place_planned`): what this dag run's
  task already placed, from the task state store, else on Vapi by the key, matched person by
  person; only the persons without a call are called (a customer Vapi refused is asked for again,
  so a refusal that still stands keeps failing the task and names who);
* **campaigns** (:mod:`.campaign`): the key as a tag in the campaign's name (a campaign has no
  metadata), the create that is never sent twice, what a retried or cleared task re-attaches to,
  and customers already in another campaign of the task left out.

Every lookup of what an earlier try made starts :data:`~airflow_provider_vapi.skew.CLOCK_SKEW`
earlier than Airflow's clock says (:mod:`airflow_provider_vapi.skew`): Vapi's clock may be behind.

The operations here follow the hook's generator protocol (:mod:`airflow_provider_vapi.transport`).

Its modules: :mod:`.persons` (who a call is for), :mod:`.keys` (the key, where it travels),
:mod:`.create` (the create that never sends again while an earlier attempt may still make the
call), :mod:`.retry` (what may exist already, and where it is found), :mod:`.place` (each person of
a task's list once), :mod:`.campaign` (all of it, for campaigns). Import the call names from here.
"""

from __future__ import annotations

from airflow_provider_vapi.idempotency.create import (
    ANSWERED_SETTLE,
    BATCH_MAX,
    create_op,
    find_op,
)
from airflow_provider_vapi.idempotency.keys import (
    IDEMPOTENCY_METADATA_KEY,
    batch_key,
    call_key,
    carries_key,
    key_of,
    keyed_body,
    narrowing,
    redial_key,
    same_person,
    task_key,
)
from airflow_provider_vapi.idempotency.persons import Match, person_key, tokens
from airflow_provider_vapi.idempotency.place import CallPlan, place_planned, plan_calls
from airflow_provider_vapi.idempotency.retry import (
    REDIALABLE,
    SENT_KEY,
    STATE_KEY,
    may_have_earlier,
    note_sending,
    remember,
    run_began,
)

__all__ = [
    "ANSWERED_SETTLE",
    "BATCH_MAX",
    "IDEMPOTENCY_METADATA_KEY",
    "REDIALABLE",
    "SENT_KEY",
    "STATE_KEY",
    "CallPlan",
    "Match",
    "batch_key",
    "call_key",
    "carries_key",
    "create_op",
    "find_op",
    "key_of",
    "keyed_body",
    "may_have_earlier",
    "narrowing",
    "note_sending",
    "person_key",
    "place_planned",
    "plan_calls",
    "redial_key",
    "remember",
    "run_began",
    "same_person",
    "task_key",
    "tokens",
]
