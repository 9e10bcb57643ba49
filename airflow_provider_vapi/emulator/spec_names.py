"""Property names the emulator accepts, copied from Vapi's OpenAPI spec (not read at run time).

Vapi's API is NestJS with ``forbidNonWhitelisted``: any property a DTO does not declare is a 400
``property X should not exist``. The emulator must catch a client that sends stale (2024-era) fields,
so it whitelists the DTOs below exactly. Generated from ``components.schemas`` of the spec
(VapiAI/docs ``fern/apis/api/openapi.json``, commit eabfa53) by reading each schema's
``properties``; regenerate the same way when the spec moves (``tests/emulator/test_spec_names.py``
fails when a table and its schema disagree).
"""

from __future__ import annotations


def _keys(names: str) -> frozenset[str]:
    """A table from its property names, separated by white space."""
    return frozenset(names.split())


# CreateCallDTO
CREATE_CALL_KEYS: frozenset[str] = _keys(
    """
    assistant assistantId assistantOverrides assistantVersion customer customerId customers name phoneNumber
    phoneNumberId schedulePlan squad squadId squadOverrides transport workflow workflowId workflowOverrides
    """
)

# CreateCustomerDTO
CUSTOMER_KEYS: frozenset[str] = _keys(
    "assistantOverrides email extension externalId name number numberE164CheckEnabled sipUri squadOverrides"
)

# SchedulePlan
SCHEDULE_PLAN_KEYS: frozenset[str] = _keys("earliestAt latestAt")

# ImportTwilioPhoneNumberDTO
TWILIO_PHONE_NUMBER_KEYS: frozenset[str] = _keys(
    """
    assistantId fallbackDestination hooks name server smsEnabled squadId twilioAccountSid twilioApiKey
    twilioApiSecret twilioAuthToken twilioPhoneNumber workflowId
    """
)

# CreateAssistantDTO
ASSISTANT_KEYS: frozenset[str] = _keys(
    """
    analysisPlan artifactPlan backgroundSound backgroundSpeechDenoisingPlan clientMessages compliancePlan
    credentialIds credentials endCallMessage endCallPhrases firstMessage firstMessageInterruptionsEnabled
    firstMessageMode hooks keypadInputPlan maxDurationSeconds metadata model modelOutputInMessagesEnabled
    monitorPlan name observabilityPlan server serverMessages startSpeakingPlan stopSpeakingPlan transcriber
    transportConfigurations voice voicemailDetection voicemailMessage
    """
)

# AssistantOverrides: every CreateAssistantDTO property, plus these two.
ASSISTANT_OVERRIDES_KEYS: frozenset[str] = ASSISTANT_KEYS | {"tools:append", "variableValues"}

# AnalysisPlan
ANALYSIS_PLAN_KEYS: frozenset[str] = _keys(
    """
    minMessagesThreshold outcomeIds structuredDataMultiPlan structuredDataPlan successEvaluationPlan
    summaryPlan
    """
)

# SummaryPlan
SUMMARY_PLAN_KEYS: frozenset[str] = _keys("enabled messages timeoutSeconds")

# StructuredDataPlan
STRUCTURED_DATA_PLAN_KEYS: frozenset[str] = _keys("enabled messages schema timeoutSeconds")

# SuccessEvaluationPlan
SUCCESS_EVALUATION_PLAN_KEYS: frozenset[str] = _keys("enabled messages rubric timeoutSeconds")

# ArtifactPlan
ARTIFACT_PLAN_KEYS: frozenset[str] = _keys(
    """
    fullMessageHistoryEnabled loggingEnabled loggingPath loggingUseCustomStorageEnabled pcapEnabled
    pcapS3PathPrefix pcapUseCustomStorageEnabled recordingEnabled recordingFormat recordingPath
    recordingUseCustomStorageEnabled scorecardIds scorecards structuredOutputIds structuredOutputs
    transcriptPlan videoRecordingEnabled
    """
)

# CompliancePlan
COMPLIANCE_PLAN_KEYS: frozenset[str] = _keys(
    "hipaaEnabled pciEnabled recordingConsentPlan securityFilterPlan"
)

# Server
SERVER_KEYS: frozenset[str] = _keys(
    "backoffPlan credentialId encryptedPaths headers staticIpAddressesEnabled timeoutSeconds url"
)

# UpdateCallDTO
UPDATE_CALL_KEYS: frozenset[str] = _keys("name")

# DeleteCallDTO
DELETE_CALL_KEYS: frozenset[str] = _keys("ids")
