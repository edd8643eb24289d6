"""The database layer both engines share: SQLite files in the data folder (the default) or one
PostgreSQL database for every node (``[database] url``).

``connect`` opens a store's ``Database``; ``open_store`` also brings its schema to date the way
each engine wants it: a SQLite file is private to the install and is migrated on opening (as the
stores always created their tables); a PostgreSQL database is shared by nodes that may run
different versions during an upgrade, so it is only checked, and ``unified-messaging db migrate``
upgrades it.
"""
from __future__ import annotations

from pathlib import Path

from unified_messaging.database.engine import POSTGRESQL, SQLITE, Database, DatabaseError, Transaction
from unified_messaging.database.migrations import Migration, migrate, require_current
from unified_messaging.database.schema import JOURNAL, MIGRATIONS, MYBOX, SECURESPACE, SQLITE_FILES, adopt_sqlite

__all__ = ["Database", "DatabaseError", "Transaction", "SQLITE", "POSTGRESQL", "MYBOX", "SECURESPACE", "JOURNAL",
           "connect", "open_store", "migrate_store", "store_database"]


def connect(url: str, data_folder: Path, *, store: str = MYBOX) -> Database:
    """The database of ``store``: ``url`` "" = its SQLite file in ``data_folder``, else PostgreSQL."""
    if not url:
        from unified_messaging.database.sqlite import SqliteDatabase

        return SqliteDatabase(Path(data_folder) / SQLITE_FILES[store], store)
    from unified_messaging.database.postgres import PostgresDatabase  # psycopg only when PostgreSQL is used

    return PostgresDatabase(url, store)


def open_store(url: str, data_folder: Path, *, store: str = MYBOX) -> Database:
    """``connect``, then migrate (SQLite) or check the schema is current (PostgreSQL)."""
    db = connect(url, data_folder, store=store)
    try:
        if db.engine == SQLITE:
            migrate_store(db)
        else:
            require_current(db, MIGRATIONS)
    except BaseException:
        db.close()
        raise
    return db


def store_database(target: Database | Path, store: str) -> Database:
    """A store's database from what its class was given: an opened ``Database`` as it is, or the
    path of its SQLite file, created or adopted and migrated here."""
    if isinstance(target, Database):
        return target
    from unified_messaging.database.sqlite import SqliteDatabase

    db = SqliteDatabase(Path(target), store)
    try:
        migrate_store(db)
    except BaseException:
        db.close()
        raise
    return db


def migrate_store(db: Database) -> list[Migration]:
    """Create or upgrade ``db``'s schema (on SQLite, its store's file, adopted first when it is older
    than the migrations); the migrations that ran now."""
    store = db.store
    return migrate(db, MIGRATIONS, before=(lambda tx: adopt_sqlite(tx, store)) if db.engine == SQLITE else None)
