"""Numbered schema migrations, one list for both engines, recorded in ``schema_migrations``.

Each migration belongs to a store. On PostgreSQL one database holds every store, so every
migration runs there in number order; on SQLite each store is its own file in the data folder and
runs its own migrations only.  A migration's SQL is one text for both engines, or a text per
engine where their types differ (``INTEGER PRIMARY KEY AUTOINCREMENT`` against ``GENERATED ALWAYS
AS IDENTITY``...); statements are separated by ``;`` at the end of a line.

Migrating is idempotent and safe from several processes at once: everything runs in one
transaction under the ``schema_migrations`` lock, and only the numbers not yet recorded run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

from unified_messaging.database.engine import POSTGRESQL, SQLITE, Database, DatabaseError, Transaction

log = logging.getLogger(__name__)

LOCK = "schema_migrations"
_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, store TEXT NOT NULL, "
          "description TEXT NOT NULL, applied_at TEXT NOT NULL)")


@dataclass(frozen=True)
class Migration:
    number: int
    store: str
    description: str
    sql: str | Mapping[str, str]
    """One text for both engines, or ``{"sqlite": ..., "postgresql": ...}``."""

    def statements(self, engine: str) -> list[str]:
        text = self.sql if isinstance(self.sql, str) else self.sql[engine]
        return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";").strip()]

    def __str__(self) -> str:
        return f"{self.number} ({self.store}) {self.description}"


def check_list(migrations: Sequence[Migration]) -> None:
    """A list is numbered 1, 2, 3... without gaps, and every per-engine migration names both engines."""
    numbers = [m.number for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3... in order, not {numbers}")
    for m in migrations:
        if not isinstance(m.sql, str) and set(m.sql) != {SQLITE, POSTGRESQL}:
            raise ValueError(f"migration {m} must give its SQL for both {SQLITE} and {POSTGRESQL}")


def wanted(db: Database, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations this database runs: all of them on PostgreSQL, its store's on SQLite."""
    return [m for m in migrations if db.engine == POSTGRESQL or m.store == db.store]


def applied(db: Database) -> set[int]:
    """The migration numbers recorded in the database (none when it has no ``schema_migrations``)."""
    if not db.has_table("schema_migrations"):
        return set()
    return {row["version"] for row in db.query("SELECT version FROM schema_migrations")}


def pending(db: Database, migrations: Sequence[Migration]) -> list[Migration]:
    done = applied(db)
    return [m for m in wanted(db, migrations) if m.number not in done]


def migrate(db: Database, migrations: Sequence[Migration], *,
            before: Callable[[Transaction], None] | None = None) -> list[Migration]:
    """Create or upgrade the schema; the migrations that ran now (none when it was up to date).

    ``before`` runs first in the same transaction (a SQLite file made before the migrations is
    brought to what they expect)."""
    check_list(migrations)
    ran = []
    with db.transaction(lock=LOCK) as tx:
        if before is not None:
            before(tx)
        tx.execute(_TABLE)
        done = {row["version"] for row in tx.query("SELECT version FROM schema_migrations")}
        for migration in wanted(db, migrations):
            if migration.number not in done:
                _run(tx, db.engine, migration)
                ran.append(migration)
    for migration in ran:
        log.info("%s: migration %s applied", db.describe(), migration)
    return ran


def _run(tx: Transaction, engine: str, migration: Migration) -> None:
    for statement in migration.statements(engine):
        tx.execute(statement)
    tx.execute("INSERT INTO schema_migrations (version, store, description, applied_at) "
               "VALUES (:version, :store, :description, :at)",
               {"version": migration.number, "store": migration.store, "description": migration.description,
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def require_current(db: Database, migrations: Sequence[Migration]) -> None:
    """Refuse a database whose schema is older than this gateway's (``db migrate`` upgrades it);
    a newer one (a node upgraded first) is only warned about."""
    missing = pending(db, migrations)
    if missing:
        raise DatabaseError(
            f"{db.describe()}: the schema lacks migration{'s' if len(missing) > 1 else ''} "
            f"{', '.join(str(m.number) for m in missing)} ({'; '.join(m.description for m in missing)}): run "
            "'unified-messaging db migrate' with this configuration, then start again.")
    unknown = applied(db) - {m.number for m in migrations}
    if unknown:
        log.warning("%s: the schema has migrations this version does not know (%s): a newer version of the "
                    "gateway migrated it", db.describe(), ", ".join(str(n) for n in sorted(unknown)))
