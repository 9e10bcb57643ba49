"""Recordings of ended calls: the artifact's URLs, Vapi's ``/call/{id}/*-recording`` redirects and
the presigned storage route behind them (no API key, expiring, logged, open to faults), over HTTP."""

from __future__ import annotations

import io
import json
import time
import wave
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import pytest

from airflow_provider_vapi.emulator.errors import INVALID_KEY_MESSAGE
from airflow_provider_vapi.emulator.server import EmulatorProcess
from tests.emulator.conftest import PRESIGNED, error, get_call, stable, validate

TALKS = "+15550001234"  # a completed conversation
ROUTES = {
    "mono-recording": ("presignedMonoUrl", 1),
    "stereo-recording": ("presignedStereoUrl", 2),
    "assistant-recording": ("presignedAssistantUrl", 1),
    "customer-recording": ("presignedCustomerUrl", 1),
}
RECORDING_KEYS = {"recording", "recordingUrl", "stereoRecordingUrl", *PRESIGNED}
NOT_FOUND = {"message": "Artifact not found.", "error": "Not Found", "statusCode": 404}
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ended(emu, http, number: str = TALKS, **fields) -> dict:
    """A call to ``number`` once it has ended, read (and validated) through ``GET /call/{id}``."""
    call = emu.create_call(number, **fields)
    emu.wait_for(call["id"])
    return get_call(http, call["id"])


def redirect(http: httpx.Client, call_id: str, route: str) -> str:
    """``GET /call/{id}/<route>``: assert a 302 and return its Location."""
    answer = http.get(f"/call/{call_id}/{route}", follow_redirects=False)
    assert answer.status_code == 302, answer.text
    assert answer.text == f"Found. Redirecting to {answer.headers['location']}"
    return answer.headers["location"]


def download(url: str, **kwargs) -> httpx.Response:
    """GET a storage URL the way an archiver does: a plain client, no API key."""
    return httpx.get(url, timeout=10, **kwargs)


def audio(data: bytes) -> wave.Wave_read:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    return wave.open(io.BytesIO(data))


