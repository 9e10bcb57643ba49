"""Export files: their names, how they are written (streamed, committed whole) and read back.

A file is named by its window (``calls_<after>_<before>.jsonl``), so exporting an interval again
(a retry, a clear, a backfill days later) replaces the file rather than adding a second one. It is
written under a temporary name and renamed into place once complete: a task killed halfway leaves
the previous file (or none), never half of one under the final name. What a killed export leaves
(``.calls_*.part-*``) is removed by the next export into the folder (:func:`sweep_temporaries`):
at once by the same task (its retry, a clear, a rerun), after :data:`ABANDONED_AFTER` without a
write by any other.

``jsonl``: one call per line, whole, as Vapi sent it, secrets redacted. ``parquet`` (needs the
``parquet`` extra, pyarrow): one :mod:`~.rows` row per call, in row groups of a page each.
Both stream: memory holds one page, whatever the number of calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final, Literal, Protocol

from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath
from pydantic import ValidationError

from airflow_provider_vapi.exceptions import _where
from airflow_provider_vapi.landing.rows import COLUMNS, call_row
from airflow_provider_vapi.secrets import stored_call

Format = Literal["jsonl", "parquet"]
FORMATS: Final[tuple[str, ...]] = ("jsonl", "parquet")
PARQUET_HINT: Final = "format='parquet' needs pyarrow: pip install 'airflow-provider-vapi[parquet]'."
#: What a template that found no value renders to (``{{ ti.xcom_pull(...) }}`` of nothing).
NOTHING: Final = frozenset({"", "none", "null"})
_USERINFO: Final = re.compile(r"(?<=//)[^/@]*@")
EXPORT_FIX: Final = (
    "give ExportCallsOperator's output (export.output) or the path of a file it wrote (export the "
    "window again if this file was cut short or edited)"
)


class ExportFileError(AirflowFailException, ValueError):
    """A file ``LoadCallsOperator`` cannot load: missing, a folder, or not an export. Final: the
    same file fails the same way on every retry."""


class ExportLineError(ExportFileError, json.JSONDecodeError):
    """A line of a ``.jsonl`` export that is not JSON (still a ``JSONDecodeError``, as before).
    ``lineno`` is the line in the file; the line itself is never kept (it may hold anything)."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        json.JSONDecodeError.__init__(self, message, "", 0)
        self.args = (message,)
        self.lineno = lineno

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.args[0], self.lineno)


def shown_path(path: Any) -> str:
    """``path`` for a message: without any ``user:password@`` of a URL."""
    return _USERINFO.sub("", str(path))


def check_location(value: Any, param: str, fix: str) -> str:
    """A templated path parameter, as rendered, trimmed (a template often ends in a newline): text
    naming a file or folder, else a clear error (before anything is read, written or sent).
    ``fix`` says what to give instead."""
    text = value.strip() if isinstance(value, str) else None
    why = ""
    if value is None or (text is not None and text.lower() in NOTHING):
        why = "is empty (a template or XCom that rendered to nothing?)"
    elif text is None:
        why = f"is a {type(value).__name__}, not a path"
    elif text[0] in "{[(":
        why = "is the text of a Python value (a template renders text, not the XCom itself)"
    if why:
        shown = repr(shown_path(value)[:80]) if isinstance(value, str) else repr(value)[:80]
        raise AirflowFailException(f"{param}={shown} {why}: {fix}.")
    return text  # type: ignore[return-value]


def check_format(value: str) -> Format:
    """``value`` checked before anything is sent (a task retry would not install pyarrow)."""
    if value not in FORMATS:
        raise AirflowFailException(f"format={value!r} is not one of 'jsonl', 'parquet'.")
    if value == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise AirflowFailException(PARQUET_HINT) from None
    return value  # type: ignore[return-value]


def storage_path(path: Any, conn_id: str | None) -> Any:
    """``path`` as an ObjectStoragePath (a URL such as ``s3://bucket/vapi``, or a local path)."""
    if isinstance(path, ObjectStoragePath):
        return path
    try:
        return ObjectStoragePath(str(path), conn_id=conn_id)
    except TypeError as exc:  # Airflow 2.11's ObjectStoragePath with universal-pathlib 0.3+
        raise AirflowFailException(
            f"path={path!r}: Airflow's ObjectStoragePath refused it ({exc}). On Airflow 2.11 install "
            "with Airflow's constraints file (universal-pathlib<0.3), or give a local path without file://."
        ) from None


