"""The request log's own secret redaction (independent of the product's, so that a bug in one
cannot hide in both).

A secret string is replaced with :data:`REDACTED`; the log keeps, beside the body, a fingerprint of
each secret it removed (``{"phoneNumber.twilioAuthToken": "sha256:1f2e..."}``: the first 16 hex
digits of its SHA-256), so a test can prove a secret was delivered without the log holding it.

Secret-bearing values (every string inside one is replaced, whatever its shape):

* keys named like a secret: ``apiKey``, ``password``, ``privateKey``, ``secret``, anything ending in
  ``Token`` or ``Secret`` (``twilioAuthToken``, ``twilioApiSecret``, ``serverUrlSecret``...), matched
  without regard to case;
* every value of a ``headers`` object (``server.headers`` carry webhook secrets and
  ``Authorization``), and any ``Authorization`` key;
* inside ``credentials[]``: any key ending in ``Key`` (``openAIKey``, ``gcpKey``, ``hmacAccessKey``...).
"""

from __future__ import annotations

import hashlib
from typing import Any

REDACTED = "***"
_SECRET_NAMES = frozenset({"apikey", "password", "privatekey", "secret", "authorization"})
_SECRET_SUFFIXES = ("token", "secret")


def fingerprint(secret: str) -> str:
    """The non-reversible mark the log keeps of a secret it redacted."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _is_secret_key(key: str, in_credentials: bool) -> bool:
    lowered = key.lower()
    if lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES):
        return True
    return in_credentials and key.endswith("Key")


def redact(value: Any) -> tuple[Any, dict[str, str]]:
    """A copy of ``value`` with every secret string replaced, and ``{path: fingerprint}`` of them."""
    found: dict[str, str] = {}
    return _walk(value, "", False, False, found), found


def _walk(value: Any, path: str, secret: bool, in_credentials: bool, found: dict[str, str]) -> Any:
    """One value at ``path``: ``secret`` when an enclosing key marks it as one."""
    if isinstance(value, str):
        if not secret:
            return value
        found[path] = fingerprint(value)
        return REDACTED
    if isinstance(value, list):
        return [
            _walk(item, f"{path}.{i}" if path else str(i), secret, in_credentials, found)
            for i, item in enumerate(value)
        ]
    if not isinstance(value, dict):
        return value
    headers = path.rsplit(".", 1)[-1] == "headers"
    out: dict[str, Any] = {}
    for key, item in value.items():
        child = f"{path}.{key}" if path else str(key)
        is_secret = secret or headers or _is_secret_key(str(key), in_credentials)
        out[key] = _walk(item, child, is_secret, in_credentials or key == "credentials", found)
    return out
