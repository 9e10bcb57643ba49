"""THE table of scripted outcomes: the last four digits of ``customer.number`` pick what happens.

This is the only place outcomes are defined; the README prints it from here. Durations are in
seconds at speed 1 (``--speed X`` divides them). ``messages`` is how many transcript messages the
call produces once answered; below 2 Vapi skips analysis, so those calls never get ``analysis``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds a call stays ``queued`` once it has a concurrency slot, and default phase lengths.
QUEUE_S = 0.5
RING_S = 2.0
TALK_S = 6.0
#: The ``endedReason`` of a call a voicemail answered (answered, but by no human).
VOICEMAIL = "voicemail"


@dataclass(frozen=True)
class Outcome:
    """What a call to a number with a given suffix does, phase by phase."""

    suffix: str
    label: str
    ended_reason: str
    #: False: ends at creation, never rings (a ``call.start.error-*``).
    dials: bool = True
    #: False: ends while ringing (busy, no answer).
    answers: bool = True
    ring_s: float = RING_S
    talk_s: float = TALK_S
    #: True: stays ``in-progress`` until ended through ``controlUrl`` or ``maxDurationSeconds``.
    holds: bool = False
    messages: int = 6
    ended_message: str | None = None


#: suffix -> outcome. Any other suffix: :data:`DEFAULT_OUTCOMES` (a completed conversation).
OUTCOMES: dict[str, Outcome] = {
    o.suffix: o
    for o in (
        Outcome("0001", "busy", "customer-busy", answers=False, ring_s=1.0, messages=0),
        Outcome("0002", "no answer", "customer-did-not-answer", answers=False, ring_s=6.0, messages=0),
        Outcome("0003", "voicemail", VOICEMAIL, talk_s=3.0, messages=1),
        Outcome(
            "0004",
            "platform fault mid-call",
            "pipeline-error-openai-llm-failed",
            talk_s=2.0,
            messages=2,
            ended_message="An error occurred in the LLM pipeline: OpenAI request failed (emulated).",
        ),
        Outcome(
            "0005",
            "start error (insufficient credits)",
            "call.start.error-subscription-insufficient-credits",
            dials=False,
            messages=0,
            ended_message="Couldn't start call: your subscription has insufficient credits (emulated).",
        ),
        Outcome("0006", "stays in progress until ended", "exceeded-max-duration", holds=True, messages=4),
        Outcome("0007", "customer hangs up at once", "customer-ended-call", talk_s=1.0, messages=1),
    )
}

#: A completed conversation; which side hangs up is picked from the number (even: customer).
DEFAULT_OUTCOMES = (
    Outcome("*", "completed conversation (customer hangs up)", "customer-ended-call"),
    Outcome("*", "completed conversation (assistant hangs up)", "assistant-ended-call"),
)

#: How calls end when something other than their outcome ends them.
MANUALLY_CANCELED = "manually-canceled"
SCHEDULED_CALL_DELETED = "scheduled-call-deleted"
CALL_DELETED = "call-deleted"
#: The family of ``endedReason`` of calls that never started.
START_ERROR_PREFIX = "call.start.error-"
CONCURRENCY_LIMIT_REACHED = "call.start.error-subscription-concurrency-limit-reached"
CONCURRENCY_LIMIT_MESSAGE = "Couldn't start call: the concurrency limit of your subscription was reached."


def outcome_for(number: str | None) -> Outcome:
    """The outcome scripted for ``number`` (digits only; too short or missing: a conversation)."""
    digits = "".join(ch for ch in number or "" if ch.isdigit())
    found = OUTCOMES.get(digits[-4:])
    if found is not None:
        return found
    return DEFAULT_OUTCOMES[int(digits[-1]) % 2 if digits else 0]
