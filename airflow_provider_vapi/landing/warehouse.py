"""``LoadCallsOperator``: export files into a table of any Airflow SQL connection, one row per call.

The table is :mod:`~.rows`' row, keyed by call id. Loading is an upsert that never goes back
in time and never rewrites a row with itself: a row is replaced only by a version of the call at
least as new (``updated_at``) whose content differs, so a file loaded twice changes nothing (and
the load's ``changed`` counts 0), and an old file loaded after a newer one (a late backfill)
cannot undo it. One transaction per load: a failure halfway leaves the table as it was.

Bad input fails the task before the database is reached (``AirflowFailException``, not retried):
a table name that is not a plain name or is an SQL reserved word, a ``source`` that names no
export (empty, ``None``, a folder, a missing file), a file that does not start like an export.
Text is stored as :func:`.rows.storable` keeps it: NUL characters removed (PostgreSQL cannot
store them), on every database alike.

PostgreSQL and SQLite (``INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE``) are tested; other
databases go through the hook's own ``insert_rows(replace=True)`` (create the table yourself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, Final

from airflow.providers.common.compat.sdk import AirflowFailException, BaseHook, BaseOperator

from airflow_provider_vapi.landing.files import check_export_file, check_location, read_rows, storage_path
from airflow_provider_vapi.landing.rows import (
    COLUMN_NAMES,
    COLUMNS,
    JSON_COLUMNS,
    Column,
    as_text_times,
    storable,
)
from airflow_provider_vapi.rendering.gate import RenderingGate

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

DEFAULT_TABLE: Final = "vapi_calls"
BATCH_ROWS: Final = 1000
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
#: Words PostgreSQL (reserved, and reserved "can be function or type") or SQLite refuse as a table
#: name in the statements here (each tried on both). Refused rather than quoted: a quoted name must
#: be quoted (and in PostgreSQL spelled in its exact case) in every query the team writes after,
#: and by the other databases' ``insert_rows`` path, which does not quote it.
_RESERVED = """
    add all alter analyse analyze and any array as asc asymmetric authorization autoincrement
    between binary both case cast check collate collation column commit concurrently constraint
    create cross current_catalog current_date current_role current_schema current_time
    current_timestamp current_user default deferrable delete desc distinct do drop else end
    escape except exists false fetch for foreign freeze from full grant group having if ilike in
    index initially inner insert intersect into is isnull join lateral leading left like limit
    localtime localtimestamp natural not nothing notnull null offset on only or order outer
    overlaps placing primary raise references returning right select session_user set similar
    some symmetric table tablesample then to trailing transaction true union unique update user
    using values variadic verbose when where window with
"""
RESERVED_WORDS: Final = frozenset(_RESERVED.split())
#: Column types per dialect; any other database gets the portable ones (and should bring its table).
TYPES: Final[dict[str, dict[str, str]]] = {
    "postgresql": {"text": "TEXT", "time": "TIMESTAMPTZ", "number": "DOUBLE PRECISION", "json": "JSONB"},
    "sqlite": {"text": "TEXT", "time": "TEXT", "number": "REAL", "json": "TEXT"},
}
UPSERT_DIALECTS: Final = frozenset(TYPES)


def check_table(table: Any) -> str:
    """``table`` as rendered: a plain name (``schema.table`` allowed), not a reserved word; a
    clear error before the database is reached otherwise."""
    if not isinstance(table, str) or not _IDENTIFIER.fullmatch(table):
        raise AirflowFailException(
            f"table={table[:80] if isinstance(table, str) else table!r} is not a plain table name: use letters, digits and _ "
            "(optionally schema.table), at most 63 each, nothing around them, e.g. 'vapi_calls' "
            "or 'analytics.vapi_calls'."
        )
    reserved = [part for part in table.split(".") if part.lower() in RESERVED_WORDS]
    if reserved:
        raise AirflowFailException(
            f"table={table!r}: {reserved[0]!r} is an SQL reserved word, which the database refuses "
            f"as a table name: choose another, e.g. 'vapi_{reserved[0].lower()}' or 'vapi_calls'."
        )
    return table


def dialect_of(hook: Any) -> str:
    """``postgresql``, ``sqlite`` or what the hook says it is."""
    name = str(getattr(hook, "dialect_name", "") or getattr(hook, "conn_type", "") or "").lower()
    return "postgresql" if name in ("postgres", "postgresql") else name


def create_table_sql(
    table: str, dialect: str, columns: Sequence[Column] = COLUMNS, key: Sequence[str] = ("id",)
) -> str:
    types = TYPES.get(dialect, TYPES["sqlite"])
    lines = [f"{c.name} {types[c.kind]}" for c in columns]
    lines += [f"PRIMARY KEY ({', '.join(key)})"]
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  " + ",\n  ".join(lines) + "\n)"


#: The null-safe "differs" of each dialect (SQLite has ``IS NOT``; ``IS DISTINCT FROM`` only from 3.39).
DIFFERS: Final[dict[str, str]] = {"postgresql": "IS DISTINCT FROM", "sqlite": "IS NOT"}


def upsert_sql(
    table: str,
    placeholder: str,
    names: Sequence[str] = COLUMN_NAMES,
    key: Sequence[str] = ("id",),
    newest_wins: bool = True,
    dialect: str = "sqlite",
) -> str:
    """One row's upsert (PostgreSQL 9.5+, SQLite 3.24+); ``newest_wins``: only by a row whose
    ``updated_at`` is at least the stored one's and whose content differs from it, so the
    statement's row count is the rows that changed."""
    values = ", ".join([placeholder] * len(names))
    columns = [c for c in names if c not in key]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
    differs = DIFFERS.get(dialect, DIFFERS["postgresql"])
    changed = " OR ".join(f"{table}.{c} {differs} excluded.{c}" for c in columns)
    guard = (
        f" WHERE ({table}.updated_at IS NULL OR excluded.updated_at >= {table}.updated_at) AND ({changed})"
        if newest_wins
        else ""
    )
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}{guard}"
    )


