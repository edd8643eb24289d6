"""The PostgreSQL engine: psycopg 3 and a ``psycopg_pool.ConnectionPool`` of autocommit
connections, each transaction an explicit ``BEGIN``/``COMMIT`` on one pooled connection, a lone
statement (a query, an ``INSERT ... RETURNING id``) one round trip in autocommit.

A connection taken from the pool is not checked with a round trip (that was one more per
statement): a connection idle in the pool has nothing to read on its socket unless the server
spoke, and a server that restarted, or ended the session, said so and closed it. So only a
connection with something to read is checked (one empty statement), one found closed is dropped,
the other idle ones checked (``ConnectionPool.check``, round trips only then) and another taken:
the first request after a PostgreSQL restart gets a new connection instead of an error. A server lost *while* a statement
runs fails that statement, as before (it is not retried: it may have written).

The stores write ``:name`` parameters (SQLite's style); ``pyformat`` turns them into psycopg's
``%(name)s`` once per SQL text, leaving string literals, quoted names and ``::`` casts alone.
"""
from __future__ import annotations

import logging
import os
import re
import select
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import ConnStatus
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


def hung_up(conn: psycopg.Connection) -> bool:
    """Whether the server closed this idle connection: without a round trip when its socket holds
    nothing (the server said nothing since the last answer); else (most often its "terminating
    connection" and the end of the stream) with the pool's check, one empty statement."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        if poller.poll(0):
            ConnectionPool.check_connection(conn)
    except (OSError, psycopg.Error):
        return True
    return conn.pgconn.status != ConnStatus.OK


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
                              timeout=30.0)
        pool.open(wait=True, timeout=CONNECT_SECONDS)
        log.debug("PostgreSQL pool open for %s on %s", self.store, masked_url(self.url))
        return pool

    def _current_pool(self) -> ConnectionPool:
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours to use or close
            self._pid = os.getpid()
            self._pool = self._open_pool()
        return self._pool

    def _take(self) -> tuple[ConnectionPool, psycopg.Connection]:
        """A pooled connection the server has not closed (see the module's docstring)."""
        pool = self._current_pool()
        for _ in range(POOL_MAX + 1):
            conn = pool.getconn()
            if not hung_up(conn):
                return pool, conn
            conn.close()
            pool.putconn(conn)  # closed: the pool drops it and opens another
            log.info("PostgreSQL closed a pooled connection of %s (a restart?): checking the idle ones", self.store)
            pool.check()
        return pool, pool.getconn()  # the server keeps closing them: the statement will say why

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        pool, conn = self._take()
        try:
            yield conn
        finally:
            pool.putconn(conn)

    @contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[_PostgresTransaction]:
        with self._connection() as conn, conn.transaction():
            tx = _PostgresTransaction(conn)
            if lock is not None:
                tx.execute("SELECT pg_advisory_xact_lock(hashtext(:lock))", {"lock": lock})
            yield tx

    def query(self, sql: str, params: Params = None) -> list[Row]:
        with self._connection() as conn:
            return _PostgresTransaction(conn).query(sql, params)

    def insert(self, sql: str, params: Params = None) -> int:
        """One round trip: the ``INSERT ... RETURNING id`` commits on its own (autocommit)."""
        with self._connection() as conn:
            return _PostgresTransaction(conn).insert(sql, params)

    def has_table(self, name: str) -> bool:
        return self.query("SELECT to_regclass(:name) IS NOT NULL AS found", {"name": name})[0]["found"]

    def describe(self) -> str:
        return f"PostgreSQL {masked_url(self.url)}"

    def close(self) -> None:
        if self._pid == os.getpid():
            self._pool.close()
