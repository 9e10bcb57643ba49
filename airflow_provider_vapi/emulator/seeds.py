"""The objects every emulator starts with (and returns to on reset)."""

from __future__ import annotations

import copy
from typing import Any

from .constants import (
    ASSISTANT_ID,
    CUSTOMER_ID,
    CUSTOMER_NUMBER,
    ORG_ID,
    PHONE_NUMBER,
    PHONE_NUMBER_ID,
)

SEED_TIME = "2025-01-01T00:00:00.000Z"

#: The structured-data schema of the seeded assistant: a boolean, an enum string, a date string
#: and an integer, all required.
APPOINTMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "confirmed": {"type": "boolean", "description": "Did the customer confirm the appointment?"},
        "outcome": {
            "type": "string",
            "enum": ["confirmed", "rescheduled", "cancelled", "no-decision"],
            "description": "What the customer decided.",
        },
        "appointmentDate": {"type": "string", "format": "date", "description": "The agreed date."},
        "partySize": {"type": "integer", "description": "How many people will come."},
    },
    "required": ["confirmed", "outcome", "appointmentDate", "partySize"],
}

_ASSISTANT: dict[str, Any] = {
    "id": ASSISTANT_ID,
    "orgId": ORG_ID,
    "name": "Appointment confirmation",
    "createdAt": SEED_TIME,
    "updatedAt": SEED_TIME,
    "firstMessage": "Hello, this is the clinic calling to confirm your appointment.",
    "transcriber": {"provider": "deepgram", "model": "nova-3", "language": "en"},
    "model": {
        "provider": "openai",
        "model": "gpt-4o",
        "messages": [
            {
                "role": "system",
                "content": "You confirm {{name}}'s appointment. Be brief and polite.",
            }
        ],
    },
    "voice": {"provider": "vapi", "voiceId": "Elliot"},
    "maxDurationSeconds": 600,
    "analysisPlan": {
        "summaryPlan": {"enabled": True},
        "structuredDataPlan": {"enabled": True, "schema": APPOINTMENT_SCHEMA},
        "successEvaluationPlan": {"enabled": True, "rubric": "PassFail"},
    },
}

_PHONE_NUMBER: dict[str, Any] = {
    "id": PHONE_NUMBER_ID,
    "orgId": ORG_ID,
    "provider": "twilio",
    "number": PHONE_NUMBER,
    "name": "Emulator line",
    "status": "active",
    "twilioAccountSid": "AC00000000000000000000000000000000",
    "createdAt": SEED_TIME,
    "updatedAt": SEED_TIME,
}

#: Customers that ``customerId`` can name (Vapi's customer objects are not otherwise emulated).
_CUSTOMERS: dict[str, dict[str, Any]] = {
    CUSTOMER_ID: {"number": CUSTOMER_NUMBER, "name": "Emulator Customer"},
}


def seed_assistants() -> dict[str, dict[str, Any]]:
    """A fresh copy of the seeded assistants, by id."""
    return {ASSISTANT_ID: copy.deepcopy(_ASSISTANT)}


def seed_phone_numbers() -> dict[str, dict[str, Any]]:
    """A fresh copy of the seeded phone numbers, by id."""
    return {PHONE_NUMBER_ID: copy.deepcopy(_PHONE_NUMBER)}


def seed_customers() -> dict[str, dict[str, Any]]:
    """A fresh copy of the seeded customers, by id."""
    return copy.deepcopy(_CUSTOMERS)
