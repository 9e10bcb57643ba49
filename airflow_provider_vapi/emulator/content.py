"""What a finished call carries: messages, transcript, costs and the (deterministic) analysis.

Nothing here is random: every value derives from a seed string (the customer's number, else the
call id), so the same input always gives the same transcript and the same ``structuredData``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

DEFAULT_FIRST_MESSAGE = "Hello, this is the Vapi emulator calling about your appointment."
_CONVERSATION = (
    ("bot", None),
    ("user", "Hi, yes, speaking."),
    ("bot", "I'm calling to confirm your appointment. Does the scheduled time still work for you?"),
    ("user", "Yes, that works for me."),
    ("bot", "Great, you're all set. Thank you and goodbye."),
    ("user", "Thanks, bye."),
)
_VOICEMAIL_GREETING = "Hi, you've reached my voicemail. Please leave a message after the tone."
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")

_DEFAULT_TRANSCRIBER = {"provider": "deepgram", "model": "nova-3"}
_DEFAULT_MODEL = {"provider": "openai", "model": "gpt-4o"}
_DEFAULT_VOICE = {"provider": "vapi", "voiceId": "Elliot"}
_ANALYSIS_MODEL = {"provider": "openai", "model": "gpt-4.1-mini"}


def digest(*parts: str) -> int:
    """A stable 64-bit number from strings (``hash()`` is salted per process, so not usable)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def render(text: str, variables: dict[str, Any]) -> str:
    """Fill ``{{name}}`` placeholders as Vapi's (Liquid) templating does: unknown names render empty."""
    return _PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), "")), text)


def build_messages(
    count: int, voicemail: bool, first_message: str | None, answered_ms: int, ended_ms: int
) -> list[dict[str, Any]]:
    """``count`` transcript messages spread evenly between answer and hang-up."""
    if count <= 0:
        return []
    lines: list[tuple[str, str]]
    if voicemail:
        lines = [("user", _VOICEMAIL_GREETING)]
    else:
        lines = [(role, text or first_message or DEFAULT_FIRST_MESSAGE) for role, text in _CONVERSATION]
    lines = lines[:count]
    span = max(ended_ms - answered_ms, len(lines))
    step = span // len(lines)
    out: list[dict[str, Any]] = []
    for i, (role, text) in enumerate(lines):
        start = answered_ms + i * step
        end = start + max(step - 1, 1)
        out.append(
            {
                "role": role,
                "message": text,
                "time": start,
                "endTime": end,
                "secondsFromStart": round((start - answered_ms) / 1000, 3),
                "duration": end - start,
            }
        )
    return out


def transcript(messages: list[dict[str, Any]]) -> str:
    """Vapi's plain transcript: one ``AI:`` / ``User:`` line per message."""
    return "\n".join(f"{'AI' if m['role'] == 'bot' else 'User'}: {m['message']}" for m in messages)


