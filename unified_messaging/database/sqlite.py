"""The SQLite engine: one file per store in the data folder, opened the way every store of the
gateway opens SQLite (``journal/sqlite.py``'s ``SqliteFile``: WAL, a connection per thread,
``BEGIN IMMEDIATE`` writers, private files, no connection across a fork)."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from unified_messaging.database.engine import SQLITE, Database, Params, Row
from unified_messaging.database.schema import SQLITE_PRAGMAS
from unified_messaging.journal.sqlite import SqliteFile


class _RowsFile(SqliteFile):
    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row


class _SqliteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = None) -> int:
        return self._conn.execute(sql, params or {}).rowcount

    def query(self, sql: str, params: Params = None) -> list[Row]:
        return [dict(row) for row in self._conn.execute(sql, params or {})]


class SqliteDatabase(Database):
    """A SQLite file; SQLite understands ``:name`` parameters as they are written."""

    engine = SQLITE

    def __init__(self, path: Path, store: str) -> None:
        self.path, self.store = Path(path), store
        self._file = _RowsFile(self.path)
        self._file.extra_pragmas = SQLITE_PRAGMAS.get(store, ())

    @contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[_SqliteTransaction]:
        with self._file.write() as conn:  # BEGIN IMMEDIATE: every writer is serialised, named lock or not
            yield _SqliteTransaction(conn)

    def query(self, sql: str, params: Params = None) -> list[Row]:
        return [dict(row) for row in self._file._connection().execute(sql, params or {})]

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": name}))

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def close(self) -> None:
        self._file.close()
