"""What every store sees of its database, whichever engine holds it.

One SQL text per query, written with named ``:name`` parameters; each engine turns it into its
own placeholder style.  Rows come back as plain dicts.  A store asks for a ``transaction()`` for
anything that writes or must see one consistent state, and calls ``query``/``execute`` on the
``Database`` itself for a lone statement.

A transaction may name a ``lock``: writers that read-count-then-write under the same name are
serialised (SQLite serialises every writer already, with ``BEGIN IMMEDIATE``; PostgreSQL takes a
transaction-scoped advisory lock on the name), so both engines give the same answers under
concurrency.
"""
from __future__ import annotations

import sqlite3
import sys
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Mapping, Protocol, Sequence

from unified_messaging.config import ConfigError

Params = Mapping[str, Any] | None
Row = dict[str, Any]

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class DatabaseError(ConfigError):
    """The configured database cannot be used (unreachable, refused, schema too old): the message
    says what to change; start-up stops with it."""


def failures() -> tuple[type[Exception], ...]:
    """What a statement raises when the database fails it (a full disk, a lost server, a pool
    timeout), on either engine: for the callers that report it instead of failing (health, metrics).
    psycopg's errors are only possible once psycopg is imported (a PostgreSQL store was opened)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, DatabaseError) + ((psycopg.Error,) if psycopg is not None else ())


class Transaction(Protocol):
    """Statements inside one transaction (committed on leaving the block, rolled back on an error)."""

    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement; the number of rows it changed."""

    def query(self, sql: str, params: Params = None) -> list[Row]:
        """Run one query; its rows as dicts."""

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement once per row of parameters (a bulk copy)."""

    def insert(self, sql: str, params: Params = None) -> int:
        """Run one ``INSERT`` of a row into a table whose ``id`` the database numbers; that id (SQLite's
        ``lastrowid``, cheaper than a ``RETURNING`` on a hot path; PostgreSQL adds ``RETURNING id``)."""


class Database(ABC):
    """One database: a SQLite file, or a PostgreSQL database through a connection pool."""

    engine: str
    store: str
    """Which store this connection was opened for (on SQLite, one file per store)."""

    @abstractmethod
    def transaction(self, *, lock: str | None = None) -> AbstractContextManager[Transaction]:
        """A writing transaction; ``lock`` serialises the transactions that name it."""

    @abstractmethod
    def query(self, sql: str, params: Params = None) -> list[Row]:
        """One statement outside any transaction, and its rows: a query, or a write ``... RETURNING``
        that is its own transaction."""

    def query_one(self, sql: str, params: Params = None) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Params = None) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def insert(self, sql: str, params: Params = None) -> int:
        """``Transaction.insert`` as its own transaction; the new row's id (PostgreSQL: one autocommit
        round trip instead of ``BEGIN``, ``INSERT``, ``COMMIT``)."""
        with self.transaction() as tx:
            return tx.insert(sql, params)

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the table exists (each engine keeps its own catalogue)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data is, for people: a file path, or the URL without its password."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection."""

