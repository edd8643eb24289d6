"""The PostgreSQL engine: psycopg 3 and a ``psycopg_pool.ConnectionPool`` of autocommit
connections, each transaction an explicit ``BEGIN``/``COMMIT`` on one pooled connection.

The stores write ``:name`` parameters (SQLite's style); ``pyformat`` turns them into psycopg's
``%(name)s`` once per SQL text, leaving string literals, quoted names and ``::`` casts alone.
"""
from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from unified_messaging.database.engine import POSTGRESQL, Database, DatabaseError, Params, Row

log = logging.getLogger(__name__)

POOL_MAX = 12
"""Connections per process at most: the front's threads (``[server] threads``, 8 by default) and
the background work, each holding one only for the length of a transaction."""
CONNECT_SECONDS = 10.0

_TOKENS = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|(::)|:([A-Za-z_][A-Za-z0-9_]*)|(%)""")


@lru_cache(maxsize=512)
def pyformat(sql: str) -> str:
    """``sql`` with ``:name`` parameters written ``%(name)s`` and every ``%`` doubled (psycopg reads
    placeholders inside string literals too)."""
    def replace(match: re.Match[str]) -> str:
        if match.group(4):
            return f"%({match.group(4)})s"
        return match.group(0).replace("%", "%%")

    return _TOKENS.sub(replace, sql)


def masked_url(url: str) -> str:
    """The URL as it may be shown or logged: its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _PostgresTransaction:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = None) -> int:
        with self._conn.cursor() as cursor:
            cursor.execute(pyformat(sql), params or {})
            return cursor.rowcount

    def query(self, sql: str, params: Params = None) -> list[Row]:
        with self._conn.cursor() as cursor:
            cursor.execute(pyformat(sql), params or {})
            return cursor.fetchall()

    def insert(self, sql: str, params: Params = None) -> int:
        return int(self.query(f"{sql} RETURNING id", params)[0]["id"])

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(pyformat(sql), rows)


class PostgresDatabase(Database):
    """A PostgreSQL database shared by every node and worker given the same URL."""

    engine = POSTGRESQL

    def __init__(self, url: str, store: str) -> None:
        self.url, self.store = url, store
        self._pid = os.getpid()
        self._pool = self._open_pool()

    def _open_pool(self) -> ConnectionPool:
        try:  # one plain connection first: its error says why (the pool's only says it timed out)
            psycopg.connect(self.url, connect_timeout=int(CONNECT_SECONDS)).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"[database] url = {masked_url(self.url)!r}: cannot connect to PostgreSQL "
                                f"({reason}). Check the server, the url and the password "
                                "(PGPASSWORD or ~/.pgpass).") from None
        pool = ConnectionPool(self.url, min_size=1, max_size=POOL_MAX, open=False, name=f"um-{self.store}",
                              kwargs={"autocommit": True, "row_factory": dict_row},
                              check=ConnectionPool.check_connection, timeout=30.0)
        pool.open(wait=True, timeout=CONNECT_SECONDS)
        log.debug("PostgreSQL pool open for %s on %s", self.store, masked_url(self.url))
        return pool

    def _current_pool(self) -> ConnectionPool:
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours to use or close
            self._pid = os.getpid()
            self._pool = self._open_pool()
        return self._pool

    @contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[_PostgresTransaction]:
        with self._current_pool().connection() as conn, conn.transaction():
            tx = _PostgresTransaction(conn)
            if lock is not None:
                tx.execute("SELECT pg_advisory_xact_lock(hashtext(:lock))", {"lock": lock})
            yield tx

    def query(self, sql: str, params: Params = None) -> list[Row]:
        with self._current_pool().connection() as conn:
            return _PostgresTransaction(conn).query(sql, params)

    def has_table(self, name: str) -> bool:
        return self.query("SELECT to_regclass(:name) IS NOT NULL AS found", {"name": name})[0]["found"]

    def describe(self) -> str:
        return f"PostgreSQL {masked_url(self.url)}"

    def close(self) -> None:
        if self._pid == os.getpid():
            self._pool.close()
