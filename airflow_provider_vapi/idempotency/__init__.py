"""Idempotency: the key every create carries, and the create that is never sent twice.

Vapi has no idempotency key of its own, so the provider carries one in the call's metadata, which
Vapi echoes back on the ``Call``. This package, under the hook, owns the key and the create:

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
  :data:`BATCH_MAX` customers so that a lost answer can always be looked up.

Above the hook, the features use it: a retried, cleared or moved task's calls are
:mod:`airflow_provider_vapi.placing`'s (:mod:`~airflow_provider_vapi.placing.place`,
:mod:`~airflow_provider_vapi.placing.retry`); a campaign, whose key travels as a tag in its name,
is :mod:`airflow_provider_vapi.campaigns.once`'s.

Every lookup of what an earlier try made starts :data:`~airflow_provider_vapi.wire.skew.CLOCK_SKEW`
earlier than Airflow's clock says: Vapi's clock may be behind. The operations here follow the hook's
generator protocol (:mod:`airflow_provider_vapi.wire.transport`) and reach the hook through the
:class:`~.create.CallsApi` protocol, never by importing it.
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

__all__ = [
    "ANSWERED_SETTLE",
    "BATCH_MAX",
    "IDEMPOTENCY_METADATA_KEY",
    "Match",
    "batch_key",
    "call_key",
    "carries_key",
    "create_op",
    "find_op",
    "key_of",
    "keyed_body",
    "narrowing",
    "person_key",
    "redial_key",
    "same_person",
    "task_key",
    "tokens",
]
