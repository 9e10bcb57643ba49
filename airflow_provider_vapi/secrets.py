"""Secrets in Vapi bodies, found by key name: for the log masker and for redacting XCom.

Vapi bodies nest secrets in many places (``phoneNumber.twilioAuthToken``, ``server.headers``,
``assistant.credentials[].apiKey``, legacy ``serverUrlSecret`` ...) and the schema grows them often,
so they are recognised by the name of their key rather than by path: every secret-bearing key of
Vapi's OpenAPI spec (:data:`SPEC_SECRET_KEYS`), plus suffix rules for the keys the spec does not
list (``X-Vapi-Secret``, ``Authorization``, ``myServiceToken`` in free-form headers or metadata).

A string that is itself a JSON object or array (a rendered ``.json`` template, ``"headers":
"{\\"Authorization\\": ...}"``) is parsed and walked too. :func:`find_secret_values` and
:func:`redact_secrets` share one walker, so whatever the masker is told about is exactly what a
redacted copy hides: the two cannot disagree. Neither raises, whatever the input.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

__all__ = [
    "REDACTED",
    "SPEC_SECRET_KEYS",
    "find_secret_values",
    "is_secret_key",
    "mask",
    "maskable",
    "redact_secrets",
    "stored_call",
]

#: What :func:`redact_secrets` puts in place of a secret (and of what it cannot walk: a cycle,
#: nesting deeper than :data:`MAX_DEPTH`).
REDACTED: Final = "***"
#: Containers deeper than this are not walked (found: nothing; redacted: ``***``).
MAX_DEPTH: Final = 100
#: JSON strings longer than this are not parsed; nor are JSON strings inside JSON strings inside
#: JSON strings (more than ``_MAX_JSON_LEVELS`` deep).
_MAX_JSON_CHARS: Final = 256 * 1024
_MAX_JSON_LEVELS: Final = 3

#: Every secret-bearing property of Vapi's OpenAPI spec (``components.schemas``), lower-cased.
#: Derived by the rule in ``tests/test_secret_keys_spec.py`` (a ``*Key`` / ``*Secret`` /
#: ``*Token`` / ``*Password`` name, or a description saying "not returned in the API" or naming a
#: secret, minus the identifiers listed there); that test fails naming any key the spec adds.
SPEC_SECRET_KEYS: Final = frozenset(
    {
        "accesstoken", "apikey", "apisecret", "authpassword", "authtoken", "awssecretaccesskey",
        "calltoken", "clientsecret", "gcpkey", "hmacaccesskey", "hmacsecret", "jwtsecret",
        "ocpapimsubscriptionkey", "openaikey", "password", "privatekey", "refreshtoken",
        "secretaccesskey", "secretkey", "sessiontoken", "token", "twilioapikey", "twilioapisecret",
        "twilioauthtoken", "vonageapplicationprivatekey", "webhookurl",
    }
)  # fmt: skip
_SECRET_SUFFIXES: Final = (
    "secret", "password", "passwd", "token", "apikey", "privatekey", "secretkey", "accesskey",
    "authorization", "credential", "cookie", "signingkey", "bearer",
)  # fmt: skip
#: Keys that look secret but hold references or counters (``secretId``, ``promptTokens``, ``tokenUrl``).
_HARMLESS_SUFFIXES: Final = ("id", "ids", "url", "count", "tokens")
#: Header schemes whose credential is also masked on its own (``Authorization: Bearer x`` -> ``x``).
_AUTH_SCHEMES: Final = frozenset({"bearer", "basic", "token"})
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]")
_SCALARS: Final = (str, int, float, bool, type(None), bytes)


def _normalised(key: object) -> str:
    return _NOT_ALNUM.sub("", str(key).lower())


def is_secret_key(key: object, *, in_credentials: bool = False) -> bool:
    """Whether the value under ``key`` is a secret: ``twilioAuthToken``, ``X-Vapi-Secret``, ``apiKey`` ...

    A key of the spec's list first; then references and counters (``secretId``, ``promptTokens``,
    ``tokenUrl``) are not; then the suffix rules; inside ``credentials`` every ``*Key`` is.
    """
    normalised = _normalised(key)
    if normalised in SPEC_SECRET_KEYS:
        return True
    if normalised.endswith(_HARMLESS_SUFFIXES):
        return False
    if "secret" in normalised or "password" in normalised or normalised.endswith(_SECRET_SUFFIXES):
        return True
    return in_credentials and normalised.endswith("key")  # serviceAccountKey, keys the spec adds


def _opens_credentials(key: object) -> bool:
    return _normalised(key) == "credentials"


def _leaf_copy(node: Any) -> Any:
    """A copy of a value the walker does not look into (an odd object is kept as it is)."""
    if isinstance(node, _SCALARS):
        return node
    try:
        return copy.deepcopy(node)
    except Exception:
        return node


#: Values that hold nothing to walk into (strings are looked at: they may be a secret or JSON).
_PLAIN: Final = (int, float, bool, type(None))


def _classify_any(key: object, creds: bool) -> tuple[bool, bool]:
    """Whether ``key``'s value is a secret, and whether it opens ``credentials``."""
    return is_secret_key(key, in_credentials=creds), _opens_credentials(key)


#: A body repeats the same few hundred keys thousands of times (an export walks 100,000 calls).
_classify = functools.lru_cache(maxsize=16384)(_classify_any)


