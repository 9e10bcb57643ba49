"""The request log redacts by the provider's rule (``airflow_provider_vapi.secrets``), plus its own
``headers`` rule: no secret the spec knows, wherever the spec puts it, reaches the log or the
emulator's output, and the fingerprint of each is there to prove it was delivered."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_vapi.emulator.redaction import REDACTED, fingerprint
from airflow_provider_vapi.emulator.server import EmulatorProcess
from airflow_provider_vapi.secrets import SPEC_SECRET_KEYS

#: Where ``CreateCallDTO`` puts each secret of the spec (the schema named for each), one secret a path.
SPEC_PLACES = (
    "phoneNumber.twilioAuthToken",  # ImportTwilioPhoneNumberDTO
    "phoneNumber.twilioApiKey",
    "phoneNumber.twilioApiSecret",
    "transport.callToken",  # TwilioTransport
    "assistant.credentials.0.apiKey",  # CreateAnthropicCredentialDTO ...
    "assistant.credentials.1.apiSecret",  # CreateTwilioCredentialDTO
    "assistant.credentials.1.authToken",
    "assistant.credentials.2.outboundAuthenticationPlan.authPassword",  # SipTrunkOutboundAuthenticationPlan
    "assistant.credentials.3.awsSecretAccessKey",  # CreateS3CredentialDTO
    "assistant.credentials.4.gcpKey.privateKey",  # CreateGcpCredentialDTO.gcpKey: a GcpKey object
    "assistant.credentials.4.gcpKey.clientEmail",
    "assistant.credentials.5.openAIKey",  # CreateAzureOpenAICredentialDTO
    "assistant.credentials.5.ocpApimSubscriptionKey",
    "assistant.credentials.6.authenticationPlan.clientSecret",  # OAuth2AuthenticationPlan
    "assistant.credentials.7.authenticationSession.accessToken",  # Oauth2AuthenticationSession
    "assistant.credentials.7.authenticationSession.refreshToken",
    "assistant.credentials.8.bucketPlan.hmacAccessKey",  # BucketPlan
    "assistant.credentials.8.bucketPlan.hmacSecret",
    "assistant.credentials.9.bucketPlan.secretAccessKey",  # CloudflareR2BucketPlan
    "assistant.credentials.10.authenticationPlan.secretKey",  # HMACAuthenticationPlan
    "assistant.credentials.11.authenticationPlan.token",  # BearerAuthenticationPlan
    "assistant.credentials.12.webhookUrl",  # CreateSlackWebhookCredentialDTO
    "assistant.server.headers.Authorization",
    "assistant.server.headers.X-Tenant",  # the log's own rule: any value of a headers object
)


def put(body: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted ``path`` (numeric segments index lists), making what is missing."""
    *parents, last = path.split(".")
    node: Any = body
    for segment, after in zip(parents, [*parents[1:], last], strict=True):
        empty: Any = [] if after.isdigit() else {}
        if segment.isdigit():
            while len(node) <= int(segment):
                node.append(None)
            node[int(segment)] = node[int(segment)] or empty
            node = node[int(segment)]
        else:
            node = node.setdefault(segment, empty)
    node[last] = value


def secret_request(emu: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A ``POST /call`` body carrying a distinct secret at each place, and ``{path: secret}``."""
    secrets = {path: f"SECRET-{i:02d}-{path.rsplit('.', 1)[-1]}-x9q" for i, path in enumerate(SPEC_PLACES)}
    for key in sorted(SPEC_SECRET_KEYS):  # every key of the spec's list, in a free-form object
        secrets[f"assistantOverrides.metadata.{key}"] = f"SECRET-meta-{key}-x9q"
    body = emu.call_body(number="+15550100001")
    del body["assistantId"], body["phoneNumberId"]
    for path, secret in secrets.items():
        put(body, path, secret)
    body["assistant"]["credentials"][4]["provider"] = "gcp"  # not a secret: kept
    inside = {"provider": "openai", "apiKey": "SECRET-in-json-x9q", "model": "gpt-4o"}
    body["assistantOverrides"]["variableValues"] = {"config": json.dumps(inside)}  # JSON in a string
    secrets["assistantOverrides.variableValues.config.apiKey"] = inside["apiKey"]
    return body, secrets


def test_no_secret_of_the_spec_reaches_the_log_or_the_output_and_each_is_fingerprinted():
    server = EmulatorProcess(log_level="debug")
    with server as emu, emu.client() as http:
        body, secrets = secret_request(emu)
        answer = http.post("/call", json=body)
        assert answer.status_code in (201, 400), answer.text
        log = emu.request_log()
    (entry,) = log["requests"]
    text = json.dumps(log) + "\n".join(server.output)
    assert [path for path, secret in secrets.items() if secret in text] == []
    assert entry["fingerprints"] == {path: fingerprint(secret) for path, secret in secrets.items()}
    logged = entry["body"]
    assert logged["phoneNumber"]["twilioApiKey"] == REDACTED
    assert logged["assistant"]["credentials"][2]["outboundAuthenticationPlan"] == {"authPassword": REDACTED}
    assert logged["assistant"]["credentials"][4]["provider"] == "gcp"
    assert logged["assistant"]["server"]["headers"] == {"Authorization": REDACTED, "X-Tenant": REDACTED}
    config = json.loads(logged["assistantOverrides"]["variableValues"]["config"])
    assert config == {"provider": "openai", "apiKey": REDACTED, "model": "gpt-4o"}
    assert logged["customer"] == body["customer"], "what is not secret is kept as sent"


def test_query_parameters_are_redacted_by_the_same_rule(emu, http):
    http.get("/call", params={"limit": "5", "apiKey": "SECRET-query-x9q"})
    (entry,) = emu.requests()
    assert entry["query"] == {"limit": "5", "apiKey": REDACTED}
    assert entry["fingerprints"] == {"?apiKey": fingerprint("SECRET-query-x9q")}
