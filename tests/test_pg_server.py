"""The PostgreSQL fixtures (tests/pg_server.py) are a real server, reached the way DAGs reach it.

Through an Airflow connection given by an ``AIRFLOW_CONN_*`` variable, the common.sql hooks of the
postgres and sqlite providers upsert (``insert_rows(replace=True, replace_index="id")``) and read;
each ``postgres_uri`` is a database of its own; and the Parquet extra writes what was read.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests import pg_server
from tests.pg_server import PostgresServer

ROWS = [(1, "first", 1.5), (2, "second", 2.5), (3, "third", 3.5)]
AGAIN = [(1, "first again", 10.0), (2, "second again", 20.0), (3, "third again", 30.0)]


def _upsert_twice(hook, create_sql: str) -> list[tuple]:
    hook.run(create_sql)
    for rows in (ROWS, AGAIN):
        hook.insert_rows(
            "calls", rows, target_fields=["id", "name", "cost"], replace=True, replace_index="id"
        )
    assert hook.get_first("SELECT COUNT(*), COUNT(DISTINCT id) FROM calls") == (3, 3)
    return [tuple(row) for row in hook.get_records("SELECT id, name, cost FROM calls ORDER BY id")]


def test_postgres_hook_upserts_through_an_airflow_connection(postgres_uri: str, monkeypatch):
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    monkeypatch.setenv("AIRFLOW_CONN_PG_TEST", postgres_uri)
    hook = BaseHook.get_connection("pg_test").get_hook()
    assert isinstance(hook, PostgresHook) and isinstance(hook, DbApiHook)
    create = "CREATE TABLE calls (id INTEGER PRIMARY KEY, name TEXT NOT NULL, cost DOUBLE PRECISION)"
    assert _upsert_twice(hook, create) == AGAIN
    # The connection's own hook class, by conn id, sees the same rows: the database is real.
    assert PostgresHook(postgres_conn_id="pg_test").get_first("SELECT COUNT(*) FROM calls") == (3,)


def test_sqlite_hook_upserts_through_an_airflow_connection(tmp_path: Path, monkeypatch):
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    db = tmp_path / "calls.db"
    monkeypatch.setenv("AIRFLOW_CONN_SQLITE_TEST", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    hook = BaseHook.get_connection("sqlite_test").get_hook()
    assert isinstance(hook, SqliteHook) and isinstance(hook, DbApiHook)
    create = "CREATE TABLE calls (id INTEGER PRIMARY KEY, name TEXT NOT NULL, cost REAL)"
    assert _upsert_twice(hook, create) == AGAIN
    with sqlite3.connect(db) as conn:  # the rows are in the file the connection names
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone() == (3,)
    print(f"sqlite3.sqlite_version={sqlite3.sqlite_version}")


def test_each_postgres_uri_is_a_database_of_its_own(postgres_server: PostgresServer, postgres_uri: str):
    other = postgres_server.create_database("test_pg_server_other")
    try:
        assert other != postgres_uri and other.rsplit("/", 1)[0] == postgres_uri.rsplit("/", 1)[0]
        mine = postgres_uri.rsplit("/", 1)[1]
        postgres_server.psql("CREATE TABLE only_here (id INTEGER)", dbname=mine)
        assert postgres_server.psql("SELECT to_regclass('only_here') IS NOT NULL", dbname=mine) == "t"
        theirs = "test_pg_server_other"
        assert postgres_server.psql("SELECT to_regclass('only_here') IS NULL", dbname=theirs) == "t"
    finally:
        postgres_server.drop_database("test_pg_server_other")


_HANDED_OUT: list[str] = []


@pytest.mark.parametrize("round_", [1, 2])
def test_postgres_uri_is_new_and_empty_every_time(postgres_server: PostgresServer, postgres_uri: str, round_):
    name = postgres_uri.rsplit("/", 1)[1]
    assert name not in _HANDED_OUT
    for earlier in _HANDED_OUT:  # dropped after its test
        assert postgres_server.psql(f"SELECT COUNT(*) FROM pg_database WHERE datname = '{earlier}'") == "0"
    assert postgres_server.psql(f"SELECT COUNT(*) FROM pg_database WHERE datname = '{name}'") == "1"
    _HANDED_OUT.append(name)
    tables = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"
    assert postgres_server.psql(tables, dbname=name) == "0"
    postgres_server.psql("CREATE TABLE left_behind (id INTEGER)", dbname=name)


def test_the_server_is_a_throwaway_one_on_loopback(postgres_server: PostgresServer):
    show = postgres_server.psql
    assert postgres_server.host == "127.0.0.1" and postgres_server.port > 0
    assert show("SHOW listen_addresses") == "127.0.0.1"
    assert (show("SHOW fsync"), show("SHOW synchronous_commit"), show("SHOW full_page_writes")) == (
        "off",
        "off",
        "off",
    )
    assert show("SHOW unix_socket_directories") == str(postgres_server.root)
    assert postgres_server.uri == f"postgresql://postgres@127.0.0.1:{postgres_server.port}/postgres"
    # As root, PostgreSQL runs as Debian's `postgres` user (it refuses root).
    assert os.stat(postgres_server.data_dir).st_uid != 0 or os.geteuid() != 0
    print(f"postgres {postgres_server.version} started in {postgres_server.startup_seconds:.2f}s")


def test_without_postgresql_the_fixture_skips_loudly_or_fails_when_required(monkeypatch):
    monkeypatch.setattr(pg_server, "DEBIAN_BIN_GLOB", "/nonexistent/postgresql/*/bin")
    monkeypatch.setattr(pg_server.shutil, "which", lambda _name: None)
    with pytest.raises(pg_server.PostgresUnavailable, match=r"\.ci/system-deps\.sh") as missing:
        pg_server.find_bin_dir()
    monkeypatch.delenv(pg_server.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"SKIPPED, NO POSTGRESQL.*system-deps"):
        pg_server._unavailable(str(missing.value))
    monkeypatch.setenv(pg_server.REQUIRE_ENV, "1")
    with pytest.raises(
        pytest.fail.Exception, match=r"NO POSTGRESQL, and VAPI_REQUIRE_POSTGRES=1 requires it: .*system-deps"
    ):
        pg_server._unavailable(str(missing.value))


def test_rows_read_from_postgres_write_and_read_back_as_parquet(
    postgres_uri: str, tmp_path: Path, monkeypatch
):
    """The ``parquet`` extra: pyarrow's ParquetWriter with a fixed schema, on what PostgreSQL returned."""
    if importlib.util.find_spec("pyarrow") is None:  # not importorskip: a broken pyarrow must fail
        pytest.skip("pyarrow is not installed (the parquet extra, pulled in by dev)")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    monkeypatch.setenv("AIRFLOW_CONN_PG_PARQUET", postgres_uri)
    hook = PostgresHook(postgres_conn_id="pg_parquet")
    hook.run(
        "CREATE TABLE calls (id TEXT, turns BIGINT, cost DOUBLE PRECISION, ended_at TIMESTAMPTZ);"
        "INSERT INTO calls VALUES ('c1', 3, 0.25, '2025-01-02 03:04:05+00'),"
        " ('c2', 7, 1.5, '2025-01-03 00:00:00+00')"
    )
    rows = hook.get_records("SELECT id, turns, cost, ended_at FROM calls ORDER BY id")
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("turns", pa.int64()),
            ("cost", pa.float64()),
            ("ended_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    columns = list(zip(*rows, strict=True))
    batch = pa.RecordBatch.from_arrays(
        [pa.array(list(col), type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema
    )
    path = tmp_path / "calls.parquet"
    with pq.ParquetWriter(str(path), schema) as writer:
        writer.write_table(pa.Table.from_batches([batch], schema=schema))
        writer.write_table(pa.Table.from_batches([batch], schema=schema))
    table = pq.read_table(str(path))
    assert table.schema.equals(schema)
    assert table.num_rows == 4
    back = table.to_pydict()
    assert back["id"] == ["c1", "c2", "c1", "c2"] and back["turns"] == [3, 7, 3, 7]
    assert back["cost"] == [0.25, 1.5, 0.25, 1.5]
    assert back["ended_at"][0] == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
