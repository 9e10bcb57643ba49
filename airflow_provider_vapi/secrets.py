"""Secrets in Vapi bodies, found by key name: for the log masker and for redacting XCom.

Vapi bodies nest secrets in many places (``phoneNumber.twilioAuthToken``, ``server.headers``,
``assistant.credentials[].apiKey``, legacy ``serverUrlSecret`` ...) and the schema grows them often,
so they are recognised by the name of their key rather than by path. :func:`find_secret_values` and
:func:`redact_secrets` share one walker, so whatever the masker is told about is exactly what a
redacted copy hides: the two cannot disagree.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["REDACTED", "find_secret_values", "redact_secrets"]

#: What :func:`redact_secrets` puts in place of a secret.
REDACTED: Final = "***"

_SECRET_SUFFIXES: Final = (
    "secret", "password", "passwd", "token", "apikey", "privatekey", "secretkey", "accesskey",
    "authorization", "credential", "cookie", "signingkey", "bearer",
)  # fmt: skip
#: Keys that look secret but hold references or counters (``secretId``, ``promptTokens``, ``tokenUrl``).
_HARMLESS_SUFFIXES: Final = ("id", "ids", "url", "count", "tokens")
#: Header schemes whose credential is also masked on its own (``Authorization: Bearer x`` -> ``x``).
_AUTH_SCHEMES: Final = frozenset({"bearer", "basic", "token"})
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]")


def _is_secret_key(key: object, *, in_credentials: bool) -> bool:
    """``X-Vapi-Secret``, ``twilioAuthToken``, ``apiKey`` ...; inside ``credentials`` every ``*Key``."""
    normalised = _NOT_ALNUM.sub("", str(key).lower())
    if normalised.endswith(_HARMLESS_SUFFIXES):
        return False
    if "secret" in normalised or "password" in normalised or normalised.endswith(_SECRET_SUFFIXES):
        return True
    return in_credentials and normalised.endswith("key")  # gcpKey, serviceAccountKey, ...


def _opens_credentials(key: object) -> bool:
    return _NOT_ALNUM.sub("", str(key).lower()) == "credentials"


def _map_strings(node: Any, replace: Callable[[str], str]) -> Any:
    """A copy of ``node`` (a secret's value) with every non-empty string passed through ``replace``."""
    if isinstance(node, str):
        return replace(node) if node else node
    if isinstance(node, Mapping):
        return {key: _map_strings(value, replace) for key, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(value, replace) for value in node]
    return copy.deepcopy(node)


def _map_secrets(node: Any, replace: Callable[[str], str], *, in_credentials: bool = False) -> Any:
    """A deep copy of ``node`` with every secret string passed through ``replace``: the one walker."""
    if isinstance(node, Mapping):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            if _is_secret_key(key, in_credentials=in_credentials):
                out[key] = _map_strings(value, replace)
            else:
                inside = in_credentials or _opens_credentials(key)
                out[key] = _map_secrets(value, replace, in_credentials=inside)
        return out
    if isinstance(node, list):
        return [_map_secrets(value, replace, in_credentials=in_credentials) for value in node]
    return copy.deepcopy(node)


def find_secret_values(node: Any) -> list[str]:
    """Secret strings in a wire body, found by key name (``secret``, ``*Token``, ``apiKey`` ...).

    Header values such as ``Authorization: Bearer x`` yield both the whole value and ``x``. Inside
    ``credentials`` entries every ``*Key`` is a secret too (``gcpKey``, ``serviceAccountKey``).
    Only strings are reported (a number or a boolean under such a key is a setting, not a secret).
    """
    found: list[str] = []

    def collect(value: str) -> str:
        found.append(value)
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in _AUTH_SCHEMES:
            found.append(rest)
        return value

    _map_secrets(node, collect)
    return list(dict.fromkeys(found))


def redact_secrets(node: Any) -> Any:
    """A deep copy of ``node`` with every string :func:`find_secret_values` reports replaced by ``***``.

    Keys, structure and every other value are kept, so a redacted call still reads like the call.
    """
    return _map_secrets(node, lambda _: REDACTED)
