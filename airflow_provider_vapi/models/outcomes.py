"""What a finished call amounted to: ``endedReason`` -> :class:`CallOutcome`.

Vapi lists well over a hundred ended reasons and adds new ones every few weeks, so a table alone would
leave a DAG branching on ``unknown`` the day a new value ships. Known values are looked up; anything
else is sorted into its family by pattern (``pipeline-error-*``, ``*-failed-to-connect-*`` ...).
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum
from typing import Final

__all__ = ["CallOutcome", "classify_ended_reason"]

logger = logging.getLogger(__name__)


class CallOutcome(StrEnum):
    """What a finished call amounted to, for branching in a DAG."""

    COMPLETED = "completed"  # a conversation happened
    NOT_REACHED = "not_reached"  # nobody picked up: busy, no answer, failed to connect, misdialed
    VOICEMAIL = "voicemail"
    CANCELED = "canceled"  # cancelled or deleted before or during the call
    ERROR = "error"  # never started, or the platform / a provider failed
    UNKNOWN = "unknown"  # no endedReason yet, or a value of no known family


#: Values whose family the patterns below would get wrong (or that name no family at all).
_OUTCOME_BY_REASON: Final[dict[str, CallOutcome]] = {
    **dict.fromkeys(
        (
            # Ended by the carrier / transport once the conversation was under way.
            "phone-call-provider-closed-websocket", "vonage-disconnected", "vonage-completed",
            "call.in-progress.twilio-completed-call", "call.in-progress.sip-completed-call",
            # The customer was talked to; only the transfer target was unreachable.
            "call.forwarding.operator-busy", "call.forwarding.no-answer",
        ),
        CallOutcome.COMPLETED,
    ),
    **dict.fromkeys(
        (
            "customer-busy", "customer-did-not-answer", "customer-did-not-give-microphone-permission",
            "twilio-failed-to-connect-call", "twilio-reported-customer-misdialed",
            "vonage-rejected", "vonage-failed-to-connect-call",
            "call.in-progress.error-sip-outbound-call-failed-to-connect",
            "call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable",
            "call.in-progress.error-providerfault-outbound-sip-408-request-timeout",
            "call.ringing.sip-inbound-caller-hungup-before-call-connect",
        ),
        CallOutcome.NOT_REACHED,
    ),
    "voicemail": CallOutcome.VOICEMAIL,
    **dict.fromkeys(("manually-canceled", "scheduled-call-deleted", "call-deleted"), CallOutcome.CANCELED),
    **dict.fromkeys(
        (
            "phone-call-provider-bypass-enabled-but-no-call-received", "assistant-join-timed-out",
            "worker-shutdown",
        ),
        CallOutcome.ERROR,
    ),
}  # fmt: skip

#: Families, in order, for values not listed above (Vapi adds new ones every few weeks).
_OUTCOME_RULES: Final[tuple[tuple[re.Pattern[str], CallOutcome], ...]] = tuple(
    (re.compile(pattern), outcome)
    for pattern, outcome in (
        (r"^call[.-]start[.-]error", CallOutcome.ERROR),  # never started (billing, fraud, lookups)
        (r"^pipeline-error", CallOutcome.ERROR),  # transcriber / model / voice provider failures
        (r"^call\.[a-z-]+\.error", CallOutcome.ERROR),  # call.in-progress.error-*, call.ringing.error-*
        (r"fault", CallOutcome.ERROR),  # *-vapifault-*, *-providerfault-*
        (r"^assistant-(request|not)-", CallOutcome.ERROR),  # assistant could not be resolved
        (r"^call\.forwarding\.", CallOutcome.COMPLETED),
        (
            r"busy|did-not-answer|no-answer|failed-to-connect|misdial|rejected|unreachable|hungup-before",
            CallOutcome.NOT_REACHED,
        ),
        (r"cancel|deleted", CallOutcome.CANCELED),
        (r"voicemail", CallOutcome.VOICEMAIL),
        (
            r"^(customer-ended-call|assistant-ended-call|assistant-said-|assistant-forwarded)"
            r"|exceeded-max-duration|silence-timed-out|completed|hook-executed",
            CallOutcome.COMPLETED,
        ),
        (r"error|fail|not-found|invalid|not-valid|timed-out|shutdown|died|limit", CallOutcome.ERROR),
    )
)


def classify_ended_reason(reason: str | None) -> CallOutcome:
    """Map an ``endedReason`` to a :class:`CallOutcome`; new values of a known family still classify."""
    if not reason:
        return CallOutcome.UNKNOWN
    known = _OUTCOME_BY_REASON.get(reason)
    if known is not None:
        return known
    for pattern, outcome in _OUTCOME_RULES:
        if pattern.search(reason):
            return outcome
    logger.debug("endedReason %r belongs to no known family", reason)
    return CallOutcome.UNKNOWN
