"""The journal: one SQLite file, written by the core services, read by the UI and the CLI.

Kept behind this one small class with plain SQL so that moving to PostgreSQL later is a swap, not
a rewrite.  SQLite rules learnt the hard way (see ENGINEERING.md): WAL mode, one connection per
thread, and every writing transaction opened with ``BEGIN IMMEDIATE``.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import sqlite_utils

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consultations (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    interface TEXT NOT NULL,
    care_provider TEXT,
    quality TEXT,
    patient TEXT,
    period_start TEXT,
    period_end TEXT,
    outcome TEXT NOT NULL,
    code TEXT,
    audit_reference TEXT,
    reference TEXT,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS consultations_at ON consultations(at);
CREATE INDEX IF NOT EXISTS consultations_outcome ON consultations(outcome, at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Consultation:
    """One insurability consultation as the journal keeps it: the patient is already masked."""

    at: str
    interface: str
    care_provider: str | None
    quality: str | None
    patient: str | None
    period_start: str | None
    period_end: str | None
    outcome: str
    code: str | None
    audit_reference: str | None
    reference: str | None
    duration_ms: float


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Journal:
    """Thread-safe access to the journal file; each thread gets its own connection."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.path = Path(path)
        self.clock = clock
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        conn.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        with self.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        """A sqlite-utils view of this thread's connection, for reads."""
        database = getattr(self._local, "db", None)
        if database is None:
            database = sqlite_utils.Database(self._connection())
            self._local.db = database
        return database

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

    def record_consultation(self, consultation: Consultation) -> int:
        with self.write():
            return int(self.db["consultations"].insert(asdict(consultation)).last_pk)

    def consultations(self, *, limit: int = 100, outcome: str | None = None) -> list[dict]:
        """The latest consultations, newest first."""
        where, args = ("WHERE outcome = ?", [outcome]) if outcome else ("", [])
        return list(
            self.db.query(f"SELECT * FROM consultations {where} ORDER BY id DESC LIMIT ?", [*args, limit])
        )

    def count(self, table: str) -> int:
        return self.db[table].count

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            self._local.db = None
