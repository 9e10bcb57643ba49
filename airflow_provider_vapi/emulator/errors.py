"""Vapi's error bodies (NestJS ``HttpException`` shape) as an exception the app turns into JSON."""

from __future__ import annotations

from typing import Any

INVALID_KEY_MESSAGE = (
    "Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa."
)
#: A request with more than one ``Authorization`` header is refused (400) before any key is read:
#: which of them counts would otherwise depend on the server in front.
DUPLICATE_AUTHORIZATION_MESSAGE = (
    "More than one Authorization header. Send exactly one: Authorization: Bearer <key>."
)

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def reason_phrase(status: int) -> str:
    """The ``error`` field NestJS puts beside ``statusCode``."""
    return _REASONS.get(status, "Error")


class ApiError(Exception):
    """An error answer: ``{"message": ..., "error": ..., "statusCode": ...}``.

    ``message`` is a list for DTO validation (class-validator collects every violation) and a plain
    string for errors raised by a service, exactly as Vapi answers.
    """

    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {"message": self.message, "error": reason_phrase(self.status), "statusCode": self.status}


def bad_request(message: str | list[str]) -> ApiError:
    """A 400 with Vapi's shape."""
    return ApiError(400, message)


def not_found(what: str) -> ApiError:
    """A 404 with Vapi's shape."""
    return ApiError(404, f"{what} not found")
