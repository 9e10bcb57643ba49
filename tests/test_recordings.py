"""Recordings archived by ExportCallsOperator against the emulator's real redirect, presigned URLs
and WAV files: real audio, nothing downloaded twice, the API key never sent to storage, expired
links asked for again, a failure halfway resumed by a retry."""

from __future__ import annotations

import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_vapi.exceptions import VapiError
from airflow_provider_vapi.operators import ExportCallsOperator

pytestmark = pytest.mark.usefixtures("vapi_conn")

DAY = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW = (DAY, DAY + timedelta(hours=1))
STORAGE = "/_storage/*"


def export(path: Path, **kwargs: Any) -> dict[str, Any]:
    op = ExportCallsOperator(
        task_id="export",
        path=str(path),
        updated_after=WINDOW[0],
        updated_before=WINDOW[1],
        include_recordings=True,
        **kwargs,
    )
    result: dict[str, Any] = op.execute({})
    return result


def recorded(emu: Any) -> set[str]:
    """The ids of the calls the emulator says have a mono recording."""
    return {c["id"] for c in emu.calls() if ((c.get("artifact") or {}).get("recording") or {}).get("mono")}


def audio_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "recordings").rglob("*") if p.is_file() and ".part-" not in p.name)


def storage_gets(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests("GET") if e["path"].startswith("/_storage/")]


def recording_asks(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests("GET") if e["path"].endswith("-recording")]


def test_each_recording_lands_as_real_audio_and_a_rerun_downloads_nothing(vapi_emulator, tmp_path):
    vapi_emulator.seed_calls(40, *WINDOW)
    vapi_emulator.seed_calls(10, *WINDOW, recording=False)
    with_audio = recorded(vapi_emulator)
    assert 0 < len(with_audio) < 50  # some calls were never answered: they have no recording
    first = export(tmp_path)
    assert first["recordings"]["copied"] == len(with_audio)
    assert first["recordings"]["without"] == 50 - len(with_audio)
    assert first["recordings"]["failed"] == first["recordings"]["pending"] == 0
    files = audio_files(tmp_path)
    assert {f.name.removesuffix("-mono.wav") for f in files} == with_audio
    for f in files:
        head = f.read_bytes()[:12]
        assert head[:4] == b"RIFF" and head[8:12] == b"WAVE", f
        with wave.open(str(f)) as audio:
            assert audio.getnchannels() == 1 and audio.getnframes() > 0
    assert first["recordings"]["bytes"] == sum(f.stat().st_size for f in files)
    assert "signature=" not in Path(first["path"]).read_text()  # no presigned link in the file

    vapi_emulator.clear_requests()
    again = export(tmp_path)
    assert again["recordings"]["copied"] == 0
    assert again["recordings"]["present"] == len(with_audio)
    assert storage_gets(vapi_emulator) == [] and recording_asks(vapi_emulator) == []


def test_the_api_key_never_reaches_the_storage_host(vapi_emulator, tmp_path):
    vapi_emulator.seed_calls(10, *WINDOW)
    export(tmp_path, recording_kinds=["mono", "stereo"])
    asks, gets = recording_asks(vapi_emulator), storage_gets(vapi_emulator)
    assert asks and len(gets) == len(asks)
    assert all(e["authorization"] for e in asks)  # the log does see the key where it is sent
    assert not any(e["authorization"] for e in gets)


def test_stereo_on_request_is_two_channel_audio_beside_the_mono(vapi_emulator, tmp_path):
    vapi_emulator.seed_calls(5, *WINDOW)
    result = export(tmp_path, recording_kinds=["mono", "stereo"])
    channels = {}
    for f in audio_files(tmp_path):
        with wave.open(str(f)) as audio:
            channels[f.name.rsplit("-", 1)[1]] = audio.getnchannels()
    assert channels == {"mono.wav": 1, "stereo.wav": 2}
    assert result["recordings"]["copied"] == 2 * len(recorded(vapi_emulator))


def test_an_expired_link_is_asked_for_again(vapi_emulator, tmp_path):
    """Storage is slow to start the download and the link expires meanwhile (403): the hook asks
    Vapi for a new link rather than retrying the dead one, and the file is whole."""
    vapi_emulator.seed_calls(3, *WINDOW)
    vapi_emulator.configure(presigned_url_ttl=1)
    vapi_emulator.fault("late:2", method="GET", path=STORAGE, times=1)
    result = export(tmp_path)
    copied = len(recorded(vapi_emulator))
    assert result["recordings"]["copied"] == copied
    assert [int(e["status"]) for e in storage_gets(vapi_emulator)].count(403) == 1
    assert len(recording_asks(vapi_emulator)) == copied + 1
    for f in audio_files(tmp_path):
        with wave.open(str(f)) as audio:
            assert audio.getnframes() > 0


@pytest.mark.parametrize(
    "fault",
    [
        "drop",  # the connection dies mid-body: fewer bytes than Content-Length
        "garbage:truncated",  # the stored object itself is cut: Content-Length agrees, the WAV header does not
    ],
)
def test_a_body_cut_short_is_downloaded_again(vapi_emulator, tmp_path, fault):
    vapi_emulator.seed_calls(3, *WINDOW)
    vapi_emulator.fault(fault, method="GET", path=STORAGE, times=1)
    result = export(tmp_path)
    assert result["recordings"]["copied"] == len(recorded(vapi_emulator))
    assert len(storage_gets(vapi_emulator)) == len(audio_files(tmp_path)) + 1
    for f in audio_files(tmp_path):
        with wave.open(str(f)) as audio:  # a cut file would not open (or hold fewer frames)
            assert audio.getnframes() * audio.getsampwidth() * audio.getnchannels() + 44 == f.stat().st_size


