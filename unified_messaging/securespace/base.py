"""What every part of the secure space store shares: the SQLite file, the clock, the hasher, the sealer.

Same conventions as the journal: WAL mode, one connection per thread, every writing transaction
opened with ``BEGIN IMMEDIATE``; ``secure_delete`` is on so that a removed row is overwritten.
"""
from __future__ import annotations

import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from unified_messaging.journal.sqlite import SqliteFile
from unified_messaging.securespace.crypto import PasswordHasher, Sealer
from unified_messaging.securespace.schema import create_schema, migrate


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StoreBase(SqliteFile):
    """Thread-safe access to the secure space file; each thread gets its own connection.

    ``master_secret`` is the installation's master key, or its keys during a rotation
    (``secrets.master_keys``: each opens, the newest seals); ``hasher`` may be
    given a lower cost in tests; ``clock`` stamps the rows and is "now" for validity checks.
    """

    extra_pragmas = ("foreign_keys=ON", "secure_delete=ON")

    def __init__(self, path: Path, master_secret: bytes | Sequence[bytes], *, hasher: PasswordHasher | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(path)
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self._sealer = Sealer(master_secret)
        create_schema(self._connection())
        with self.write() as db:
            migrate(db)

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, list(params)).fetchall()

    def _stamp(self) -> str:
        return self.clock().isoformat(timespec="seconds")


def iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None