def s3_error(answer: httpx.Response, status: int, code: str) -> str:
    """Assert S3's XML error and return its message."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    assert f"<Error><Code>{code}</Code><Message>" in answer.text
    return answer.text.split("<Message>")[1].split("</Message>")[0]


def test_an_ended_conversation_carries_its_recording(emu, http):
    call = ended(emu, http)
    artifact = call["artifact"]
    assert set(artifact) >= RECORDING_KEYS
    mono = artifact["recording"]["mono"]
    assert artifact["recordingUrl"] == mono["combinedUrl"]
    assert artifact["stereoRecordingUrl"] == artifact["recording"]["stereoUrl"]
    stable_urls = [mono["combinedUrl"], artifact["stereoRecordingUrl"], mono["assistantUrl"], mono["customerUrl"]]
    assert len(set(stable_urls)) == 4 and all(call["id"] in url and "?" not in url for url in stable_urls)
    presigned = [artifact[key] for key, _ in ROUTES.values()]
    assert len(set(presigned)) == 4
    for url, base in zip(presigned, stable_urls, strict=True):
        assert url.startswith(base + "?") and "signature=" in url
    expires = stamp(artifact["presignedUrlsExpiresAt"])
    assert 590 < (expires - datetime.now(UTC)).total_seconds() <= 600


def test_presigned_urls_are_new_in_every_answer_and_everywhere(emu, http):
    created = emu.create_call(TALKS)
    emu.wait_for(created["id"], analysis=True)  # nothing else changes between the reads below
    call = get_call(http, created["id"])
    again = get_call(http, call["id"])
    listed = http.get("/call", params={"id": call["id"]}).json()
    validate(listed, "Call", array=True)
    admin = emu.call(call["id"])
    reads = [call, again, listed[0], admin, emu.calls()[0]]
    for key in PRESIGNED[:4]:
        assert len({read["artifact"][key] for read in reads}) == len(reads), key
    assert all(stable(read) == stable(call) for read in reads), "nothing else differs"
    assert stamp(again["artifact"]["presignedUrlsExpiresAt"]) >= stamp(call["artifact"]["presignedUrlsExpiresAt"])


@pytest.mark.parametrize(
    "number", ["+15550000001", "+15550000002", "+15550000005"], ids=["busy", "no-answer", "start-error"]
)
def test_calls_nobody_answered_have_no_recording(emu, http, number):
    call = ended(emu, http, number)
    assert not RECORDING_KEYS & set(call["artifact"])
    for route in ROUTES:
        answer = http.get(f"/call/{call['id']}/{route}", follow_redirects=False)
        assert answer.status_code == 404 and answer.json() == NOT_FOUND


def test_recording_disabled_or_not_ended_means_no_recording(emu, http):
    off = ended(emu, http, assistantOverrides={"artifactPlan": {"recordingEnabled": False}})
    assert off["messages"] and not RECORDING_KEYS & set(off["artifact"])
    assert http.get(f"/call/{off['id']}/mono-recording").json() == NOT_FOUND
    live = emu.create_call("+15550000006")  # stays in progress until ended
    emu.wait_for(live["id"], status="in-progress")
    assert http.get(f"/call/{live['id']}/stereo-recording").json() == NOT_FOUND
    emu.end_call(live["id"])
    assert redirect(http, live["id"], "stereo-recording")
    assert set(get_call(http, live["id"])["artifact"]) >= RECORDING_KEYS


@pytest.mark.parametrize("route", list(ROUTES))
def test_each_recording_route_redirects_to_a_wav(emu, http, route):
    call = ended(emu, http)
    location = redirect(http, call["id"], route)
    field, channels = ROUTES[route]
    assert location.split("?")[0] == call["artifact"][field].split("?")[0]
    answer = download(location)
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    assert int(answer.headers["content-length"]) == len(answer.content)
    with audio(answer.content) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (channels, 2, 8000)
        assert 0.5 <= wav.getnframes() / 8000 <= 1.0
        frames = wav.readframes(wav.getnframes())
    assert len(frames) == wav.getnframes() * channels * 2 and any(frames)
    assert download(call["artifact"][field]).content == answer.content, "the body's presigned URL works too"


def test_recordings_differ_per_call_and_per_kind(emu, http):
    first, second = ended(emu, http), ended(emu, http, "+15550002222")
    bodies = {
        (call["id"], field): download(call["artifact"][field]).content
        for call in (first, second)
        for field, _ in ROUTES.values()
    }
    assert len(set(bodies.values())) == len(bodies)
    again = download(redirect(http, first["id"], "mono-recording")).content
    assert again == bodies[(first["id"], "presignedMonoUrl")], "deterministic"


def test_unknown_calls_bad_ids_and_missing_artifacts(emu, http):
    call = ended(emu, http)
    for route in (*ROUTES, "video-recording", "pcap", "call-logs"):
        assert http.get(f"/call/{UNKNOWN}/{route}").json() == NOT_FOUND
        assert error(http.get(f"/call/not-a-uuid/{route}")) == "Validation failed (uuid is expected)"
    for route in ("video-recording", "pcap", "call-logs"):
        assert http.get(f"/call/{call['id']}/{route}").json() == NOT_FOUND
    assert error(http.get(f"/call/{call['id']}/nothing"), 404) == f"Cannot GET /call/{call['id']}/nothing"


def test_recording_routes_need_the_api_key_and_storage_never_gets_it(emu, http):
    call = ended(emu, http)
    anonymous = httpx.get(f"{emu.url}/call/{call['id']}/mono-recording", follow_redirects=False)
    assert error(anonymous, 401) == INVALID_KEY_MESSAGE
    emu.clear_requests()
    location = redirect(http, call["id"], "mono-recording")
    assert emu.api_key not in location
    assert download(location).status_code == 200
    assert download(call["artifact"]["presignedStereoUrl"]).status_code == 200
    [route] = emu.requests(path=f"/call/{call['id']}/mono-recording")
    assert route["authorization"] is True and route["status"] == 302
    stored = emu.requests(path="/_storage/*")
    assert [(r["path"].rsplit("/", 1)[1], r["status"]) for r in stored] == [("mono.wav", 200), ("stereo.wav", 200)]
    assert all(r["authorization"] is False for r in stored)
    assert emu.api_key not in json.dumps(emu.request_log())
    # a client that (wrongly) sends its key anyway is served, and the log says so
    assert download(location, headers=emu.headers).status_code == 200
    assert emu.requests(path="/_storage/*")[-1]["authorization"] is True


def test_an_expired_url_is_refused_with_s3_s_error(emu, http):
    assert emu.configure(presigned_url_ttl=0.2)["presignedUrlTtlSeconds"] == 0.2
    call = ended(emu, http)
    url = call["artifact"]["presignedCustomerUrl"]
    left = (stamp(call["artifact"]["presignedUrlsExpiresAt"]) - datetime.now(UTC)).total_seconds()
    assert left <= 0.2
    deadline = time.monotonic() + 10
    while (answer := download(url)).status_code == 200:
        assert time.monotonic() < deadline, "the URL never expired"
        time.sleep(0.05)
    assert s3_error(answer, 403, "AccessDenied") == "Request has expired"
    assert emu.requests(path="/_storage/*")[-1]["status"] == 403
    emu.configure(presigned_url_ttl=600)
    assert download(redirect(http, call["id"], "customer-recording")).status_code == 200, "a new URL works"


def test_forged_unsigned_and_gone_urls(emu, http):
    call = ended(emu, http)
    url = call["artifact"]["presignedMonoUrl"]
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    forged = {**query, "expires": str(int(query["expires"]) + 3_600_000)}
    forged_url = urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in forged.items())))
    assert "does not match" in s3_error(download(forged_url), 403, "SignatureDoesNotMatch")
    other_kind = url.replace("/mono.wav?", "/stereo.wav?")
    s3_error(download(other_kind), 403, "SignatureDoesNotMatch")
    s3_error(download(call["artifact"]["recordingUrl"]), 403, "AccessDenied")  # stable: not downloadable
    assert http.request("DELETE", f"/call/{call['id']}", json={}).status_code == 200
    assert s3_error(download(url), 404, "NoSuchKey") == "The specified key does not exist."
    assert http.get(f"/call/{call['id']}/mono-recording").json() == NOT_FOUND


def test_byte_ranges(emu, http):
    url = ended(emu, http)["artifact"]["presignedStereoUrl"]
    whole = download(url)
    assert whole.headers["accept-ranges"] == "bytes"
    size = len(whole.content)
    head = download(url, headers={"Range": "bytes=0-43"})
    assert head.status_code == 206 and head.content == whole.content[:44]
    assert head.headers["content-range"] == f"bytes 0-43/{size}"
    tail = download(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    beyond = download(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"


def test_faults_hit_the_storage_route(emu, http):
    call = ended(emu, http)
    url = call["artifact"]["presignedMonoUrl"]
    good = download(url).content
    emu.faults([500, 503, "ok"], path="/_storage/*")
    assert "internal error" in s3_error(download(url), 500, "InternalError")
    s3_error(download(url), 503, "SlowDown")
    assert download(url).content == good
    emu.fault("drop", path="/_storage/*")
    with pytest.raises(httpx.TransportError):
        download(url)
    emu.fault("garbage:truncated", path="/_storage/*")
    cut = download(url)
    assert cut.status_code == 200 and cut.headers["content-type"] == "audio/wav"
    assert cut.content == good[: len(good) // 2] and int(cut.headers["content-length"]) == len(cut.content)
    assert int.from_bytes(cut.content[4:8], "little") + 8 > len(cut.content), "the RIFF size gives it away"
    assert [r["fault"] for r in emu.requests(path="/_storage/*")][-6:] == [None, "500", "503", "ok", "drop", "garbage:truncated"]
    assert download(url).content == good, "rules used up"


def test_faults_hit_the_recording_routes(emu, http):
    call = ended(emu, http)
    route = f"/call/{call['id']}/stereo-recording"
    emu.faults([500, 403], method="GET", path=route)
    assert error(http.get(route), 500) == "Internal server error"
    assert error(http.get(route), 403) == "Forbidden"
    assert redirect(http, call["id"], "stereo-recording")
    emu.fault("drop", path=route)
    with pytest.raises(httpx.TransportError):
        http.get(route, follow_redirects=False)
    assert [r["fault"] for r in emu.requests(path=route)] == ["500", "403", None, "drop"]


def test_the_ttl_is_a_setting_and_a_flag(emu):
    assert emu.config()["presignedUrlTtlSeconds"] == 600
    with pytest.raises(httpx.HTTPStatusError) as raised:
        emu.configure(presigned_url_ttl=-1)
    assert raised.value.response.status_code == 400
    with EmulatorProcess(presigned_url_ttl=5) as process:
        assert process.config()["presignedUrlTtlSeconds"] == 5
        call = process.create_call("+15550000005")
        assert "recording" not in process.call(call["id"])["artifact"]
