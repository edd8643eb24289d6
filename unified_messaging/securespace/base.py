"""What every part of the secure space store shares: its database, the clock, the hasher, the sealer.

The database is the layer's (``unified_messaging.database``): by default the SQLite file
``<data folder>/securespace.sqlite`` (WAL, one connection per thread, ``BEGIN IMMEDIATE`` writers,
``foreign_keys`` and ``secure_delete`` on, so that a removed row is overwritten), or the PostgreSQL
database of ``[database] url``.  One SQL text per query serves both, with ``:name`` parameters.

Every writing transaction takes the ``securespace`` lock: SQLite serialises writers anyway, and on
PostgreSQL it keeps the read-check-write of a change (is this login free, may this mandate be
accepted) as atomic as it is on SQLite, whichever node makes it.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from unified_messaging.database import SECURESPACE, Database, Transaction, store_database
from unified_messaging.database.engine import Params, Row
from unified_messaging.securespace.crypto import PasswordHasher, Sealer

WRITE_LOCK = "securespace"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StoreBase:
    """Thread-safe access to the secure space's database.

    ``target`` is a database opened for the secure space (``database.open_store``: PostgreSQL is
    checked, not migrated, there), or the path of a SQLite file (created and migrated here).
    ``master_secret`` is the installation's master key, or its keys during a rotation
    (``secrets.master_keys``: each opens, the newest seals); ``hasher`` may be given a lower cost
    in tests; ``clock`` stamps the rows and is "now" for validity checks.
    """

    def __init__(self, target: Database | Path, master_secret: bytes | Sequence[bytes], *,
                 hasher: PasswordHasher | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self.db = store_database(target, SECURESPACE)
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self._sealer = Sealer(master_secret)

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None on PostgreSQL."""
        return getattr(self.db, "path", None)

    def describe(self) -> str:
        """Where the secure space is, for people (a file, or the URL without its password)."""
        return self.db.describe()

    def _rows(self, sql: str, params: Params = None) -> list[Row]:
        return self.db.query(sql, params)

    def write(self) -> AbstractContextManager[Transaction]:
        """A writing transaction, serialised with every other writer of the secure space."""
        return self.db.transaction(lock=WRITE_LOCK)

    def _stamp(self) -> str:
        return self.clock().isoformat(timespec="seconds")

    def close(self) -> None:
        self.db.close()


def iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None
