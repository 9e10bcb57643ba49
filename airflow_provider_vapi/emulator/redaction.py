"""The request log's secret redaction: the provider's rule, the emulator's fingerprints.

What is a secret is decided in one place, :mod:`airflow_provider_vapi.secrets` (the product's rule:
every secret-bearing key of Vapi's spec, the suffix rules, every ``*Key`` inside ``credentials[]``,
and JSON objects written inside strings): :func:`redact` starts from its
:func:`~airflow_provider_vapi.secrets.redact_secrets` copy, so the two cannot drift apart. On top
of it the log adds one rule of its own, stricter than the product's: every value of a ``headers``
object is a secret (``server.headers`` carry webhook credentials under any name).

The log also keeps, beside the redacted body, a fingerprint of each secret it removed
(``{"phoneNumber.twilioAuthToken": "sha256:1f2e..."}``: the first 16 hex digits of its SHA-256), so
a test can prove a secret was delivered without the log holding it. To learn where each secret was,
the body is lined up with the product's redacted copy, leaf by leaf; a secret inside a JSON string
is named by the path into that JSON (``assistantOverrides.metadata.config.apiKey``). Wherever the two
cannot be lined up, the whole value is hidden: the log never keeps more than the product's rule
lets through.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from airflow_provider_vapi.secrets import MAX_DEPTH, REDACTED, redact_secrets

__all__ = ["REDACTED", "fingerprint", "redact"]

#: JSON inside strings is followed as deep and as long as the product's rule follows it (a string
#: it reads further and changes is hidden whole: see :meth:`_Aligner.string`).
_MAX_JSON_LEVELS: Final = 3
_MAX_JSON_CHARS: Final = 256 * 1024

#: Where a value is, spelled out only when a secret is found there: ``(parent, key)``; None at the top.
_Path = tuple[Any, object] | None


def fingerprint(secret: str) -> str:
    """The non-reversible mark the log keeps of a secret it redacted."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def redact(value: Any) -> tuple[Any, dict[str, str]]:
    """A copy of ``value`` with every secret string replaced by ``***``, and ``{path: fingerprint}``
    of them (a number or a boolean under a secret key is a setting, kept as the product keeps it)."""
    if not value or not isinstance(value, dict | list | str):
        return value, {}  # nothing that can hold a secret (a request without a body: the hot path)
    aligner = _Aligner()
    return aligner.merge(value, redact_secrets(value), None, False, 0, 0), aligner.found


def _dotted(path: _Path) -> str:
    keys: list[str] = []
    while path is not None:
        path, key = path
        keys.append(str(key))
    return ".".join(reversed(keys))


class _Aligner:
    """Walks a body beside the product's redacted copy of it, noting where each secret was."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def merge(self, orig: Any, red: Any, path: _Path, secret: bool, depth: int, level: int) -> Any:
        """``orig`` redacted: as the product's ``red`` says, and wholly when ``secret`` (in ``headers``)."""
        if isinstance(orig, str):
            return self.string(orig, red, path, secret, depth, level)
        if not orig or not isinstance(orig, dict | list):
            return orig  # a number, a boolean or null (never a secret: the product keeps them), or empty
        if depth >= MAX_DEPTH:
            return red  # the product's answer: what it walked no deeper (``***``), or what it left alone
        if isinstance(orig, dict) and isinstance(red, dict) and red.keys() == orig.keys():
            inner = secret or (path is not None and str(path[1]).lower() == "headers")
            return {
                key: self.merge(item, red[key], (path, key), inner, depth + 1, level)
                for key, item in orig.items()
            }
        if isinstance(orig, list) and isinstance(red, list) and len(red) == len(orig):
            return [
                self.merge(item, red[i], (path, i), secret, depth + 1, level) for i, item in enumerate(orig)
            ]
        return REDACTED  # the product hid the whole container (too deep for it, or a cycle)

    def string(self, orig: str, red: Any, path: _Path, secret: bool, depth: int, level: int) -> Any:
        """A string: hidden, kept, or (JSON text) redacted inside and written again."""
        if not orig:
            return orig
        if secret or (red == REDACTED and orig != REDACTED):
            return self.hide(orig, path)
        parsed = _json_container(orig, level)
        if parsed is not None:
            inner = parsed if red == orig else _json_container(red, level) if isinstance(red, str) else None
            if inner is not None:
                return self.inside_json(orig, parsed, inner, path, depth, level)
        return orig if red == orig else self.hide(orig, path)

    def inside_json(self, text: str, parsed: Any, red: Any, path: _Path, depth: int, level: int) -> str:
        """JSON ``text`` with the secrets inside it redacted: the text as written when it holds none."""
        before = len(self.found)
        merged = self.merge(parsed, red, path, False, depth + 1, level + 1)
        if len(self.found) == before and merged == parsed:
            return text
        try:
            return json.dumps(merged, ensure_ascii=False)
        except (TypeError, ValueError):
            return self.hide(text, path)

    def hide(self, secret: str, path: _Path) -> str:
        """``***`` in place of ``secret``, its fingerprint noted under its dotted path."""
        self.found[_dotted(path)] = fingerprint(secret)
        return REDACTED


def _json_container(text: str, level: int) -> Any:
    """The object or array ``text`` holds, as the product's rule reads JSON inside strings; None
    for any other string (and past its limits)."""
    if level >= _MAX_JSON_LEVELS or len(text) > _MAX_JSON_CHARS or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict | list) else None
