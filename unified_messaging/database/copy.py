"""``db copy``: the stores on the layer moved from the SQLite files of a data folder into an empty,
migrated PostgreSQL database, one transaction per store, their row numbers kept (and PostgreSQL's
sequences set after them, so the next row gets the next number).  The rows of a table go in one
``executemany`` (psycopg pipelines it), read in the source's row order: a resent invoicing file
comes after the refused one it names."""
from __future__ import annotations

from unified_messaging.database.engine import Database, DatabaseError
from unified_messaging.database.schema import IDENTITIES, SEEDED, TABLES


def check_empty(target: Database) -> None:
    """Refuse a target one of whose tables already holds rows, naming the table."""
    for tables in TABLES.values():
        for table in tables:
            if table not in SEEDED and target.query(f"SELECT 1 AS found FROM {table} LIMIT 1"):
                raise DatabaseError(f"{target.describe()}: the table {table} already holds rows; db copy only "
                                    "fills an empty database (nothing was copied)")


def copy_store(source: Database, target: Database, store: str) -> dict[str, int]:
    """Every row of ``store``'s tables from ``source`` into ``target``, in one transaction; rows per table."""
    counts = {}
    with target.transaction(lock=f"db-copy-{store}") as tx:
        for table in TABLES[store]:
            rows = source.query(f"SELECT * FROM {table} ORDER BY rowid")
            if rows:
                tx.execute_many(_insert_sql(table, list(rows[0])), rows)
            counts[table] = len(rows)
        for table in IDENTITIES.get(store, ()):
            tx.query(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                     f"AS next FROM {table}")
    return counts


def _insert_sql(table: str, names: list[str]) -> str:
    columns = ", ".join(f'"{name}"' for name in names)
    values = ", ".join(f":{name}" for name in names)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({values})"
    if table in SEEDED:
        key = SEEDED[table]
        updates = ", ".join(f'"{name}" = excluded."{name}"' for name in names if name != key)
        sql += f' ON CONFLICT ("{key}") DO UPDATE SET {updates}'
    return sql