SOURCE_FIX: Final = "give ExportCallsOperator's output (export.output) or the path of an export file"


def source_paths(source: Any) -> list[str]:
    """Export files from what ``ExportCallsOperator`` returned (one summary, a list of them from a
    mapped export), or paths as text; at least one."""
    if isinstance(source, str | bytes) or source is None:
        items: list[Any] = [source]
    elif isinstance(source, Mapping):
        items = [source]
    else:
        items = list(source)
    if not items:
        raise AirflowFailException(f"source={source!r} names no export file: {SOURCE_FIX}.")
    paths = []
    for item in items:
        path = item.get("path") if isinstance(item, Mapping) else item
        if isinstance(item, Mapping) and not isinstance(path, str):
            raise AirflowFailException(f"source={str(item)[:80]!r} is not an export: {SOURCE_FIX}.")
        paths.append(check_location(path, "source", SOURCE_FIX))
    return paths


def batches(
    rows: Iterable[Mapping[str, Any]], size: int, names: Sequence[str] = COLUMN_NAMES
) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` as tuples of ``names``, ``size`` at a time, each value :func:`.rows.storable`."""
    iterator = iter(rows)
    json_at = [name in JSON_COLUMNS for name in names]
    while batch := list(islice(iterator, size)):
        yield [
            tuple(storable(row.get(name), json) for name, json in zip(names, json_at, strict=True))
            for row in batch
        ]


def upsert_rows(
    hook: Any, sql: str, rows: Iterable[Mapping[str, Any]], names: Sequence[str], create: str | None
) -> tuple[int, int]:
    """Run ``create`` (if any) and ``sql`` over ``rows`` in one transaction: all or nothing.
    Returns (rows read, rows changed)."""
    read = changed = 0
    conn = hook.get_conn()
    try:
        cursor = conn.cursor()
        if create:
            cursor.execute(create)
        for batch in batches(rows, BATCH_ROWS, names):
            cursor.executemany(sql, batch)
            read += len(batch)
            changed += max(cursor.rowcount, 0)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    return read, changed


def replace_rows(
    hook: Any, table: str, rows: Iterable[Mapping[str, Any]], names: Sequence[str], key: Sequence[str]
) -> int:
    """Any other database: the hook's own ``insert_rows(replace=True)`` (the table must exist).
    Returns the rows written."""
    counted = 0

    def tally() -> Iterator[tuple[Any, ...]]:
        nonlocal counted
        for batch in batches(rows, BATCH_ROWS, names):
            counted += len(batch)
            yield from batch

    index: str | list[str] = key[0] if len(key) == 1 else list(key)
    hook.insert_rows(
        table, tally(), target_fields=list(names), commit_every=BATCH_ROWS, replace=True, replace_index=index
    )
    return counted


class LoadCallsOperator(RenderingGate, BaseOperator):
    """Upsert exported calls into a SQL table (any ``common.sql`` connection), one row per call.

    :param source: what ``ExportCallsOperator`` returned (``export.output``; a mapped export's list
        too), or export file path(s) (templated).
    :param conn_id: the Airflow connection of the database (``postgres``, ``sqlite`` ...).
    :param table: the table (templated), created if missing when ``create_table``.
    :param create_table: ``CREATE TABLE IF NOT EXISTS`` with the documented columns first.
    :param storage_conn_id: the Airflow connection for reading the files (``aws_default`` ...).

    Returns ``{"table", "files", "rows", "changed"}``: ``rows`` read from the files, ``changed``
    the rows inserted or updated (a row whose stored content is already the same is not; a file
    loaded twice gives ``changed == 0`` the second time); ``None`` on databases loaded through
    ``insert_rows``, which cannot tell.

    Text holding NUL characters is loaded with them removed (PostgreSQL cannot store U+0000), on
    every database alike; see :func:`.rows.storable`.
    """

    template_fields: Sequence[str] = ("source", "conn_id", "table", "storage_conn_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        source: Any,
        conn_id: str,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.conn_id = conn_id
        self.table = table
        self.create_table = create_table
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        table = check_table(self.table)
        files = [storage_path(path, self.storage_conn_id or None) for path in source_paths(self.source)]
        for file in files:  # before the database is reached
            check_export_file(file)
        hook = BaseHook.get_hook(self.conn_id)
        dialect = dialect_of(hook)
        rows = (row for file in files for row in read_rows(file))
        if dialect in UPSERT_DIALECTS:
            read, changed = self._upsert(hook, table, dialect, rows)
        else:
            read, changed = replace_rows(hook, table, rows, COLUMN_NAMES, ("id",)), None
        self.log.info(
            "Loaded %d calls from %d files into %s (%s rows changed)", read, len(files), table, changed
        )
        return {"table": table, "files": len(files), "rows": read, "changed": changed}

    def _upsert(self, hook: Any, table: str, dialect: str, rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
        sql = upsert_sql(table, hook.placeholder, dialect=dialect)
        if dialect == "sqlite":
            rows = (as_text_times(row) for row in rows)
        create = create_table_sql(table, dialect) if self.create_table else None
        return upsert_rows(hook, sql, rows, COLUMN_NAMES, create)
