"""The emulator's run-time settings (:class:`EngineConfig`) and how the admin API changes them."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .constants import (
    CONCURRENCY_MODES,
    DEFAULT_ANALYSIS_DELAY_S,
    DEFAULT_API_KEY,
    DEFAULT_CONCURRENCY_LIMIT,
    DEFAULT_PRESIGNED_URL_TTL_S,
    DEFAULT_PUBLIC_KEY,
    DEFAULT_REQUEST_LOG_BYTES,
    DEFAULT_REQUEST_LOG_SIZE,
    DEFAULT_STRUCTURED_OUTPUT_DELAY_S,
)

# camelCase admin key -> (attribute, type); the settings that can change at run time.
_SETTABLE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "speed": ("speed", float),
    "concurrencyLimit": ("concurrency_limit", int),
    "concurrencyMode": ("concurrency_mode", str),
    "analysisDelaySeconds": ("analysis_delay_s", float),
    "structuredOutputDelaySeconds": ("structured_output_delay_s", float),
    "presignedUrlTtlSeconds": ("presigned_url_ttl_s", float),
    "clockOffsetSeconds": ("clock_offset_s", float),
}

#: How far Vapi's clock may be set from the test's (ten years either way; further, timestamps
#: would leave what the wire format and ``datetime`` can hold).
MAX_CLOCK_OFFSET_S = 10 * 365.25 * 86400


@dataclass
class EngineConfig:
    """Settings that can change at run time through the admin API."""

    api_key: str = DEFAULT_API_KEY
    #: The account's public key: what a locked ``monitor.controlUrl`` / ``listenUrl`` wants.
    public_key: str = DEFAULT_PUBLIC_KEY
    speed: float = 1.0
    concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT
    concurrency_mode: str = "queue"
    analysis_delay_s: float = DEFAULT_ANALYSIS_DELAY_S
    structured_output_delay_s: float = DEFAULT_STRUCTURED_OUTPUT_DELAY_S
    #: Real seconds (not divided by ``speed``) a presigned recording URL stays valid.
    presigned_url_ttl_s: float = DEFAULT_PRESIGNED_URL_TTL_S
    request_log_size: int = DEFAULT_REQUEST_LOG_SIZE
    request_log_bytes: int = DEFAULT_REQUEST_LOG_BYTES
    #: Seconds Vapi's clock is ahead of the test's (negative: behind); see :meth:`.Engine.now`.
    clock_offset_s: float = 0.0

    @property
    def clock_offset_ms(self) -> int:
        """:attr:`clock_offset_s` in whole milliseconds."""
        return round(self.clock_offset_s * 1000)

    def check(self) -> None:
        """Raise ValueError on a setting the engine cannot run with."""
        if not self.api_key or not self.public_key:
            raise ValueError("the API key and the public key must not be empty")
        if self.public_key == self.api_key:
            raise ValueError("the public key must differ from the API (private) key")
        if not self.speed > 0:
            raise ValueError("speed must be > 0")
        if self.concurrency_limit < 0:
            raise ValueError("concurrency limit must be >= 0")
        if self.concurrency_mode not in CONCURRENCY_MODES:
            raise ValueError(f"concurrency mode must be one of {CONCURRENCY_MODES}")
        if self.analysis_delay_s < 0:
            raise ValueError("analysis delay must be >= 0")
        if self.structured_output_delay_s < 0:
            raise ValueError("structured output delay must be >= 0")
        if not self.presigned_url_ttl_s >= 0:
            raise ValueError("presigned URL TTL must be >= 0")
        if not (math.isfinite(self.clock_offset_s) and abs(self.clock_offset_s) <= MAX_CLOCK_OFFSET_S):
            raise ValueError(f"clock offset must be a number of seconds within ±{MAX_CLOCK_OFFSET_S:g}")

    def to_wire(self) -> dict[str, Any]:
        """The admin API's view (camelCase, without the keys)."""
        return {
            "speed": self.speed,
            "concurrencyLimit": self.concurrency_limit,
            "concurrencyMode": self.concurrency_mode,
            "analysisDelaySeconds": self.analysis_delay_s,
            "structuredOutputDelaySeconds": self.structured_output_delay_s,
            "presignedUrlTtlSeconds": self.presigned_url_ttl_s,
            "requestLogSize": self.request_log_size,
            "requestLogBytes": self.request_log_bytes,
            "clockOffsetSeconds": self.clock_offset_s,
        }

    def changed(self, changes: dict[str, Any]) -> EngineConfig:
        """A checked copy with ``changes`` (camelCase keys of :meth:`to_wire`) applied; ValueError
        on an unknown key or a value the engine cannot run with (``self`` is left as it was)."""
        new = copy.deepcopy(self)
        for key, value in changes.items():
            if key not in _SETTABLE:
                raise ValueError(f"unknown setting {key!r} (known: {sorted(_SETTABLE)})")
            attr, kind = _SETTABLE[key]
            setattr(new, attr, kind(value))
        new.check()
        return new
