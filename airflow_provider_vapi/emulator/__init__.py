"""A local emulator of Vapi's call API, bundled for tests and demos (the role stripe-mock plays).

It is independent of the rest of ``airflow_provider_vapi`` (and the product never imports it) so
that it can catch the product's mistakes, with one exception: its request log hides secrets by the
product's own rule (:mod:`airflow_provider_vapi.secrets`, import-light), so that there is one list
of what is secret. Start it with ``vapi-emulator`` or
``python -m airflow_provider_vapi.emulator``; in tests use the pytest fixtures
(:mod:`.pytest_plugin`) or :class:`~.server.EmulatorServer` / :class:`~.server.EmulatorProcess`.

Importing this package is cheap (no FastAPI): the constants below are what docs and tests name.
"""

from __future__ import annotations

from .constants import (
    ASSISTANT_ID,
    CUSTOMER_ID,
    CUSTOMER_NUMBER,
    DEFAULT_API_KEY,
    DEFAULT_PORT,
    DEFAULT_PUBLIC_KEY,
    ORG_ID,
    PHONE_NUMBER,
    PHONE_NUMBER_ID,
)
from .outcomes import OUTCOMES, outcome_for

__all__ = [
    "ASSISTANT_ID",
    "CUSTOMER_ID",
    "CUSTOMER_NUMBER",
    "DEFAULT_API_KEY",
    "DEFAULT_PORT",
    "DEFAULT_PUBLIC_KEY",
    "ORG_ID",
    "OUTCOMES",
    "PHONE_NUMBER",
    "PHONE_NUMBER_ID",
    "outcome_for",
]
