"""The journal: one SQLite file, written by the core services, read by the UI and the CLI.

Kept behind this one small class with plain SQL so that moving to PostgreSQL later is a swap, not
a rewrite.  SQLite rules learnt the hard way (see ENGINEERING.md): WAL mode, one connection per
thread, and every writing transaction opened with ``BEGIN IMMEDIATE``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import sqlite_utils

from unified_messaging.journal.sqlite import SqliteFile

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


class Journal(SqliteFile):
    """The journal file, shared by the threads of the gateway (see ``SqliteFile``)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(path)
        self.clock = clock
        conn = self._connection()
        conn.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        with self.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )

    @property
    def db(self) -> sqlite_utils.Database:
        """A sqlite-utils view of this thread's connection."""
        database = getattr(self._local, "db", None)
        if database is None:
            database = sqlite_utils.Database(self._connection())
            self._local.db = database
        return database

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