#: How long an export's temporary file may go without a write before an export of another task
#: removes it as abandoned. A live export writes its file once per page of calls (the longest gap
#: is one page's recordings copied); a day is far beyond that.
ABANDONED_AFTER: Final = timedelta(days=1)
#: What an export's temporary file's name starts with, and the marker of a temporary file.
EXPORT_TEMPORARY: Final = ".calls_"
PART: Final = ".part-"


def temporary_for(target: Any, writer: str | None = None) -> Any:
    """Where a file is written before it is renamed to ``target``: beside it, hidden, and unique to
    this writer (two workers writing the same file at once never share one). ``writer``
    (:func:`writer_key`) names the task that writes it, for :func:`sweep_temporaries`."""
    owner = f"{writer}-" if writer else ""
    return target.parent / f".{target.name}{PART}{owner}{uuid.uuid4().hex[:12]}"


def writer_key(context: Mapping[str, Any]) -> str | None:
    """The task instance writing (dag, task, run, map index) as 12 hex digits, or ``None`` outside
    a task run. Airflow runs one try of a task instance at a time, so when a try starts, whatever
    an earlier try of the same task instance left is abandoned."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    parts = (getattr(ti, name, "") for name in ("dag_id", "task_id", "run_id", "map_index"))
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:12]


def _modified(path: Any) -> datetime | None:
    """When ``path`` was last written, when its store says (local, S3, GCS, Azure), else None."""
    try:
        info = path.fs.info(path.path)
    except (OSError, ValueError):  # gone already (another sweep), or a store that cannot say
        return None
    for field in ("mtime", "LastModified", "updated", "last_modified"):
        value = info.get(field)
        if isinstance(value, int | float) and value > 0:
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str) and (parsed := _iso_or_none(value)) is not None:
            return parsed
    return None


def _iso_or_none(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sweep_temporaries(folder: Any, writer: str | None, now: datetime | None = None) -> list[str]:
    """Remove the export temporary files in ``folder`` that no export is writing any more: those of
    ``writer`` (this task instance: an earlier try that was killed) and those not written to for
    :data:`ABANDONED_AFTER`. A store that cannot say when a file was written keeps it. Returns
    the names removed."""
    if not folder.is_dir():
        return []
    now = now or datetime.now(UTC)
    mine = f"{PART}{writer}-" if writer else None
    removed = []
    for path in folder.iterdir():
        name = path.name
        if not (name.startswith(EXPORT_TEMPORARY) and PART in name):
            continue
        if not (mine and mine in name):
            written = _modified(path)
            if written is None or now - written < ABANDONED_AFTER:
                continue
        try:
            path.unlink()
        except FileNotFoundError:  # another export swept it first
            continue
        removed.append(name)
    return removed


def stamp(value: datetime) -> str:
    """A window bound in a file name: ``20261125T000000Z`` (no ``:``, which some stores refuse)."""
    text = value.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    millis = value.astimezone(UTC).microsecond // 1000
    return f"{text}{millis:03d}Z" if millis else f"{text}Z"


def file_name(after: datetime, before: datetime, fmt: Format) -> str:
    return f"calls_{stamp(after)}_{stamp(before)}.{fmt}"


def line(call: Mapping[str, Any]) -> bytes:
    """One JSON Lines record: the call as :func:`.secrets.stored_call` keeps it, keys in Vapi's order."""
    return json.dumps(stored_call(call), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class Writer(Protocol):
    def write(self, calls: list[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


class _JsonLines:
    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def write(self, calls: list[dict[str, Any]]) -> None:
        self._out.write(b"".join(line(call) for call in calls))

    def close(self) -> None:
        self._out.close()


def arrow_schema() -> Any:
    """The Parquet schema: :data:`~.rows.COLUMNS` (times in UTC milliseconds, JSON as text)."""
    import pyarrow as pa

    kinds = {
        "text": pa.string(),
        "json": pa.string(),
        "number": pa.float64(),
        "time": pa.timestamp("ms", "UTC"),
    }
    return pa.schema([pa.field(c.name, kinds[c.kind]) for c in COLUMNS])


class _Parquet:
    def __init__(self, out: IO[bytes]) -> None:
        import pyarrow.parquet as pq

        self._out = out
        self._schema = arrow_schema()
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")

    def write(self, calls: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        rows = [call_row(call) for call in calls]
        self._writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))

    def close(self) -> None:
        self._writer.close()
        self._out.close()


class Committing:
    """A file written under a temporary name next to ``target`` and renamed over it on
    :meth:`commit`; :meth:`abort` removes the temporary file. ``target`` is an ObjectStoragePath."""

    def __init__(self, target: Any, fmt: Format, writer: str | None = None) -> None:
        self.target = target
        self.temporary = temporary_for(target, writer)
        target.parent.mkdir(parents=True, exist_ok=True)
        out = self.temporary.open("wb")
        self.writer: Writer = _Parquet(out) if fmt == "parquet" else _JsonLines(out)
        self.count = 0

    def write(self, calls: list[dict[str, Any]]) -> None:
        self.writer.write(calls)
        self.count += len(calls)

    def commit(self) -> None:
        self.writer.close()
        self.temporary.rename(self.target)

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            if self.temporary.exists():
                self.temporary.unlink()


def _call_at(raw: bytes, path: Any, number: int) -> dict[str, Any]:
    """Line ``number`` of ``path`` as a call object; never quotes the line (it may hold anything)."""
    try:
        call = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ExportLineError(
            f"{shown_path(path)}, line {number}: not JSON ({why}): a .jsonl export holds one call "
            f"per line; {EXPORT_FIX}.",
            number,
        ) from None
    if not isinstance(call, dict):
        raise ExportFileError(
            f"{shown_path(path)}, line {number}: a JSON {type(call).__name__}, not a call object: "
            f"{EXPORT_FIX}."
        )
    return call


def _numbered_calls(path: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as handle:
        # readline(), not iteration: Airflow 2.11's file wrapper (lineage tracking) is not iterable.
        number = 0
        while raw := handle.readline():
            number += 1
            if raw.strip():
                yield number, _call_at(raw, path, number)


def read_calls(path: Any) -> Iterator[dict[str, Any]]:
    """The calls of a ``.jsonl`` export file, one at a time.

    :raises ExportLineError: a line is not JSON (naming the file and the line).
    :raises ExportFileError: a line is JSON but not an object.
    """
    for _, call in _numbered_calls(path):
        yield call


def _row_at(call: dict[str, Any], path: Any, number: int) -> dict[str, Any]:
    try:
        return call_row(call)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False))
        raise ExportFileError(
            f"{shown_path(path)}, line {number}: not a Vapi call ({problems}): {EXPORT_FIX}."
        ) from None


def _parquet_file(path: Any, handle: IO[bytes]) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportFileError(f"Reading {shown_path(path)}: {PARQUET_HINT}") from None
    try:
        parquet = pq.ParquetFile(handle)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ExportFileError(f"{shown_path(path)} is not a Parquet file ({exc}): {EXPORT_FIX}.") from None
    if "id" not in parquet.schema_arrow.names:
        raise ExportFileError(
            f"{shown_path(path)} is a Parquet file without the id column, not an export: {EXPORT_FIX}."
        )
    return parquet


def check_export_file(path: Any) -> None:
    """Before anything is written: ``path`` exists, is a file, and starts like an export (its
    first call, or its Parquet schema). A bad line further on fails the load, which then rolls
    back (the table is left as it was)."""
    if not path.exists():
        raise ExportFileError(f"source: {shown_path(path)} does not exist: {EXPORT_FIX}.")
    if path.is_dir():
        raise ExportFileError(
            f"source: {shown_path(path)} is a folder: give the export file in it (calls_<after>_<before>"
            ".jsonl), e.g. ExportCallsOperator's output (export.output)."
        )
    if str(path).endswith(".parquet"):
        with path.open("rb") as handle:
            _parquet_file(path, handle)
        return
    for number, call in _numbered_calls(path):
        _row_at(call, path, number)
        return


def read_rows(path: Any) -> Iterator[dict[str, Any]]:
    """The :mod:`~.rows` rows of an export file (``.jsonl`` or ``.parquet``), one at a time.

    :raises ExportFileError: the file (or one of its lines, named) is not an export.
    """
    if not str(path).endswith(".parquet"):
        yield from (_row_at(call, path, number) for number, call in _numbered_calls(path))
        return
    with path.open("rb") as handle:
        for batch in _parquet_file(path, handle).iter_batches(batch_size=1000):
            yield from batch.to_pylist()
