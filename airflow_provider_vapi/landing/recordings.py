"""Archiving recordings before their links expire: each exported call's audio, into the team's storage.

Layout: ``<path>/recordings/<created date>/<call id>-<kind><suffix>`` (``kind``: mono, stereo,
customer, assistant). A call's creation date never changes, so its files never move. A file exists
under its final name only once it was downloaded whole (written under a temporary name, its size
checked against ``Content-Length``, then renamed), so a file that is there is complete and is not
downloaded again: a rerun, a retry after a failure halfway, or a backfill fetches only what is
missing. The HTTP side (redirect, presigned URL without the API key, expiry) is
:mod:`~.downloads`', reached through ``VapiHook.download_recording``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from airflow_provider_vapi.exceptions import VapiError
from airflow_provider_vapi.landing.files import temporary_for
from airflow_provider_vapi.wire.ids import is_vapi_id
from airflow_provider_vapi.wire.paging import parse_ts_or_none

if TYPE_CHECKING:
    from airflow_provider_vapi.hook.core import VapiHook

#: How many call ids of each kind of miss the report lists (the counts are always whole).
SAMPLE: Final = 20
DEFAULT_SUFFIX: Final = ".wav"

Fate = Literal["copied", "present", "without", "pending", "failed"]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def stable_url(call: Mapping[str, Any], kind: str) -> str | None:
    """The recording's stable URL on the call (absent: the call has no such recording)."""
    artifact = _dict(call.get("artifact"))
    recording = _dict(artifact.get("recording"))
    mono = _dict(recording.get("mono"))
    candidates = {
        "mono": (mono.get("combinedUrl"), artifact.get("recordingUrl")),
        "stereo": (recording.get("stereoUrl"), artifact.get("stereoRecordingUrl")),
        "customer": (mono.get("customerUrl"),),
        "assistant": (mono.get("assistantUrl"),),
    }[kind]
    return next((url for url in candidates if isinstance(url, str) and url), None)


def target_for(root: Any, call: Mapping[str, Any], kind: str, url: str) -> Any:
    """Where a call's recording is kept under ``root`` (an ObjectStoragePath)."""
    created = parse_ts_or_none(call.get("createdAt"))
    day = created.date().isoformat() if created else "undated"
    tail = url.split("?", 1)[0].rsplit("/", 1)[-1]
    ext = tail.rsplit(".", 1)[1] if "." in tail else ""
    suffix = f".{ext}" if ext.isalnum() and len(ext) <= 5 else ""
    return root / "recordings" / day / f"{call['id']}-{kind}{suffix or DEFAULT_SUFFIX}"


@dataclass
class RecordingReport:
    """What happened to the recordings of an export: counts, bytes, and a sample of call ids."""

    copied: int = 0
    present: int = 0
    without: int = 0
    pending: int = 0
    failed: int = 0
    bytes: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, fate: Fate, call_id: str, size: int = 0, error: str | None = None) -> None:
        setattr(self, fate, getattr(self, fate) + 1)
        self.bytes += size
        if fate in ("without", "pending", "failed"):
            sample = self.samples.setdefault(fate, [])
            if len(sample) < SAMPLE:
                sample.append(call_id)
        if error and len(self.errors) < SAMPLE:
            self.errors.append(error)

    def to_xcom(self) -> dict[str, Any]:
        counts = ("copied", "present", "without", "pending", "failed", "bytes")
        return {**{k: getattr(self, k) for k in counts}, "sample_call_ids": dict(self.samples)}


def _sinks(target: Any) -> tuple[Callable[[], Any], Any]:
    """A factory of fresh sinks writing a temporary file next to ``target``, and that file."""
    temporary = temporary_for(target)

    @contextmanager
    def sink() -> Iterator[IO[bytes]]:
        with temporary.open("wb") as handle:
            yield handle

    return sink, temporary


def copy_one(hook: VapiHook, call: Mapping[str, Any], kind: str, root: Any) -> tuple[Fate, int, str | None]:
    """Copy one recording of one call; its fate, the bytes written and an error (never raises for
    a Vapi or storage failure: one bad recording must not stop the others)."""
    url = stable_url(call, kind)
    if not is_vapi_id(call.get("id")):  # it becomes part of a path: never "../"
        return "failed", 0, f"{str(call.get('id'))[:80]!r} ({kind}): not a call id; nothing written"
    if call.get("status") != "ended":
        return "pending", 0, None
    if url is None:
        return "without", 0, None
    target = target_for(root, call, kind, url)
    if target.exists():
        return "present", 0, None
    target.parent.mkdir(parents=True, exist_ok=True)
    sinks, temporary = _sinks(target)
    try:
        done = hook.download_recording(str(call["id"]), sinks, kind)
        if done is None:
            return "without", 0, None
        temporary.rename(target)
        return "copied", done.size, None
    except (VapiError, OSError) as exc:
        return "failed", 0, f"{call['id']} ({kind}): {exc}"
    finally:
        if temporary.exists():
            temporary.unlink()


def copy_recordings(
    hook: VapiHook,
    calls: Sequence[Mapping[str, Any]],
    root: Any,
    kinds: Sequence[str],
    report: RecordingReport,
    concurrency: int = 4,
) -> None:
    """Copy the ``kinds`` recordings of ``calls`` under ``root``, ``concurrency`` at a time."""
    jobs = [(call, kind) for call in calls for kind in kinds]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        fates = pool.map(lambda job: copy_one(hook, job[0], job[1], root), jobs)
        for (call, _kind), (fate, size, error) in zip(jobs, fates, strict=True):
            report.add(fate, str(call["id"]), size, error)
