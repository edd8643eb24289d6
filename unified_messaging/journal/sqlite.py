"""SQLite the way every store of the gateway uses it (the journal, the secure space).

Rules learnt the hard way (see ENGINEERING.md): WAL mode, one connection per thread, and every
writing transaction opened with ``BEGIN IMMEDIATE`` so that concurrent writers queue up instead
of failing with "database is locked".
"""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class SqliteFile:
    """A SQLite file shared by many threads; ``extra_pragmas`` are run on every new connection."""

    extra_pragmas: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", *self.extra_pragmas):
                conn.execute(f"PRAGMA {pragma}")
            self._configure(conn)
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        """A hook for subclasses (row factory...)."""

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A writing transaction, opened with BEGIN IMMEDIATE so concurrent writers queue up."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
