"""Every secret-bearing key of Vapi's spec is masked where it appears; JSON strings; hostile input.

The rule that decides which properties of ``components.schemas`` hold a secret lives here
(:func:`secret_properties`); ``secrets.SPEC_SECRET_KEYS`` is its committed output. A property is
secret-bearing when it is not a number or a boolean and

* its name ends like a secret (``*Key``, ``*Secret``, ``*Token``, ``*Password``, ``*Auth``,
  ``*Authorization``, ``*Cookie``, ``*Bearer``, ``credential(s)``), or
* its description says it is write-only ("This is not returned in the API": Vapi's mark for a
  secret) or names a secret (secret, password, private key, API key, auth/access/refresh/session/
  bearer token), or
* it belongs to a credential schema (``Create*CredentialDTO``, ``*Credential``) and ends in
  ``Key``/``Secret``/``Token``;

except the properties of :data:`EXCLUDED`, each with the reason it is not a secret.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from airflow_provider_vapi.secrets import REDACTED, SPEC_SECRET_KEYS, find_secret_values, redact_secrets
from tests.shared_data import Exploding, openapi_spec

#: Properties the rule matches that hold no secret.
EXCLUDED: dict[str, str] = {
    "authentication": "an object of SIP settings; the password inside is found by its own key",
    "awsAccessKeyId": "the id half of an AWS key pair (printed in AWS logs); its secret half is covered",
    "privateKeyId": "the id of a GCP service-account key; the privateKey itself is covered",
    "credentialId": "a reference to a credential stored in Vapi, not the credential",
    "credentials": "a list of credential objects; the secrets inside are found by their own keys",
    "expiresAt": "a timestamp (its description mentions the access token it belongs to)",
    "headerName": "the name of the header a token travels in, not the token",
    "key": "a filter, replacement or file key (e.g. call.endedReason)",
    "promptCacheKey": "an OpenAI prompt-cache identifier",
    "provider": "a provider name (two credential descriptions were copied from apiKey's)",
    "providerConfigKey": "the name of an OAuth integration",
    "publicKey": "a public key (Langfuse pk-lf-..., an encryption plan's public key)",
    "systemKey": "a stable identifier of a system-created insight",
}

_NAME = re.compile(r"(key|secret|token|password|passwd|auth|authorization|cookie|bearer|credentials?)$", re.I)
_DESCRIPTION = re.compile(
    r"not returned in the API|\b(secret|password|private key|api key|"
    r"(auth|access|refresh|session|bearer) token)\b",
    re.I,
)
_CREDENTIAL_SCHEMA = re.compile(r"^(Create|Update)?\w*Credentials?(DTO)?$")
_CREDENTIAL_KEY = re.compile(r"(key|secret|token)$", re.I)


def schemas() -> dict[str, Any]:
    found: dict[str, Any] = openapi_spec()["components"]["schemas"]
    return found


def _is_candidate(schema: str, prop: str, node: Mapping[str, Any]) -> bool:
    if node.get("type") in ("number", "integer", "boolean"):
        return False
    if _NAME.search(prop) or _DESCRIPTION.search(str(node.get("description") or "")):
        return True
    return bool(_CREDENTIAL_SCHEMA.match(schema) and _CREDENTIAL_KEY.search(prop))


def secret_properties() -> dict[str, set[str]]:
    """Secret-bearing property name -> the schemas that have it (the rule of the module docstring)."""
    found: dict[str, set[str]] = {}
    for schema, body in schemas().items():
        for prop, node in (body.get("properties") or {}).items():
            if prop not in EXCLUDED and _is_candidate(schema, prop, node):
                found.setdefault(prop, set()).add(schema)
    return found


# -- where each schema sits in a body --------------------------------------------------------
def _refs(node: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """``(steps, schema)`` for every schema a property node leads to (``[]``: a list item)."""
    if isinstance(node, Mapping):
        if "$ref" in node:
            yield (), node["$ref"].rsplit("/", 1)[-1]
        for key in ("allOf", "oneOf", "anyOf"):
            for part in node.get(key) or []:
                yield from _refs(part)
        if isinstance(node.get("items"), Mapping):
            yield from ((("[]", *steps), name) for steps, name in _refs(node["items"]))
        if isinstance(node.get("additionalProperties"), Mapping):
            yield from ((("x", *steps), name) for steps, name in _refs(node["additionalProperties"]))


def paths_from(root: str) -> dict[str, tuple[str, ...]]:
    """Schema -> the shortest key path from a ``root`` body to an object of that schema."""
    found, queue = {root: ()}, deque([root])
    while queue:
        name = queue.popleft()
        for prop, node in (schemas()[name].get("properties") or {}).items():
            for steps, target in _refs(node):
                if target not in found:
                    found[target] = (*found[name], prop, *steps)
                    queue.append(target)
    return found


def build(path: tuple[str, ...], leaf: dict[str, Any]) -> Any:
    """The body holding ``leaf`` at ``path`` (``[]`` steps become one-item lists)."""
    node: Any = leaf
    for step in reversed(path):
        node = [node] if step == "[]" else {step: node}
    return node


def sample(schema: str, prop: str) -> tuple[Any, str]:
    """A value for the property and the secret string in it."""
    marker = f"secret-of-{schema}-{prop}"
    node = schemas()[schema]["properties"][prop]
    if node.get("type") == "array":
        return [marker], marker
    if node.get("type") == "string":
        return marker, marker
    return {"inner": marker}, marker  # an object (gcpKey): every string in it is the secret


# -- the spec ----------------------------------------------------------------------------------
def test_the_rule_finds_the_keys_vapi_is_known_to_use() -> None:
    found = secret_properties()
    expected = {
        "gcpKey",
        "privateKey",
        "hmacAccessKey",
        "ocpApimSubscriptionKey",
        "twilioAuthToken",
        "apiKey",
    }
    assert expected <= set(found)
    assert {"promptTokens", "maxTokens", "credentialIds", "keyterm", "secretIsBase64"}.isdisjoint(found)


def test_every_excluded_key_is_in_the_spec_and_matched_by_the_rule() -> None:
    """The exclusions must not rot: each still names a property the rule would otherwise take."""
    candidates = {
        prop
        for schema, body in schemas().items()
        for prop, node in (body.get("properties") or {}).items()
        if _is_candidate(schema, prop, node)
    }
    assert sorted(set(EXCLUDED) - candidates) == []


def test_the_committed_key_list_is_what_the_rule_derives_from_the_spec() -> None:
    derived = {re.sub(r"[^a-z0-9]", "", prop.lower()) for prop in secret_properties()}
    missing, extra = sorted(derived - SPEC_SECRET_KEYS), sorted(SPEC_SECRET_KEYS - derived)
    assert (missing, extra) == ([], []), (
        f"secrets.SPEC_SECRET_KEYS is out of date with the spec: add {missing}, remove {extra} "
        "(or exclude them in tests/test_secret_keys_spec.py with a reason)"
    )


def test_every_secret_property_is_found_where_it_appears() -> None:
    """Fed a body holding the property at its place, the masker reports the value."""
    places = {root: paths_from(root) for root in ("CreateCallDTO", "Call")}
    uncovered = []
    for prop, owners in sorted(secret_properties().items()):
        for schema in sorted(owners):
            value, secret = sample(schema, prop)
            contexts = {"at the top of a body": ()}
            contexts.update(
                {
                    f"in {root} at {'.'.join(p[schema])}": p[schema]
                    for root, p in places.items()
                    if schema in p
                }
            )
            for where, path in contexts.items():
                if secret not in find_secret_values(build(path, {prop: value})):
                    uncovered.append(f"{schema}.{prop} {where}")
    assert uncovered == [], "secrets not recognised:\n  " + "\n  ".join(uncovered)


def test_the_paths_reach_credentials_and_the_caller_line() -> None:
    paths = paths_from("CreateCallDTO")
    assert paths["CreateGcpCredentialDTO"][:3] == ("assistant", "credentials", "[]")
    assert paths["ImportTwilioPhoneNumberDTO"] == ("phoneNumber",)


def test_no_other_string_property_of_the_spec_is_taken_for_a_secret() -> None:
    secret = set(secret_properties())
    flagged = sorted(
        {
            prop
            for body in schemas().values()
            for prop, node in (body.get("properties") or {}).items()
            if node.get("type") == "string" and prop not in secret and find_secret_values({prop: "value"})
        }
    )
    assert flagged == []


@pytest.mark.parametrize(
    "key", ["promptTokens", "maxTokens", "secretId", "credentialIds", "credentialId", "tokenUrl", "keyId"]
)
def test_references_and_counters_stay_harmless(key: str) -> None:
    assert find_secret_values({key: "value", "credentials": [{key: "value"}]}) == []


# -- JSON strings ------------------------------------------------------------------------------
def test_secrets_inside_a_json_string_payload_are_found_and_redacted() -> None:
    inner = {"phoneNumber": {"twilioAccountSid": "AC1", "twilioAuthToken": "tw-token"}, "name": "x"}
    body = {"payload": json.dumps(inner, indent=2), "name": "plain"}
    assert find_secret_values(body) == ["tw-token"]
    redacted = redact_secrets(body)
    assert json.loads(redacted["payload"]) == {
        **inner,
        "phoneNumber": {"twilioAccountSid": "AC1", "twilioAuthToken": REDACTED},
    }
    assert redacted["name"] == "plain"
    assert body["payload"] == json.dumps(inner, indent=2), "the input is not touched"


def test_headers_given_as_a_json_string() -> None:
    body = {"assistant": {"server": {"headers": ' {"Authorization": "Bearer abc", "X-Trace": "t1"}'}}}
    assert find_secret_values(body) == ["Bearer abc", "abc"]
    headers = json.loads(redact_secrets(body)["assistant"]["server"]["headers"])
    assert headers == {"Authorization": REDACTED, "X-Trace": "t1"}


def test_json_arrays_and_json_inside_json() -> None:
    nested = json.dumps({"config": json.dumps({"apiKey": "deep-key"})})
    assert find_secret_values({"a": '[{"apiKey": "k1"}]', "b": nested}) == ["k1", "deep-key"]
    redacted = redact_secrets({"b": nested})["b"]
    assert json.loads(json.loads(redacted)["config"]) == {"apiKey": REDACTED}


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "no secret here",   "n": 1}',  # kept byte for byte
        "{{ customer.name }}",  # a template, not JSON
        "[not json",
        '"a json string"',
        "{" * 5000 + "}" * 5000,
        "[" * 100_000,
    ],
)
def test_strings_without_json_secrets_are_kept_as_written(text: str) -> None:
    assert find_secret_values({"v": text}) == []
    assert redact_secrets({"v": text}) == {"v": text}


def test_json_strings_are_bounded() -> None:
    huge = json.dumps({"apiKey": "k", "pad": "x" * 300_000})
    assert find_secret_values({"v": huge}) == [], "longer than the bound: not parsed"
    levels = json.dumps({"apiKey": "k0"})
    for _ in range(5):
        levels = json.dumps({"next": levels})
    assert find_secret_values({"v": levels}) == [], "JSON five strings deep is not parsed"
    assert find_secret_values({"token": '{"a": "b"}'}) == ['{"a": "b"}'], "under a secret key: all of it"


# -- hostile input -----------------------------------------------------------------------------
def test_cycles_do_not_raise() -> None:
    body: dict[str, Any] = {"token": "t1", "list": []}
    body["self"] = body
    body["list"].append(body["list"])
    body["list"].append({"apiKey": "k1"})
    assert find_secret_values(body) == ["t1", "k1"]
    redacted = redact_secrets(body)
    assert redacted["self"] == REDACTED and redacted["list"][0] == REDACTED
    assert redacted["token"] == redacted["list"][1]["apiKey"] == REDACTED


def test_very_deep_nesting_does_not_raise() -> None:
    deep: Any = {"token": "bottom"}
    for _ in range(1000):
        deep = {"a": deep, "b": [deep]} if _ % 100 == 0 else {"a": deep}
    body = {"token": "top", "deep": deep}
    assert find_secret_values(body) == ["top"], "found what it could reach"
    redacted = redact_secrets(body)
    assert redacted["token"] == REDACTED
    assert "bottom" not in json.dumps(redacted), "what is too deep to walk is hidden"


class _BadKey:
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_odd_keys_bytes_and_broken_objects_do_not_raise() -> None:
    body = {1: "x", None: {"token": "t1"}, ("a",): "y", "apiKey": b"byte-key", "data": b"\xff\xfe"}
    assert find_secret_values(body) == ["t1", "byte-key"]
    redacted = redact_secrets(body)
    assert redacted == {
        1: "x",
        None: {"token": REDACTED},
        ("a",): "y",
        "apiKey": REDACTED,
        "data": b"\xff\xfe",
    }
    assert find_secret_values({"token": "t2", "broken": Exploding()}) == ["t2"]
    assert redact_secrets(Exploding()) == REDACTED
    assert find_secret_values({"token": "t3", _BadKey(): "v"}) == ["t3"]
    assert find_secret_values(object()) == [] and find_secret_values("plain") == []