def costs(
    started_ms: int | None, ended_ms: int, messages: list[dict[str, Any]], assistant: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``costs[]`` and ``costBreakdown`` of a call, from its length and messages (USD, rounded)."""
    minutes = round(max(ended_ms - (started_ms or ended_ms), 0) / 60000, 4)
    prompt_tokens = 180 * sum(1 for m in messages if m["role"] == "bot")
    completion_tokens = 25 * sum(1 for m in messages if m["role"] == "bot")
    characters = sum(len(m["message"]) for m in messages if m["role"] == "bot")
    transport = round(minutes * 0.01, 4)
    stt = round(minutes * 0.01, 4)
    llm = round(prompt_tokens * 2.5e-6 + completion_tokens * 1e-5, 4)
    tts = round(characters * 3e-5, 4)
    vapi = round(minutes * 0.05, 4)
    total = round(transport + stt + llm + tts + vapi, 4)
    items: list[dict[str, Any]] = [
        {"type": "transport", "provider": "twilio", "minutes": minutes, "cost": transport},
        {
            "type": "transcriber",
            "transcriber": _pick(assistant.get("transcriber"), _DEFAULT_TRANSCRIBER),
            "minutes": minutes,
            "cost": stt,
        },
        {
            "type": "model",
            "model": _pick(assistant.get("model"), _DEFAULT_MODEL),
            "promptTokens": prompt_tokens,
            "completionTokens": completion_tokens,
            "cost": llm,
        },
        {
            "type": "voice",
            "voice": _pick(assistant.get("voice"), _DEFAULT_VOICE),
            "characters": characters,
            "cost": tts,
        },
        {"type": "vapi", "subType": "normal", "minutes": minutes, "cost": vapi},
    ]
    breakdown = {
        "transport": transport,
        "stt": stt,
        "llm": llm,
        "tts": tts,
        "vapi": vapi,
        "total": total,
        "llmPromptTokens": prompt_tokens,
        "llmCompletionTokens": completion_tokens,
        "ttsCharacters": characters,
    }
    return items, breakdown


def _pick(value: Any, default: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value.get("provider"):
        return {k: value[k] for k in ("provider", "model", "voiceId") if k in value}
    return dict(default)


def analysis_costs(analysis: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """The ``analysis`` cost items, ``analysisCostBreakdown`` and their total, one per result."""
    items: list[dict[str, Any]] = []
    breakdown: dict[str, Any] = {}
    total = 0.0
    for key in ("summary", "structuredData", "successEvaluation"):
        if key not in analysis:
            continue
        cost = 0.0004
        items.append(
            {
                "type": "analysis",
                "analysisType": key,
                "model": dict(_ANALYSIS_MODEL),
                "promptTokens": 600,
                "completionTokens": 60,
                "cost": cost,
            }
        )
        breakdown[key] = cost
        breakdown[f"{key}PromptTokens"] = 600
        breakdown[f"{key}CompletionTokens"] = 60
        total += cost
    return items, breakdown, round(total, 4)


_RUBRIC_VALUES: dict[str, tuple[str, ...]] = {
    "PassFail": ("true", "false"),
    "NumericScale": tuple(str(i) for i in range(1, 11)),
    "DescriptiveScale": ("Excellent", "Good", "Fair", "Poor"),
    "PercentageScale": tuple(f"{i}%" for i in range(0, 101, 5)),
    "LikertScale": ("Strongly Agree", "Agree", "Neutral", "Disagree", "Strongly Disagree"),
}


def analysis(
    plan: dict[str, Any], seed: str, customer: dict[str, Any], variables: dict[str, Any], ended_reason: str
) -> dict[str, Any]:
    """``call.analysis`` as the assistant's ``analysisPlan`` asks for it (Vapi's defaults otherwise)."""
    out: dict[str, Any] = {}
    summary_plan = plan.get("summaryPlan") or {}
    if summary_plan.get("enabled", True) is not False:
        who = customer.get("name") or "the customer"
        number = customer.get("number") or customer.get("sipUri") or "an unknown number"
        out["summary"] = (
            f"The assistant called {who} at {number} about their appointment. "
            f"The call ended with {ended_reason}."
        )
    data_plan = plan.get("structuredDataPlan") or {}
    if data_plan.get("enabled") is True and isinstance(data_plan.get("schema"), dict):
        value = structured_value(data_plan["schema"], seed, "structuredData", variables)
        out["structuredData"] = value if isinstance(value, dict) else {"value": value}
    eval_plan = plan.get("successEvaluationPlan") or {}
    if eval_plan.get("enabled", True) is not False:
        rubric = eval_plan.get("rubric") or "PassFail"
        choices = _RUBRIC_VALUES.get(rubric)
        if choices is None:
            out["successEvaluation"] = f"{rubric}: the call met its goal (emulated evaluation)."
        else:
            out["successEvaluation"] = choices[digest(seed, "successEvaluation") % len(choices)]
    return out


def structured_value(schema: dict[str, Any], seed: str, path: str, variables: dict[str, Any]) -> Any:
    """A value that satisfies ``schema`` (type, enum, format, nested properties and items).

    A property whose name is a key of ``variables`` (the call's ``variableValues``) takes that value
    when its type fits: the customer said what the DAG already knew.
    """
    name = path.rsplit(".", 1)[-1]
    kind = schema.get("type")
    if name in variables and _fits(variables[name], kind, schema.get("enum")):
        return variables[name]
    h = digest(seed, path)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[h % len(enum)]
    if kind == "object":
        props = schema.get("properties") or {}
        return {
            key: structured_value(sub if isinstance(sub, dict) else {}, seed, f"{path}.{key}", variables)
            for key, sub in props.items()
        }
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "string"}
        assert isinstance(items, dict)
        return [structured_value(items, seed, f"{path}.{i}", variables) for i in range(1 + h % 3)]
    if kind == "boolean":
        return bool(h % 2)
    if kind == "integer":
        low = int(schema.get("minimum", 1))
        high = int(schema.get("maximum", low + 9))
        return low + h % (high - low + 1)
    if kind == "number":
        lo = float(schema.get("minimum", 0))
        hi = float(schema.get("maximum", lo + 100))
        return round(lo + (h % 10_000) / 10_000 * (hi - lo), 2)
    return _string(schema.get("format"), name, h)


def _fits(value: Any, kind: Any, enum: Any) -> bool:
    if isinstance(enum, list) and value not in enum:
        return False
    checks: dict[str, Any] = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    check = checks.get(kind) if isinstance(kind, str) else None
    return bool(check(value)) if check else True


def _string(fmt: Any, name: str, h: int) -> str:
    base = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(days=h % 180, minutes=30 * (h % 16))
    if fmt == "date":
        return (date(2026, 1, 5) + timedelta(days=h % 180)).isoformat()
    if fmt == "date-time":
        return base.isoformat().replace("+00:00", "Z")
    if fmt == "time":
        return base.strftime("%H:%M:%S")
    if fmt == "duration":
        return f"PT{5 + h % 55}M"
    if fmt == "email":
        return f"customer{h % 1000}@example.com"
    if fmt == "uuid":
        hx = f"{h:016x}{digest(str(h)):016x}"
        return f"{hx[:8]}-{hx[8:12]}-4{hx[13:16]}-8{hx[17:20]}-{hx[20:32]}"
    if fmt in ("hostname",):
        return f"host{h % 100}.example.com"
    if fmt == "ipv4":
        return f"192.0.2.{h % 254 + 1}"
    if fmt == "ipv6":
        return f"2001:db8::{h % 65535:x}"
    return f"{name or 'value'}-{h % 100_000:05d}"
