"""The SQLite engine: one file per store in the data folder, opened the way every store of the
gateway opens SQLite (``sqlite_file.py``'s ``SqliteFile``: WAL, a connection per thread,
``BEGIN IMMEDIATE`` writers, private files, no connection across a fork)."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Mapping, Sequence

from unified_messaging.database.engine import SQLITE, Database, Params, Row
from unified_messaging.database.schema import SQLITE_PRAGMAS
from unified_messaging.database.sqlite_file import SqliteFile


class _RowsFile(SqliteFile):
    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row


class _SqliteTransaction:
    """A writing transaction, opened with ``BEGIN IMMEDIATE`` so concurrent writers queue up instead
    of failing with "database is locked" (a class, not a generator: it is on the journal's hot path)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> _SqliteTransaction:
        self._conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._conn.execute("ROLLBACK" if kind is not None else "COMMIT")

    def execute(self, sql: str, params: Params = None) -> int:
        return self._conn.execute(sql, params or {}).rowcount

    def query(self, sql: str, params: Params = None) -> list[Row]:
        return [dict(row) for row in self._conn.execute(sql, params or {})]

    def insert(self, sql: str, params: Params = None) -> int:
        return int(self._conn.execute(sql, params or {}).lastrowid)

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self._conn.executemany(sql, rows)


class SqliteDatabase(Database):
    """A SQLite file; SQLite understands ``:name`` parameters as they are written."""

    engine = SQLITE

    def __init__(self, path: Path, store: str) -> None:
        self.path, self.store = Path(path), store
        self._file = _RowsFile(self.path)
        self._file.extra_pragmas = SQLITE_PRAGMAS.get(store, ())

    def transaction(self, *, lock: str | None = None) -> _SqliteTransaction:
        return _SqliteTransaction(self._file._connection())  # every writer is serialised, named lock or not

    def query(self, sql: str, params: Params = None) -> list[Row]:
        return [dict(row) for row in self._file._connection().execute(sql, params or {})]

    # A lone writing statement runs in SQLite's autocommit: the statement takes the write lock
    # from its first step (as ``BEGIN IMMEDIATE`` does, busy handler included) and commits before
    # it returns, all inside one ``sqlite3_step`` with the GIL released. ``BEGIN``, the statement
    # and ``COMMIT`` as three calls held the file's lock across two returns to Python, each of which
    # waits for the GIL (up to the 5 ms switch interval when other threads compute), while the
    # other writers slept in SQLite's busy handler (1, 2, 5, 10 ... 100 ms): with 32 batch threads
    # a journal row took 46 ms on average, 533 ms at the 99th percentile (7 ms and 37 ms so).
    def execute(self, sql: str, params: Params = None) -> int:
        return self._file._connection().execute(sql, params or {}).rowcount

    def insert(self, sql: str, params: Params = None) -> int:
        return int(self._file._connection().execute(sql, params or {}).lastrowid)

    def connection(self) -> sqlite3.Connection:
        """This thread's own connection, for what only SQLite has (pragmas, a trace callback, a bulk
        ``executemany`` in the benchmarks); the stores go through ``query`` and ``transaction``."""
        return self._file._connection()

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": name}))

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def close(self) -> None:
        self._file.close()
