"""Export files: their names, how they are written (streamed, committed whole) and read back.

A file is named by its window (``calls_<after>_<before>.jsonl``), so exporting an interval again
(a retry, a clear, a backfill days later) replaces the file rather than adding a second one. It is
written under a temporary name and renamed into place once complete: a task killed halfway leaves
the previous file (or none), never half of one under the final name.

``jsonl``: one call per line, whole, as Vapi sent it, secrets redacted. ``parquet`` (needs the
``parquet`` extra, pyarrow): one :mod:`~.call_rows` row per call, in row groups of a page each.
Both stream: memory holds one page, whatever the number of calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final, Literal, Protocol

from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_vapi.call_rows import COLUMNS, call_row
from airflow_provider_vapi.secrets import stored_call

Format = Literal["jsonl", "parquet"]
FORMATS: Final[tuple[str, ...]] = ("jsonl", "parquet")
PARQUET_HINT: Final = "format='parquet' needs pyarrow: pip install 'airflow-provider-vapi[parquet]'."


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


def temporary_for(target: Any) -> Any:
    """Where a file is written before it is renamed to ``target``: beside it, hidden, and unique to
    this writer (two workers writing the same file at once never share one)."""
    return target.parent / f".{target.name}.part-{uuid.uuid4().hex[:12]}"


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
    """The Parquet schema: :data:`~.call_rows.COLUMNS` (times in UTC milliseconds, JSON as text)."""
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

    def __init__(self, target: Any, fmt: Format) -> None:
        self.target = target
        self.temporary = temporary_for(target)
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


def read_calls(path: Any) -> Iterator[dict[str, Any]]:
    """The calls of a ``.jsonl`` export file, one at a time."""
    with path.open("rb") as handle:
        # readline(), not iteration: Airflow 2.11's file wrapper (lineage tracking) is not iterable.
        while raw := handle.readline():
            if raw.strip():
                yield json.loads(raw)


def read_rows(path: Any) -> Iterator[dict[str, Any]]:
    """The :mod:`~.call_rows` rows of an export file (``.jsonl`` or ``.parquet``), one at a time."""
    if not str(path).endswith(".parquet"):
        yield from (call_row(call) for call in read_calls(path))
        return
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            f"Reading {path} needs pyarrow: pip install 'airflow-provider-vapi[parquet]'."
        ) from None
    with path.open("rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=1000):
            yield from batch.to_pylist()