class _Walker:
    """The one walker: a deep copy of a body with every secret string passed through ``replace``."""

    def __init__(self, replace: Callable[[str], str]) -> None:
        self.replace = replace
        self.hits = 0
        self.active: set[int] = set()  # ids of the containers on the current path (cycles)

    def walk(
        self, node: Any, *, depth: int = 0, secret: bool = False, creds: bool = False, level: int = 0
    ) -> Any:
        """Copy ``node``; under a secret key (``secret``) every string is a secret."""
        if isinstance(node, str):
            return self.secret_string(node) if secret else self.maybe_json(node, depth, creds, level)
        if isinstance(node, bytes) and secret:
            return self.secret_string(node.decode("utf-8", "replace"))
        if not isinstance(node, Mapping | list | tuple):
            return _leaf_copy(node)
        if depth >= MAX_DEPTH or id(node) in self.active:
            return REDACTED  # too deep to walk, or a cycle: hide it rather than guess
        self.active.add(id(node))
        try:
            if isinstance(node, Mapping):
                return self.mapping(node, depth, secret, creds, level)
            items = [self.walk(v, depth=depth + 1, secret=secret, creds=creds, level=level) for v in node]
            return items if isinstance(node, list) else tuple(items)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: Mapping[Any, Any], depth: int, secret: bool, creds: bool, level: int) -> Any:
        out: dict[Any, Any] = {}
        for key, value in node.items():
            if type(value) in _PLAIN:
                out[key] = value  # a number, bool or None is never a secret (the hot path)
                continue
            key_secret, opens = _classify(key, creds) if type(key) is str else _classify_any(key, creds)
            inside = creds or opens
            out[key] = self.walk(
                value, depth=depth + 1, secret=secret or key_secret, creds=inside, level=level
            )
        return out

    def secret_string(self, value: str) -> str:
        if not value:
            return value
        self.hits += 1
        return self.replace(value)

    def maybe_json(self, text: str, depth: int, creds: bool, level: int) -> str:
        """A string holding a JSON object or array, with the secrets inside it replaced."""
        if level >= _MAX_JSON_LEVELS or len(text) > _MAX_JSON_CHARS or text.lstrip()[:1] not in ("{", "["):
            return text
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return text
        if not isinstance(parsed, dict | list):
            return text
        before = self.hits
        mapped = self.walk(parsed, depth=depth + 1, creds=creds, level=level + 1)
        if self.hits == before:
            return text  # nothing secret inside: keep the text exactly as written
        try:
            return json.dumps(mapped, ensure_ascii=False)
        except (TypeError, ValueError):
            return REDACTED


_SURROGATES: Final = re.compile("[\ud800-\udfff]+")
#: Shorter values are not given to the masker: Airflow 3 ignores them itself (``[logging]
#: min_length_masked_secret``, default 5), while Airflow 2.11 would replace every occurrence of,
#: say, ``t`` in every later log line and rendered field with ``***``.
MIN_MASKED_LENGTH: Final = 5


def maskable(value: str) -> list[str]:
    """``value`` as Airflow's secret masker can take it: ``[value]``, or, for a string that is not
    valid Unicode (a lone surrogate, which the masker's ``re2`` cannot encode and which no request
    or UTF-8 log can carry whole), its valid pieces, so that whatever of it reaches a log is hidden;
    less what is shorter than :data:`MIN_MASKED_LENGTH`.
    """
    pieces = _SURROGATES.split(value) if _SURROGATES.search(value) else [value]
    return [piece for piece in pieces if len(piece) >= MIN_MASKED_LENGTH]


def mask(values: Iterable[str]) -> None:
    """Tell Airflow's log masker about ``values``, each as :func:`maskable` gives it: the one place
    the provider registers secrets."""
    from airflow.providers.common.compat.sdk import mask_secret

    for value in values:
        for piece in maskable(value):
            mask_secret(piece)


def find_secret_values(node: Any) -> list[str]:
    """Secret strings in a wire body, found by key name (``secret``, ``*Token``, ``apiKey`` ...).

    Header values such as ``Authorization: Bearer x`` yield both the whole value and ``x``. Inside
    ``credentials`` entries every ``*Key`` is a secret too (``gcpKey``, ``serviceAccountKey``).
    Strings holding JSON (``"{\\"twilioAuthToken\\": \\"t\\"}"``) are searched too. Only strings
    are reported (a number or a boolean under such a key is a setting, not a secret). Never
    raises: on input it cannot walk it returns what it found so far. Give them to the log masker
    with :func:`mask`.
    """
    found: list[str] = []

    def collect(value: str) -> str:
        found.append(value)
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in _AUTH_SCHEMES:
            found.append(rest)
        return value

    # A hostile Mapping or key: what was found so far is still worth masking.
    with contextlib.suppress(Exception):
        _Walker(collect).walk(node)
    return list(dict.fromkeys(found))


def redact_secrets(node: Any) -> Any:
    """A deep copy of ``node`` with every string :func:`find_secret_values` reports replaced by ``***``.

    Keys, structure and every other value are kept, so a redacted call still reads like the call.
    A JSON string with secrets inside comes back re-serialised with them replaced; a cycle or
    nesting deeper than :data:`MAX_DEPTH` becomes ``***``. Never raises: input it cannot walk at
    all becomes ``***``.
    """
    try:
        return _Walker(lambda _: REDACTED).walk(node)
    except Exception:
        return REDACTED


def stored_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """A call's JSON as the provider stores it anywhere (XCom, export files): secrets redacted,
    and without the presigned recording links (``artifact.presigned*``), which are a credential to
    the audio until they expire (then dead), and new in every answer. The stable recording URLs
    stay."""
    data: dict[str, Any] = redact_secrets(dict(call))
    artifact = data.get("artifact")
    if isinstance(artifact, dict):
        data["artifact"] = {k: v for k, v in artifact.items() if not str(k).startswith("presigned")}
    return data
