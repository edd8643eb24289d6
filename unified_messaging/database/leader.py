"""Which node runs the singletons when several share one PostgreSQL database (``[database] url``).

Exactly one node at a time runs the invoicing pickup and mailbox poller, the toQuery watcher and
the batch scheduler: the one holding a PostgreSQL **session advisory lock** on a connection of
its own (not from the pool: a pooled connection is handed back and would take the lock with it).
The server releases the lock when that session ends, however it ends:

* the holder's process dies (SIGKILL, a crash): the kernel closes its socket, the server sees it
  at once;
* the holder stops answering (SIGSTOP, a frozen VM, a cut network): the session is opened with
  ``idle_session_timeout`` = half the takeover time, and the holder runs a query every quarter of
  it, so the server ends a session left idle that long; TCP keepalives and ``tcp_user_timeout``
  (both sides) notice a dead peer whose socket was never closed.

A standby tries ``pg_try_advisory_lock`` every quarter of the takeover time, so it leads at most
``takeover_seconds`` after the holder's death.

**Fencing.** The holder's lease is the time of its last successful check plus ``lease`` (less than
the server's idle timeout): :meth:`Leadership.holds` is false once the lease has run out, even if
the thread that checks is itself frozen or blocked, so a frozen old leader that wakes up does not
take another step before it has noticed; and when a check fails, the holder stops its singletons
at once (``on_lose``).  What the singletons do between their last ``holds()`` and a write is the
window that remains; the invoicing pipeline checks it before each claim, record and post.

On SQLite (url "") there is one node, and no election: the gateway does not build a Leadership.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable

import psycopg

from unified_messaging.database.postgres import CONNECT_SECONDS, masked_url

log = logging.getLogger(__name__)

LOCK_CLASS = 0x756D  # "um": the first key of pg_try_advisory_lock(int, int)
LOCK_SINGLETONS = 1
APPLICATION = "unified-messaging leader"


def node_name() -> str:
    """How this node is named to the others (host and process; no secret)."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class Leadership:
    """Elect this node with the others on ``url``; ``on_lead`` when it wins, ``on_lose`` when it loses.

    ``start()`` runs the election on a thread of its own; ``stop()`` stops the singletons (if this
    node leads) and releases the lock.  ``clock`` and ``takeover_seconds`` make tests fast.
    """

    def __init__(self, url: str, *, on_lead: Callable[[], None], on_lose: Callable[[], None],
                 takeover_seconds: float = 10.0, node: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.node = node or node_name()
        self.on_lead, self.on_lose = on_lead, on_lose
        self.takeover_seconds = takeover_seconds
        self.interval = max(0.1, takeover_seconds / 4)
        """Between two tries of a standby, and two checks of the holder."""
        self.idle_timeout = max(0.5, takeover_seconds / 2)
        """The server ends the session left idle this long (the holder is frozen or cut off)."""
        self.lease = self.idle_timeout * 0.8
        self.clock = clock
        self._conn: psycopg.Connection | None = None
        self._leading = False
        self._lease_until = 0.0
        self._known_leader: str | None = None
        self._unreachable = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changes = threading.Condition()

    # -- what the singletons ask --

    @property
    def leading(self) -> bool:
        """Whether this node runs the singletons now (from the moment it won until it stops them)."""
        return self._leading

    def holds(self) -> bool:
        """Whether this node may take a step of the singletons now: it leads and its lease runs."""
        return self._leading and self.clock() < self._lease_until

    # -- life cycle --

    def start(self) -> "Leadership":
        """Try once now (a node that wins at start-up starts its singletons before it says it serves,
        and their start-up errors are its own), then go on in the background."""
        self._stop.clear()
        try:
            self._try()
        except psycopg.Error as exc:
            self._connection_lost(exc)
        self._thread = threading.Thread(target=self._run, name="um-leadership", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the singletons first (if this node leads), then release the lock by closing its session."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        self._lose(reason=None)
        self._close()

    def wait_leading(self, value: bool, timeout: float) -> bool:
        """Wait until ``leading`` is ``value``; whether it is (tests, and a node's start-up)."""
        with self._changes:
            return self._changes.wait_for(lambda: self._leading == value, timeout)

    # -- the election --

    def _run(self) -> None:
        while not self._stop.is_set():
            began = self.clock()
            try:
                if self._leading:
                    self._check()
                else:
                    self._try()
            except psycopg.Error as exc:
                self._connection_lost(exc)
            except Exception:
                log.exception("the singletons did not start on this node; it stays a standby for %.0f s, "
                              "leaving the lead to another node", self.takeover_seconds)
                self._stop.wait(self.takeover_seconds)
            self._stop.wait(max(0.0, self.interval - (self.clock() - began)))

    def _try(self) -> None:
        conn = self._connection()
        began = self.clock()
        self._unreachable = False
        won = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LOCK_SINGLETONS)).fetchone()[0]
        if not won:
            leader = self._holder(conn)
            if leader != self._known_leader:
                log.info("standby: node %s leads; this node takes over if it stops (within %.0f s)",
                         leader or "(unknown)", self.takeover_seconds)
                self._known_leader = leader
            return
        self._lease_until = began + self.lease
        self._known_leader = self.node
        log.info("this node now runs the singletons (leader): %s on %s", self.node, masked_url(self.url))
        self._set_leading(True)  # before they start: their first pass may act
        try:
            self.on_lead()
        except BaseException:
            self._set_leading(False)
            self._lease_until = 0.0
            self.on_lose()  # what did start stops
            self._close()  # the lock goes with the session: another node may do better
            raise
        self._check()  # their start took time: the lease is renewed (or lost, if it took too long)

    def _check(self) -> None:
        """The holder's regular check: the session is alive and still holds the lock."""
        began = self.clock()
        holds = self._conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s "
            "AND objsubid = 2 AND pid = pg_backend_pid() AND granted", (LOCK_CLASS, LOCK_SINGLETONS)).fetchone()[0]
        if not holds:
            self._lose(reason="the lock is no longer held by this session")
            self._close()
            return
        self._lease_until = began + self.lease

    def _holder(self, conn: psycopg.Connection) -> str | None:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 AND l.granted",
            (LOCK_CLASS, LOCK_SINGLETONS)).fetchone()
        if row is None or not row[0]:
            return None
        return row[0].removeprefix(APPLICATION).strip(": ") or None

    def _connection_lost(self, exc: BaseException) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self._leading:
            self._lose(reason=f"its connection to PostgreSQL was lost ({reason})")
        elif not self._unreachable:  # once per outage, not at every try
            log.warning("standby: cannot reach PostgreSQL %s (%s); trying again every %.1f s", masked_url(self.url),
                        reason, self.interval)
        self._unreachable = True
        self._close()

    def _lose(self, *, reason: str | None) -> None:
        """Stop the singletons at once: another node may lead from now on."""
        if not self._leading:
            return
        self._lease_until = 0.0
        if reason is not None:
            log.error("this node no longer runs the singletons: %s; another node may lead now", reason)
        self._set_leading(False)
        try:
            self.on_lose()
        except Exception:
            log.exception("stopping the singletons failed")
        self._known_leader = None

    def _set_leading(self, value: bool) -> None:
        with self._changes:
            self._leading = value
            self._changes.notify_all()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            keepalive = max(1, round(self.interval))
            idle_ms = int(self.idle_timeout * 1000)
            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=int(CONNECT_SECONDS),
                application_name=f"{APPLICATION}: {self.node}"[:63],
                keepalives=1, keepalives_idle=keepalive, keepalives_interval=keepalive, keepalives_count=2,
                tcp_user_timeout=idle_ms,
                options=f"-c idle_session_timeout={idle_ms} -c tcp_keepalives_idle={keepalive} "
                        f"-c tcp_keepalives_interval={keepalive} -c tcp_keepalives_count=2 "
                        f"-c tcp_user_timeout={idle_ms}")
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


__all__ = ["Leadership", "node_name"]
