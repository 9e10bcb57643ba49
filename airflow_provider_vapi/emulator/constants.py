"""Fixed identifiers and defaults of the emulator, in one place so docs and examples can name them.

Everything here is stable across releases: tests, example DAGs and the README refer to these values.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
#: The API key the emulator accepts when started without ``--api-key``.
DEFAULT_API_KEY = "vapi-emulator-key"
#: The public key the emulator accepts when started without ``--public-key``: what a call's
#: ``monitor.controlUrl`` (and ``listenUrl``) wants once its assistant sets
#: ``monitorPlan.controlAuthenticationEnabled`` (``listenAuthenticationEnabled``). Never the API key.
DEFAULT_PUBLIC_KEY = "vapi-emulator-public-key"

#: The organisation every seeded and created object belongs to.
ORG_ID = "0a4e1b5c-0000-4000-8000-00000000e0e0"
#: The seeded assistant (an appointment-confirmation assistant with a structured-data schema).
ASSISTANT_ID = "a55157a0-0000-4000-8000-000000000001"
#: The seeded Twilio phone number (the caller line).
PHONE_NUMBER_ID = "b0b0f0e0-0000-4000-8000-000000000001"
#: The seeded customer, usable as ``customerId`` in ``POST /call``.
CUSTOMER_ID = "c0570e70-0000-4000-8000-000000000001"

#: The seeded phone number's E.164 number and the seeded customer's number.
PHONE_NUMBER = "+15550100100"
CUSTOMER_NUMBER = "+15550109999"

#: Calls that may be live at once (Vapi's default per account).
DEFAULT_CONCURRENCY_LIMIT = 10
#: ``queue``: calls over the limit wait ``queued``; ``reject``: they end at once.
CONCURRENCY_MODES = ("queue", "reject")
#: Seconds (at speed 1) between ``ended`` and the analysis appearing on the call.
DEFAULT_ANALYSIS_DELAY_S = 3.0
#: Seconds (at speed 1) between ``ended`` (or a ``POST /structured-output/run``) and the structured
#: outputs appearing on the call.
DEFAULT_STRUCTURED_OUTPUT_DELAY_S = DEFAULT_ANALYSIS_DELAY_S
#: How many Vapi-API requests the admin request log keeps (oldest dropped first).
DEFAULT_REQUEST_LOG_SIZE = 10_000
#: How many bytes of memory the request log's entries hold at most (oldest dropped first).
DEFAULT_REQUEST_LOG_BYTES = 64 * 1024 * 1024

#: Real seconds (never divided by the speed) a presigned recording URL stays valid.
DEFAULT_PRESIGNED_URL_TTL_S = 600.0
#: Prefix of the presigned storage routes (not Vapi's API: capability URLs, no API key; S3-like).
STORAGE_PREFIX = "/_storage"

#: Prefix of the emulator's own admin API (never part of Vapi's API, never recorded).
ADMIN_PREFIX = "/_emulator"
