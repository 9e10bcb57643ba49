"""TEST FIXTURE of the system suite (``tests/system/test_secret_canaries.py``), not an example.

A distinct canary under every credential-shaped key of Vapi's spec
(``airflow_provider_vapi.secrets.SPEC_SECRET_KEYS``) and under a key of each suffix rule
(``X-Vapi-Secret``, ``crmPasswd``, ``webhookSigningKey`` ...), each where Vapi's schema puts such a
key, through every operation of the provider; the test then greps everything stored:

* ``place``: a call with an inline assistant whose ``credentials`` hold one entry per kind of
  secret-bearing credential (OpenAI, Azure OpenAI, Twilio, a BYO SIP trunk, S3, GCP, Cloudflare R2,
  three custom credentials, a GoHighLevel session, a Slack webhook), a transient Twilio line, a
  Twilio ``transport`` token, and ``metadata`` carrying the spec's secret keys that no call schema
  has (``password``, ``jwtSecret`` ...); ``wait`` waits for it in the triggerer (full XCom);
* ``mapped_place``: ``partial(...).expand_kwargs(...)``, two calls waited for deferrably: the
  webhook headers in ``partial`` (rendered on Airflow's mapped path), suffix-rule secrets in the
  mapped ``metadata`` (literals of this file: mapped values are data, never templates);
* ``campaign``: a campaign whose ``assistant_overrides`` (and ``payload``'s ``server``) carry
  suffix-rule secrets;
* ``export`` (jsonl into ``$VAPI_SYSTEM_HOME/canary-export``) and ``load`` (the warehouse
  connection ``vapi_warehouse``, table ``canary_calls``).

Each canary is registered in :data:`CANARIES` under a neutral code (``c01`` ...): the test sets the
Variable ``vapi_canaries`` to ``{code: fresh random value}`` before triggering (neutral names, so
Airflow's own masker, which goes by key names, masks none of them: the provider must), except those
written here as literals. Retries re-attach to the call or campaign already made (see the
``vapi_secrets_check`` fixture's docstring for the Airflow race they absorb).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import NamedTuple

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_vapi.emulator.constants import ASSISTANT_ID, PHONE_NUMBER_ID
from airflow_provider_vapi.operators import (
    ExportCallsOperator,
    LoadCallsOperator,
    PlaceCallOperator,
    RunCampaignOperator,
)
from airflow_provider_vapi.sensors import CallStatusSensor

DAG_ID = "vapi_secret_canaries"
VARIABLE = "vapi_canaries"
#: Numbers of this DAG alone (default outcome: a completed conversation).
PLACE_CUSTOMER = "+15554200301"
MAPPED_CUSTOMERS = ("+15554200311", "+15554200312")
CAMPAIGN_CUSTOMERS = ("+15554200321", "+15554200322")
TWILIO_LINE = "+15554200390"
HOOK_URL = "https://hooks.example.com/vapi"
#: The export folder, under the deployment's home (``VAPI_SYSTEM_HOME``).
EXPORT_FOLDER = "canary-export"
WAREHOUSE_TABLE = "canary_calls"
#: How far the run's calls are moved into the past before the export (see ``age_the_calls``).
CALLS_AGE = 30 * 60.0
POLL = 0.5


class Canary(NamedTuple):
    code: str  # its key in the Variable; also what its value starts with
    task_id: str
    path: str  # where it sits in what the task sends (names it in failures, never its value)
    literal: str | None  # written in this file; None: from the Variable
    prefix: str  # what this file writes before it ("Bearer ")

    @property
    def key(self) -> str:
        """The credential-shaped key it sits under."""
        return self.path.rsplit(".", 1)[-1]


CANARIES: dict[str, Canary] = {}


def canary(task_id: str, path: str, *, prefix: str = "", literal: str | None = None) -> str:
    """Register a canary; what the DAG writes there (``prefix`` + the Variable's expression, or the literal)."""
    code = f"c{len(CANARIES) + 1:02d}"
    CANARIES[code] = Canary(code, task_id, path, literal, prefix)
    return prefix + (literal if literal is not None else "{{ var.json." + VARIABLE + "." + code + " }}")


def _credentials(task_id: str) -> list[dict[str, object]]:
    """One credential per kind of secret Vapi's credential schemas hold (the ``place`` task's)."""

    def c(credential: str, path: str, literal: str | None = None) -> str:
        return canary(task_id, f"assistant.credentials[{credential}].{path}", literal=literal)

    return [
        {"provider": "openai", "apiKey": c("openai", "apiKey", "sk-canary-4f1d2a7be0c94b3e8d6a51c2f9e07b38")},
        {
            "provider": "azure-openai",
            "region": "eastus",
            "models": ["gpt-4o"],
            "openAIEndpoint": "https://example-resource.openai.azure.com",
            "openAIKey": c("azure-openai", "openAIKey"),
            "ocpApimSubscriptionKey": c("azure-openai", "ocpApimSubscriptionKey"),
        },
        {
            "provider": "twilio",
            "accountSid": "AC0000000000000000000000000000c301",
            "authToken": c("twilio", "authToken"),
            "apiSecret": c("twilio", "apiSecret"),
        },
        {
            "provider": "byo-sip-trunk",
            "gateways": [{"ip": "203.0.113.10"}],
            "outboundAuthenticationPlan": {
                "authUsername": "vapi-trunk",
                "authPassword": c("byo-sip-trunk", "outboundAuthenticationPlan.authPassword"),
            },
        },
        {
            "provider": "s3",
            "awsAccessKeyId": "AKIA0000000000CANARY",
            "awsSecretAccessKey": c("s3", "awsSecretAccessKey"),
            "region": "us-east-1",
            "s3BucketName": "recordings",
        },
        {
            "provider": "gcp",
            "gcpKey": {
                "type": "service_account",
                "projectId": "canary-project",
                # Everything inside gcpKey is the key: its id stands for gcpKey as a whole.
                "privateKeyId": c("gcp", "gcpKey"),
                "privateKey": c("gcp", "gcpKey.privateKey"),
                "clientEmail": "vapi@canary-project.iam.gserviceaccount.com",
            },
            "bucketPlan": {
                "name": "recordings",
                "hmacAccessKey": c("gcp", "bucketPlan.hmacAccessKey"),
                "hmacSecret": c("gcp", "bucketPlan.hmacSecret"),
            },
        },
        {
            "provider": "cloudflare",
            "accountId": "canary-account",
            "bucketPlan": {
                "name": "recordings",
                "accessKeyId": "r2-key-id",
                "secretAccessKey": c("cloudflare", "bucketPlan.secretAccessKey"),
            },
        },
        {
            "provider": "custom-credential",
            "authenticationPlan": {
                "type": "oauth2",
                "url": "https://auth.example.com/token",
                "clientId": "vapi-client",
                "clientSecret": c("custom-credential/oauth2", "authenticationPlan.clientSecret"),
            },
        },
        {
            "provider": "custom-credential",
            "authenticationPlan": {
                "type": "hmac",
                "secretKey": c("custom-credential/hmac", "authenticationPlan.secretKey"),
            },
        },
        {
            "provider": "custom-credential",
            "authenticationPlan": {
                "type": "bearer",
                "token": c("custom-credential/bearer", "authenticationPlan.token"),
            },
        },
        {
            "provider": "ghl.oauth2-authorization",
            "authenticationSession": {
                "accessToken": c("ghl.oauth2-authorization", "authenticationSession.accessToken"),
                "refreshToken": c("ghl.oauth2-authorization", "authenticationSession.refreshToken"),
                "expiresAt": "2030-01-01T00:00:00.000Z",
            },
        },
        {"provider": "slack-webhook", "webhookUrl": c("slack-webhook", "webhookUrl")},
    ]


with DAG(
    dag_id=DAG_ID,
    description="Test fixture: a canary under every credential-shaped key (tests/system/test_secret_canaries.py).",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["vapi", "test-fixture"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
) as dag:
    place = PlaceCallOperator(
        task_id="place",
        assistant={
            "name": "Canaries",
            "firstMessage": "Hello, a quick check.",
            "model": {
                "provider": "openai",
                "model": "gpt-4o",
                "messages": [{"role": "system", "content": "Be brief."}],
            },
            "credentials": _credentials("place"),
        },
        phone_number={
            "twilioPhoneNumber": TWILIO_LINE,
            "twilioAccountSid": "AC0000000000000000000000000000c390",
            "twilioAuthToken": canary("place", "phoneNumber.twilioAuthToken"),
            "twilioApiKey": canary("place", "phoneNumber.twilioApiKey"),
            "twilioApiSecret": canary("place", "phoneNumber.twilioApiSecret"),
        },
        transport={"provider": "twilio", "callToken": canary("place", "transport.callToken")},
        customer={"number": PLACE_CUSTOMER, "name": "Canary"},
        # The spec's secret keys that no call schema has: a DAG may still put them in free-form places.
        metadata={
            "run": "{{ run_id }}",
            **{k: canary("place", f"metadata.{k}") for k in ("password", "jwtSecret", "sessionToken")},
            "vonageApplicationPrivateKey": canary("place", "metadata.vonageApplicationPrivateKey"),
        },
    )
    wait = CallStatusSensor(
        task_id="wait", call_id=place.output, deferrable=True, poke_interval=POLL, xcom_detail="full"
    )

    mapped_place = PlaceCallOperator.partial(
        task_id="mapped_place",
        assistant_id=ASSISTANT_ID,
        phone_number_id=PHONE_NUMBER_ID,
        assistant_overrides={
            "server": {
                "url": HOOK_URL,
                "headers": {
                    "Authorization": canary(
                        "mapped_place", "partial.server.headers.Authorization", prefix="Bearer "
                    ),
                    "X-Api-Key": canary("mapped_place", "partial.server.headers.X-Api-Key"),
                    "Cookie": canary("mapped_place", "partial.server.headers.Cookie", prefix="session="),
                },
            }
        },
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL,
        xcom_detail="full",
    ).expand_kwargs(
        [
            {
                "customer": MAPPED_CUSTOMERS[0],
                "metadata": {
                    "crmPassword": canary(
                        "mapped_place",
                        "expand[0].metadata.crmPassword",
                        literal="pw-canary-0b8e3f6a1d2c47e9a5f0c3b7d9e1a24f",
                    ),
                    "ftpPasswd": canary(
                        "mapped_place",
                        "expand[0].metadata.ftpPasswd",
                        literal="pw-canary-7c2a9e41f3b84d06b1e5a8c2d7f03e69",
                    ),
                },
            },
            {
                "customer": MAPPED_CUSTOMERS[1],
                "metadata": {
                    "myServiceToken": canary(
                        "mapped_place",
                        "expand[1].metadata.myServiceToken",
                        literal="tk-canary-3e9d7b2f0a6c41e8b5d2f7a9c0e4b163",
                    ),
                    "partnerCredential": canary(
                        "mapped_place",
                        "expand[1].metadata.partnerCredential",
                        literal="cr-canary-9a4f1c6e2b8d47035e7a0c9f3b6d1e82",
                    ),
                },
            },
        ]
    )

    campaign = RunCampaignOperator(
        task_id="campaign",
        assistant_id=ASSISTANT_ID,
        phone_number_id=PHONE_NUMBER_ID,
        customers=list(CAMPAIGN_CUSTOMERS),
        assistant_overrides={
            "server": {
                "url": HOOK_URL,
                "headers": {
                    "X-Vapi-Secret": canary("campaign", "assistantOverrides.server.headers.X-Vapi-Secret")
                },
            },
            "metadata": {
                key: canary("campaign", f"assistantOverrides.metadata.{key}")
                for key in (
                    "sshPrivateKey",
                    "stripeSecretKey",
                    "s3AccessKey",
                    "webhookSigningKey",
                    "upstreamBearer",
                )
            },
        },
        deferrable=True,
        poll_interval=POLL,
    )

    @task
    def age_the_calls() -> int:
        """TEST STEP, not an example: move this run's calls :data:`CALLS_AGE` seconds into the past
        (the emulator's admin API), so that the export's window, which must have settled (ended
        CLOCK_SKEW ago), holds them."""
        from airflow_provider_vapi.emulator.client import EmulatorHandle

        numbers = {PLACE_CUSTOMER, *MAPPED_CUSTOMERS, *CAMPAIGN_CUSTOMERS}
        handle = EmulatorHandle(os.environ["VAPI_EMULATOR_URL"])
        mine = [c["id"] for c in handle.calls() if (c.get("customer") or {}).get("number") in numbers]
        for call_id in mine:
            handle.backdate_call(call_id, CALLS_AGE)
        return len(mine)

    export = ExportCallsOperator(
        task_id="export",
        path=os.path.join(os.environ.get("VAPI_SYSTEM_HOME", "/tmp"), EXPORT_FOLDER),
        # A settled window holding this run's (aged) calls.
        updated_after="{{ (dag_run.start_date - macros.timedelta(hours=1)).isoformat() }}",
        updated_before="{{ (dag_run.start_date - macros.timedelta(minutes=10)).isoformat() }}",
        format="jsonl",
    )
    load = LoadCallsOperator(
        task_id="load", source=export.output, conn_id="vapi_warehouse", table=WAREHOUSE_TABLE
    )
    [wait, mapped_place, campaign] >> age_the_calls() >> export
