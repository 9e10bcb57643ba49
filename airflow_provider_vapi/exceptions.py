"""One exception family for everything that goes wrong talking to Vapi.

Every error carries what a user needs to act on it without reading our source: the HTTP status,
Vapi's own message(s), the method and path, and the call id when there is one. ``VapiError`` is an
``AirflowException`` so a task that raises it fails (and retries) the ordinary Airflow way.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from pydantic import ValidationError

from airflow_provider_vapi.wire.retries import is_retryable_status


class VapiError(AirflowException):
    """Root of every error this provider raises about Vapi."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        vapi_messages: Sequence[str] = (),
        method: str | None = None,
        path: str | None = None,
        call_id: str | None = None,
    ) -> None:
        # Shadows AirflowException's class-level HTTPStatus: here it is Vapi's answer, or None.
        self.status_code = status_code  # type: ignore[assignment]
        self.vapi_messages = list(vapi_messages)
        self.method = method
        self.path = path
        self.call_id = call_id
        super().__init__(message)


class VapiInvalidRequestError(VapiError, AirflowFailException, ValueError):
    """The request was refused *before* anything was sent: the payload breaks a Vapi rule.

    Final (an ``AirflowFailException``): the same input fails the same way on every retry.
    """

    @classmethod
    def from_validation(cls, exc: ValidationError, what: str = "The call request") -> VapiInvalidRequestError:
        """One line per problem, ``where: what is wrong and the fix``, never quoting an input value
        (pydantic's own text shows ``input_value=...``, which may hold a token)."""
        lines = [f"  - {_where(e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)]
        count = f"{len(lines)} problem{'s' if len(lines) != 1 else ''}"
        return cls(f"{what} is invalid; nothing was sent to Vapi ({count}):\n" + "\n".join(lines))


def _where(loc: Sequence[str | int]) -> str:
    """``("customers", 2, "number")`` -> ``customers[2].number``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


class VapiAPIError(VapiError):
    """Vapi answered with an error status (after any retries that were safe to make)."""


class VapiBadRequestError(VapiAPIError):
    """400/422: Vapi refused the payload; ``vapi_messages`` lists each of its reasons."""


class VapiAuthError(VapiAPIError):
    """401/403: the API key in the connection is missing, wrong, or the public key."""


class VapiNotFoundError(VapiAPIError):
    """404: no such call (or assistant, phone number) for this API key."""


class VapiRateLimitError(VapiAPIError):
    """429 that outlasted the retry budget."""


class VapiServerError(VapiAPIError):
    """5xx that outlasted the retry budget."""


class VapiResponseError(VapiAPIError):
    """Vapi answered 2xx but the body could not be read (an HTML page, ``null``, cut-off JSON, the
    wrong shape): usually a proxy or an outage page. Reads retry it like a 5xx first."""


class VapiCreateUnresolvedError(VapiError):
    """A create got no clear answer and Vapi could not be asked whether it made the call: nothing
    is sent again (a retry of the task looks for the call by its key first)."""


class VapiStaleTryError(VapiError, AirflowFailException):
    """A try of a task that Airflow has already replaced by a later try stands down before it
    creates anything (the later try owns the call)."""


class VapiRunUnresolvedError(VapiError):
    """``POST /structured-output/run`` got no clear answer (timeout, dropped, 502/504, 5xx): the
    extraction may be under way, so it is not sent again; the results on the calls will tell."""


class VapiConnectionError(VapiError):
    """No answer from Vapi (connection refused or dropped, timeout) after every retry."""


class VapiCallFailedError(VapiError, AirflowFailException):
    """A call ended with an outcome the task's policy counts as a failure: final, never retried
    (the call has ended, so reading it again gives the same outcome)."""

    def __init__(
        self,
        message: str,
        *,
        call_id: str,
        ended_reason: str | None,
        ended_message: str | None,
        outcome: str,
    ) -> None:
        self.ended_reason = ended_reason
        self.ended_message = ended_message
        self.outcome = outcome
        super().__init__(message, call_id=call_id)


class VapiCallTimeoutError(VapiError, AirflowFailException):
    """The wait for a call ran past its deadline and the call was ended: final, never retried."""


class VapiCampaignTimeoutError(VapiError, AirflowFailException):
    """The wait for a campaign ran past its deadline (it was cancelled unless the task opted out):
    final, never retried (a retry would re-attach to the same campaign)."""


class VapiCampaignCancelledError(VapiError, AirflowFailException):
    """The campaign was cancelled (in the dashboard, by a timed-out or killed earlier try): final;
    trigger a new run to call the list again."""


_BY_STATUS: dict[int, type[VapiAPIError]] = {
    400: VapiBadRequestError,
    401: VapiAuthError,
    403: VapiAuthError,
    404: VapiNotFoundError,
    422: VapiBadRequestError,
    429: VapiRateLimitError,
}


def error_class_for_status(status_code: int) -> type[VapiAPIError]:
    """The most specific ``VapiAPIError`` subclass for an HTTP status."""
    if status_code >= 500:
        return VapiServerError
    return _BY_STATUS.get(status_code, VapiAPIError)


def is_transient(exc: BaseException) -> bool:
    """May waiting change this failure? Connection errors, garbled 2xx bodies and the retryable
    statuses (408, 429, 5xx gateways) may; any other answer (401, 404 ...) will not. The one rule
    every trigger judges a failed read by, as the hook's own retries do."""
    if isinstance(exc, VapiConnectionError | VapiResponseError):
        return True
    return (
        isinstance(exc, VapiAPIError) and exc.status_code is not None and is_retryable_status(exc.status_code)
    )
