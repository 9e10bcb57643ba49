"""``endedReason`` -> outcome: every value in the spec, and new values of known families."""

from __future__ import annotations

import collections
import logging

import pytest

from airflow_provider_vapi.models.outcomes import CallOutcome, classify_ended_reason
from tests.shared_data import ended_reasons


def test_every_spec_ended_reason_is_classified() -> None:
    reasons = ended_reasons()
    outcomes = {reason: classify_ended_reason(reason) for reason in reasons}
    assert not [r for r, o in outcomes.items() if o is CallOutcome.UNKNOWN]
    counts = collections.Counter(outcomes.values())
    assert all(counts[o] for o in CallOutcome if o is not CallOutcome.UNKNOWN), counts


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("customer-ended-call", CallOutcome.COMPLETED),
        ("assistant-ended-call", CallOutcome.COMPLETED),
        ("assistant-said-end-call-phrase", CallOutcome.COMPLETED),
        ("assistant-ended-call-after-message-spoken", CallOutcome.COMPLETED),
        ("assistant-forwarded-call", CallOutcome.COMPLETED),
        ("exceeded-max-duration", CallOutcome.COMPLETED),
        ("silence-timed-out", CallOutcome.COMPLETED),
        ("customer-ended-call-during-transfer", CallOutcome.COMPLETED),
        ("call.in-progress.twilio-completed-call", CallOutcome.COMPLETED),
        ("customer-busy", CallOutcome.NOT_REACHED),
        ("customer-did-not-answer", CallOutcome.NOT_REACHED),
        ("twilio-failed-to-connect-call", CallOutcome.NOT_REACHED),
        ("twilio-reported-customer-misdialed", CallOutcome.NOT_REACHED),
        ("vonage-rejected", CallOutcome.NOT_REACHED),
        ("call.in-progress.error-sip-outbound-call-failed-to-connect", CallOutcome.NOT_REACHED),
        ("voicemail", CallOutcome.VOICEMAIL),
        ("manually-canceled", CallOutcome.CANCELED),
        ("scheduled-call-deleted", CallOutcome.CANCELED),
        ("call-deleted", CallOutcome.CANCELED),
        ("call.start.error-subscription-concurrency-limit-reached", CallOutcome.ERROR),
        ("call.start.error-get-assistant", CallOutcome.ERROR),
        ("pipeline-error-openai-llm-failed", CallOutcome.ERROR),
        ("call.in-progress.error-vapifault-openai-llm-failed", CallOutcome.ERROR),
        ("call.in-progress.error-warm-transfer-assistant-cancelled", CallOutcome.ERROR),
        ("assistant-request-returned-error", CallOutcome.ERROR),
        # new values of known families (not in the spec today)
        ("pipeline-error-newvoice-voice-failed", CallOutcome.ERROR),
        ("call.start.error-something-new", CallOutcome.ERROR),
        ("call.in-progress.error-providerfault-newllm-500-server-error", CallOutcome.ERROR),
        ("telnyx-failed-to-connect-call", CallOutcome.NOT_REACHED),
        ("customer-ended-call-while-on-hold", CallOutcome.COMPLETED),
        ("call.forwarding.operator-declined", CallOutcome.COMPLETED),
        ("voicemail-full", CallOutcome.VOICEMAIL),
        ("campaign-canceled", CallOutcome.CANCELED),
        ("something-nobody-has-seen", CallOutcome.UNKNOWN),
        (None, CallOutcome.UNKNOWN),
    ],
)
def test_outcome_families(reason: str | None, outcome: CallOutcome) -> None:
    assert classify_ended_reason(reason) is outcome


def test_an_unknown_family_is_logged_for_whoever_updates_the_table(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_vapi.models.outcomes"):
        assert classify_ended_reason("zebra-crossing") is CallOutcome.UNKNOWN
    assert "'zebra-crossing' belongs to no known family" in caplog.text