def test_a_recording_that_keeps_failing_fails_the_task_and_a_retry_copies_only_it(vapi_emulator, tmp_path):
    """One call's storage keeps answering 500: the others are archived, the calls file is written,
    the task fails naming that call (so Airflow retries it); the retry downloads only that one."""
    vapi_emulator.seed_calls(8, *WINDOW)
    bad = sorted(recorded(vapi_emulator))[0]
    vapi_emulator.fault(500, method="GET", path=f"/_storage/recordings/{bad}/*", times=1000)
    with pytest.raises(VapiError, match=bad):
        export(tmp_path)
    assert len(audio_files(tmp_path)) == len(recorded(vapi_emulator)) - 1
    assert list(tmp_path.glob("calls_*.jsonl"))
    vapi_emulator.clear_faults()
    vapi_emulator.clear_requests()
    retry = export(tmp_path)
    assert retry["recordings"]["copied"] == 1
    assert [e["path"].split("/")[3] for e in storage_gets(vapi_emulator)] == [bad]
    assert not [p for p in tmp_path.rglob("*") if ".part-" in p.name]


EXPORT_IN_A_PROCESS = """
import json, sys
from datetime import datetime
from airflow_provider_vapi.operators import ExportCallsOperator
after, before = (datetime.fromisoformat(v) for v in sys.argv[2:4])
op = ExportCallsOperator(task_id="export", path=sys.argv[1], updated_after=after, updated_before=before,
                         include_recordings=True)
print("RESULT " + json.dumps(op.execute({})))
"""


def test_two_exports_of_the_same_window_at_once_leave_one_whole_copy_of_everything(vapi_emulator, tmp_path):
    """A second worker exports the same interval at the same time (a manual run beside the
    scheduled one), in two processes: each writes its own temporary files, the renames replace
    whole files with whole files, and what is left is exactly what one export leaves."""
    import json
    import subprocess
    import sys

    vapi_emulator.seed_calls(200, *WINDOW)
    argv = [sys.executable, "-c", EXPORT_IN_A_PROCESS, str(tmp_path), *(w.isoformat() for w in WINDOW)]
    workers = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    results = [json.loads(o.split("RESULT ", 1)[1].splitlines()[0]) for o in outputs]
    assert results[0]["path"] == results[1]["path"] and results[0]["calls"] == results[1]["calls"] == 200
    assert sum(r["recordings"]["copied"] + r["recordings"]["present"] for r in results) == 2 * len(
        recorded(vapi_emulator)
    )
    single = export(tmp_path / "alone")
    assert Path(results[0]["path"]).read_bytes() == Path(single["path"]).read_bytes()
    files = audio_files(tmp_path)
    assert len(files) == len(recorded(vapi_emulator))
    for f in files:
        with wave.open(str(f)) as audio:
            assert audio.getnframes() * audio.getsampwidth() * audio.getnchannels() + 44 == f.stat().st_size
    assert not [p for p in tmp_path.rglob("*") if ".part-" in p.name]


def test_a_call_id_that_is_a_path_writes_nothing(tmp_path):
    """The id becomes part of a file name: one that climbs out of the folder is refused before
    any request (the hook is never reached) and before anything is written."""
    from airflow_provider_vapi.landing.recordings import copy_one

    recording = {"recording": {"mono": {"combinedUrl": "https://storage.vapi.ai/x.wav"}}}
    for bad in ("../../etc/cron.d/x", "a/b", "", "x" * 200, " 3f2a9c1e-8b7d-4c2a-9f1e-2b3c4d5e6f70", None):
        call = {"id": bad, "status": "ended", "createdAt": "2026-11-20T10:00:00.000Z", "artifact": recording}
        fate, size, error = copy_one(None, call, "mono", tmp_path)  # type: ignore[arg-type]
        assert (fate, size) == ("failed", 0) and "not a call id" in str(error)
    assert list(tmp_path.rglob("*")) == []


def test_no_presigned_link_reaches_xcom_even_in_full_form(vapi_emulator):
    """A presigned URL opens the audio to whoever reads it until it expires: the wait's XCom keeps
    the stable recording URL, never the presigned ones, in every ``xcom_detail``."""
    import json

    from airflow_provider_vapi.hooks import VapiHook
    from airflow_provider_vapi.results import call_result

    vapi_emulator.seed_calls(5, *WINDOW)
    call_id = sorted(recorded(vapi_emulator))[0]
    hook = VapiHook()
    call = hook.get_call(call_id)
    assert "presignedMonoUrl" in (call.artifact or {})  # Vapi (the emulator) does send them
    for detail in ("compact", "transcript", "full"):
        text = json.dumps(call_result(call, detail))  # type: ignore[arg-type]
        assert "presigned" not in text and "signature=" not in text, detail
    assert call_result(call, "full")["artifact"]["recording"]["mono"]["combinedUrl"]
