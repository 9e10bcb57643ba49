"""Optional persistence: calls, created assistants, structured outputs and campaigns (each
contact a row of its own) in a SQLite file (``--state FILE``).

Each object is one JSON row, written when it changes. A restarted emulator reloads them and lets
their timelines continue from wall-clock time (events that fell due while it was down are applied
with the timestamps they would have had).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

#: The tables: one JSON object per row, keyed by its id.
TABLES = ("calls", "assistants", "structured_outputs", "campaigns", "campaign_contacts")


class SQLiteStore:
    """A tiny key/value store over SQLite, safe to use from several threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for table in TABLES:
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, data TEXT NOT NULL)")

    def load(self, table: str) -> list[dict[str, Any]]:
        """Every row of one of :data:`TABLES`."""
        with self._lock:
            rows = self._db.execute(f"SELECT data FROM {_table(table)}").fetchall()
        return [json.loads(data) for (data,) in rows]

    def save(self, table: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Insert or replace rows ``(id, object)`` in one transaction."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                f"INSERT OR REPLACE INTO {_table(table)} (id, data) VALUES (?, ?)",
                [(key, json.dumps(obj, separators=(",", ":"))) for key, obj in rows],
            )
            self._db.execute("COMMIT")

    def delete(self, table: str, key: str) -> None:
        """Remove one row."""
        self.delete_many(table, [key])

    def delete_many(self, table: str, keys: list[str]) -> None:
        """Remove rows in one transaction."""
        if not keys:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(f"DELETE FROM {_table(table)} WHERE id = ?", [(key,) for key in keys])
            self._db.execute("COMMIT")

    def clear(self) -> None:
        """Remove everything (the admin reset)."""
        with self._lock:
            for table in TABLES:
                self._db.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _table(name: str) -> str:
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}")
    return name
