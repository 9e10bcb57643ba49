"""Call recordings: the artifact's URLs, the presigned storage URLs that download them, and the
audio itself.

A call that ended after a conversation (it has messages) and whose effective assistant does not
set ``artifactPlan.recordingEnabled: false`` has a recording, in four kinds: ``mono`` (both sides
mixed), ``stereo`` (assistant left, customer right), ``assistant`` and ``customer``. Its
``artifact`` carries the *stable* URLs (``recording.stereoUrl``, ``recording.mono.*``, the
deprecated ``recordingUrl`` / ``stereoRecordingUrl``) and, regenerated for every response, the
*presigned* ones (``presignedMonoUrl`` ... with ``presignedUrlsExpiresAt``).

Both point at the emulator's storage route, which is not Vapi's API and takes no API key (like an
S3 object): ``{base}/_storage/recordings/{call_id}/{kind}.wav``. A presigned URL adds
``?expires=<epoch ms>&nonce=<n>&signature=<hex>`` (an HMAC of the path, the expiry and the nonce
under a secret of the emulator): valid until ``expires``, answered with a small real WAV file
(PCM 16-bit, 8 kHz; a deterministic tone per call and kind). An expired, forged or unsigned URL
is a 403 with S3's XML error body; a signed URL of a call that is gone is a 404 (``NoSuchKey``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import struct
import sys
from array import array
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from fastapi.responses import Response

from .constants import STORAGE_PREFIX

#: The recording kinds and the file each one is stored as.
KINDS = ("mono", "stereo", "assistant", "customer")
#: ``GET /call/{id}/<route>`` -> the recording kind it redirects to.
ROUTE_KINDS = {
    "mono-recording": "mono",
    "stereo-recording": "stereo",
    "assistant-recording": "assistant",
    "customer-recording": "customer",
}
#: The artifact routes of the spec no phone call of the emulator has (always 404).
MISSING_ARTIFACTS = ("video-recording", "pcap", "call-logs")
#: The presigned artifact field of each kind.
PRESIGNED_FIELDS = {
    "mono": "presignedMonoUrl",
    "stereo": "presignedStereoUrl",
    "assistant": "presignedAssistantUrl",
    "customer": "presignedCustomerUrl",
}
EXPIRES_FIELD = "presignedUrlsExpiresAt"
ARTIFACT_NOT_FOUND = "Artifact not found."
RECORDINGS_PATH = f"{STORAGE_PREFIX}/recordings"
#: ``/_storage/recordings/{call_id}/{kind}.wav``
STORAGE_PATH_RE = re.compile(rf"^{re.escape(RECORDINGS_PATH)}/([^/]+)/([a-z]+)\.wav$")

#: Where a rendered ``Call`` gets its presigned fields: a key no client can send (the JSON of
#: ``"\u0000presigned": 0`` in the artifact; keys are always quoted, values escaped).
PRESIGN_SLOT = "\x00presigned"
PRESIGN_SLOT_BYTES = json.dumps({PRESIGN_SLOT: 0}, separators=(",", ":"))[1:-1].encode()

SAMPLE_RATE = 8000
XML_MEDIA = "application/xml"
WAV_MEDIA = "audio/wav"


def recording_enabled(assistant: Mapping[str, Any]) -> bool:
    """Whether the effective assistant records (Vapi's default: it does)."""
    plan = assistant.get("artifactPlan")
    return not (isinstance(plan, dict) and plan.get("recordingEnabled") is False)


def object_path(call_id: str, kind: str) -> str:
    """The storage path of one recording."""
    return f"{RECORDINGS_PATH}/{call_id}/{kind}.wav"


def stable_fields(base: str, call_id: str) -> dict[str, Any]:
    """The artifact's stable (never expiring, not downloadable without a signature) URLs."""
    url = {kind: f"{base}{object_path(call_id, kind)}" for kind in KINDS}
    return {
        "recordingUrl": url["mono"],
        "stereoRecordingUrl": url["stereo"],
        "recording": {
            "stereoUrl": url["stereo"],
            "mono": {
                "combinedUrl": url["mono"],
                "assistantUrl": url["assistant"],
                "customerUrl": url["customer"],
            },
        },
    }


class Presigner:
    """Signs and checks presigned storage URLs (a secret of its own, new for each emulator)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._nonces = itertools.count(1)

    def _signature(self, call_id: str, kind: str, expires: str, nonce: str) -> str:
        """A keyed BLAKE2b MAC of the object's path, expiry and nonce (a tenth of HMAC's cost:
        a listing of 1,000 calls signs 4,000 URLs)."""
        message = f"{object_path(call_id, kind)}\n{expires}\n{nonce}".encode()
        return hashlib.blake2b(message, key=self._secret, digest_size=20).hexdigest()

    def _query(self, call_id: str, kind: str, expires_ms: int, nonce: str) -> str:
        expires = str(expires_ms)
        return f"expires={expires}&nonce={nonce}&signature={self._signature(call_id, kind, expires, nonce)}"

    def url(self, base: str, call_id: str, kind: str, expires_ms: int) -> str:
        """A fresh presigned URL of one recording, valid until ``expires_ms``."""
        nonce = format(next(self._nonces), "x")
        return f"{base}{object_path(call_id, kind)}?{self._query(call_id, kind, expires_ms, nonce)}"

    def fields(self, base: str, call_id: str, expires_ms: int, expires_iso: str) -> bytes:
        """The presigned artifact fields of a call, as JSON members (what replaces the slot)."""
        nonce = format(next(self._nonces), "x")
        prefix = f"{base}{RECORDINGS_PATH}/{call_id}/"
        parts = [
            f"{json.dumps(field)}:"
            + json.dumps(f"{prefix}{kind}.wav?{self._query(call_id, kind, expires_ms, nonce)}")
            for kind, field in PRESIGNED_FIELDS.items()
        ]
        parts.append(f'"{EXPIRES_FIELD}":"{expires_iso}"')
        return ",".join(parts).encode()

    def check(self, call_id: str, kind: str, query: Mapping[str, str], now_ms: int) -> tuple[str, str] | None:
        """Why the storage request may not read the object (an S3 error code and message), or
        None when its signature holds and it has not expired."""
        expires, nonce, signature = (query.get(k) for k in ("expires", "nonce", "signature"))
        if not expires or not nonce or not signature:
            return (
                "AccessDenied",
                "Query-string authentication requires the expires, nonce and signature parameters",
            )
        expected = self._signature(call_id, kind, expires, nonce)
        if not hmac.compare_digest(expected.encode(), signature.encode()) or not expires.isdigit():
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if now_ms > int(expires):
            return "AccessDenied", "Request has expired"
        return None


def fill(data: bytes, presigned: bytes) -> bytes:
    """A rendered ``Call`` with its presign slot replaced by ``presigned`` (unchanged without one)."""
    head, found, tail = data.partition(PRESIGN_SLOT_BYTES)
    return head + presigned + tail if found else data


# -- the audio ------------------------------------------------------------------------------------


def _tone(frequency: float, count: int, amplitude: float) -> list[float]:
    step = 2 * math.pi * frequency / SAMPLE_RATE
    fade = SAMPLE_RATE // 100  # 10 ms in and out: no click
    return [amplitude * math.sin(step * i) * min(1.0, i / fade, (count - 1 - i) / fade) for i in range(count)]


def _frequency(call_id: str, side: str) -> float:
    digest = hashlib.sha256(f"{call_id}\x1f{side}".encode()).digest()
    return 300.0 + int.from_bytes(digest[:4], "big") % 600


@lru_cache(maxsize=64)
def wav(call_id: str, kind: str) -> bytes:
    """The recording ``kind`` of ``call_id``: a RIFF/WAVE file, PCM 16-bit at 8 kHz (2 channels for
    ``stereo``, else 1), 0.5 to 1 s of a tone that depends on the call and the kind."""
    length = hashlib.sha256(call_id.encode()).digest()[0]
    count = SAMPLE_RATE // 2 + length * (SAMPLE_RATE // 2) // 256
    assistant = _tone(_frequency(call_id, "assistant"), count, 9000.0)
    customer = _tone(_frequency(call_id, "customer"), count, 7000.0)
    if kind == "stereo":
        frames = [value for pair in zip(assistant, customer, strict=True) for value in pair]
    elif kind == "mono":
        frames = [(a + c) / 2 for a, c in zip(assistant, customer, strict=True)]
    else:
        frames = assistant if kind == "assistant" else customer
    samples = array("h", (round(v) for v in frames))
    if sys.byteorder == "big":
        samples.byteswap()
    data = samples.tobytes()
    channels = 2 if kind == "stereo" else 1
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        SAMPLE_RATE,
        SAMPLE_RATE * channels * 2,
        channels * 2,
        16,
        b"data",
        len(data),
    )
    return header + data


# -- the storage route's answers ------------------------------------------------------------------

_STORAGE_FAULT_ERRORS = {
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


def storage_error(status: int, code: str | None = None, message: str | None = None) -> Response:
    """S3's XML error answer (``code``/``message`` default to what S3 says for ``status``)."""
    default_code, default_message = (
        _STORAGE_FAULT_ERRORS.get(status) or _STORAGE_FAULT_ERRORS[500 if status >= 500 else 403]
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code or default_code}</Code><Message>{message or default_message}</Message></Error>"
    )
    return Response(content=body.encode(), status_code=status, media_type=XML_MEDIA)


#: What :func:`byte_range` answers for a range no byte of the object satisfies (416).
UNSATISFIABLE = (-1, -1)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range: bytes=a-b`` header asks of ``size`` bytes: None when
    there is no (usable) header, :data:`UNSATISFIABLE` when no byte of the object is in it."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return UNSATISFIABLE
    return start, end


def audio_response(data: bytes, range_header: str | None) -> Response:
    """The WAV answer: whole (200), one byte range (206) or an unsatisfiable range (416)."""
    wanted = byte_range(range_header, len(data))
    headers = {"Accept-Ranges": "bytes"}
    if wanted == UNSATISFIABLE:
        headers["Content-Range"] = f"bytes */{len(data)}"
        return Response(status_code=416, headers=headers)
    if wanted is None:
        return Response(content=data, media_type=WAV_MEDIA, headers=headers)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return Response(content=data[start : end + 1], status_code=206, media_type=WAV_MEDIA, headers=headers)
