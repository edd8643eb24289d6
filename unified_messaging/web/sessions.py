"""Mybox sessions and the limit on failed logins, kept in the database: ``<data folder>/mybox.sqlite``
by default, or the PostgreSQL database of ``[database] url`` (shared by every node given it).

Kept in the database rather than in one process's memory, so that any front worker (and any node)
answers any request: a logged-in user stays logged in whichever worker answers, and a restart no
longer logs everyone out (sessions still end by their own rules).

A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie; the database keeps
what it stands for (who, since when, the CSRF token, the messages to show on the next page), under
the token's SHA-256 only, so a copy of the database opens no session.  A session ends after ``idle``
without a request and after ``lifetime`` whatever its use.  Logging in replaces the session (a
new token), so a token seen before login is worth nothing after it.

Failed logins are counted per login and per client address; after ``max_failures`` in a row the
pair is refused for ``lockout`` (a correct password included), so guessing costs hours, not
seconds, and one attacker cannot lock out everyone (the address counts on its own).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from unified_messaging.database import MYBOX, Database, Transaction, open_store
from unified_messaging.database.migrations import migrate
from unified_messaging.database.schema import MIGRATIONS, SQLITE_FILES
from unified_messaging.database.sqlite import SqliteDatabase
from unified_messaging.identifiers import mask_ssins_in_text

log = logging.getLogger(__name__)

MAX_SESSIONS = 10_000
"""Beyond this many live sessions, the oldest anonymous ones are dropped (the table stays bounded)."""
STATE_FILE = SQLITE_FILES[MYBOX]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FAILURES_LOCK = "login_failures"

def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class WebState:
    """What every Mybox process shares: sessions and failed-login counts, in ``db``."""

    def __init__(self, target: Database | Path) -> None:
        """On ``target``, a database opened for the Mybox store, or the path of a SQLite file (migrated here)."""
        if isinstance(target, Database):
            self.db = target
        else:
            self.db = SqliteDatabase(Path(target), MYBOX)
            migrate(self.db, MIGRATIONS)

    @classmethod
    def open(cls, url: str, data_folder: Path) -> "WebState":
        """The configured state: ``url`` "" = ``mybox.sqlite`` in the data folder, else that PostgreSQL."""
        return cls(open_store(url, data_folder, store=MYBOX))

    @classmethod
    def in_data_folder(cls, data_folder: Path) -> "WebState":
        return cls.open("", data_folder)

    def close(self) -> None:
        self.db.close()


@dataclass
class Session:
    token: str
    csrf: str
    created: datetime
    last_seen: datetime
    login: str | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)

    def check_csrf(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), str(given).encode())


class SessionStore:
    """Live sessions by token, in the shared state file; safe from any thread or process."""

    def __init__(self, state: WebState, *, idle: timedelta, lifetime: timedelta, clock: Callable[[], datetime],
                 token: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> None:
        self.state, self.idle, self.lifetime, self.clock, self._token = state, idle, lifetime, clock, token

    def new(self, login: str | None = None) -> Session:
        now = self.clock()
        session = Session(self._token(), self._token(), now, now, login)
        with self.state.db.transaction() as tx:
            if _count(tx, "SELECT COUNT(*) AS n FROM sessions") >= MAX_SESSIONS:
                self._prune(tx, now)
            tx.execute("INSERT INTO sessions (token_hash, csrf, created, last_seen, login) "
                       "VALUES (:key, :csrf, :now, :now, :login)",
                       {"key": _hash(session.token), "csrf": session.csrf, "now": _micros(now), "login": login})
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token``, touched; ``None`` when unknown or expired."""
        if not token:
            return None
        now, key = self.clock(), _hash(token)
        rows = self.state.db.query(  # one statement touches a live session (one round trip on PostgreSQL)
            "UPDATE sessions SET last_seen = :now WHERE token_hash = :key AND last_seen >= :idle AND created >= :life "
            "RETURNING csrf, created, login, flash",
            {"now": _micros(now), "key": key, "idle": _micros(now - self.idle), "life": _micros(now - self.lifetime)})
        if not rows:
            self.state.db.execute("DELETE FROM sessions WHERE token_hash = :key", {"key": key})  # expired, if there
            return None
        row = rows[0]
        return Session(token, row["csrf"], _moment(row["created"]), now, row["login"],
                       [tuple(pair) for pair in json.loads(row["flash"])])

    def renew(self, old: Session | None, login: str) -> Session:
        """A new session for ``login`` replacing ``old`` (called on login)."""
        self.end(old)
        return self.new(login)

    def end(self, session: Session | None) -> None:
        if session is not None:
            self.state.db.execute("DELETE FROM sessions WHERE token_hash = :key", {"key": _hash(session.token)})

    def end_user(self, login: str) -> None:
        """End every session of ``login`` (user removed, password or roles changed)."""
        self.state.db.execute("DELETE FROM sessions WHERE login = :login", {"login": login})

    def add_flash(self, session: Session, kind: str, text: str) -> None:
        """A message for the next page this session sees."""
        session.flash.append((kind, text))
        self.state.db.execute("UPDATE sessions SET flash = :flash WHERE token_hash = :key",
                              {"flash": json.dumps(session.flash), "key": _hash(session.token)})

    def take_flashes(self, session: Session) -> list[tuple[str, str]]:
        """The messages waiting for this session, now shown (so removed).

        Emptied only if unchanged since read: of two requests at once, one shows them, not both.
        """
        key = {"key": _hash(session.token)}
        session.flash.clear()
        with self.state.db.transaction() as tx:
            rows = tx.query("SELECT flash FROM sessions WHERE token_hash = :key", key)
            if not rows or rows[0]["flash"] == "[]":
                return []
            taken = tx.execute("UPDATE sessions SET flash = '[]' WHERE token_hash = :key AND flash = :flash",
                               {**key, "flash": rows[0]["flash"]})
        return [tuple(pair) for pair in json.loads(rows[0]["flash"])] if taken else []

    def _prune(self, tx: Transaction, now: datetime) -> None:
        tx.execute("DELETE FROM sessions WHERE last_seen < :idle OR created < :lifetime",
                   {"idle": _micros(now - self.idle), "lifetime": _micros(now - self.lifetime)})
        extra = _count(tx, "SELECT COUNT(*) AS n FROM sessions") - MAX_SESSIONS + 1
        if extra > 0:
            tx.execute("DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions "
                       "WHERE login IS NULL ORDER BY last_seen LIMIT :extra)", {"extra": extra})


def _count(tx: Transaction, sql: str, params: dict | None = None) -> int:
    return tx.query(sql, params)[0]["n"]


def logged_login(typed: str) -> str:
    """How the log shows a login that names no user: its length only, never its characters."""
    return f"an unknown login ({len(typed)} characters)"


class LoginLimiter:
    """Counts failed logins per login and per client address, in the shared state file; refuses
    while either is locked."""

    def __init__(self, state: WebState, *, max_failures: int, lockout: timedelta,
                 clock: Callable[[], datetime]) -> None:
        self.state, self.max_failures, self.lockout, self.clock = state, max_failures, lockout, clock

    def locked_until(self, login: str, address: str) -> datetime | None:
        """When logging in becomes possible again for this login or address, or ``None`` if it is now."""
        row = self.state.db.query_one(
            "SELECT MAX(until) AS until FROM login_locks WHERE key IN (:login, :address) AND until > :now",
            {**self._keys(login, address), "now": _micros(self.clock())})
        return _moment(row["until"]) if row and row["until"] is not None else None

    def failed(self, login: str, address: str, *, known_user: bool = False) -> None:
        """Count a wrong password; the ``max_failures``-th within ``lockout`` locks for ``lockout`` from now.

        Counted under one lock, so failures sent at once to several workers or nodes all count.
        The log names the login only when it is an existing user's: what was typed in the login field
        of an unknown one may be a password typed in the wrong field.
        """
        now = _micros(self.clock())
        window = self.lockout // timedelta(microseconds=1)
        with self.state.db.transaction(lock=FAILURES_LOCK) as tx:
            for key in self._keys(login, address).values():
                tx.execute("DELETE FROM login_failures WHERE key = :key AND at <= :old",
                           {"key": key, "old": now - window})
                tx.execute("INSERT INTO login_failures (key, at) VALUES (:key, :now)", {"key": key, "now": now})
                count = _count(tx, "SELECT COUNT(*) AS n FROM login_failures WHERE key = :key", {"key": key})
                if count >= self.max_failures:
                    tx.execute("INSERT INTO login_locks (key, until) VALUES (:key, :until) "
                               "ON CONFLICT (key) DO UPDATE SET until = excluded.until",
                               {"key": key, "until": now + window})
                    tx.execute("DELETE FROM login_failures WHERE key = :key", {"key": key})
        shown = repr(mask_ssins_in_text(login[:64])) if known_user else logged_login(login)
        log.warning("failed Mybox login for %s from %s", shown, address)

    def succeeded(self, login: str, address: str) -> None:
        keys = self._keys(login, address)
        with self.state.db.transaction(lock=FAILURES_LOCK) as tx:
            tx.execute("DELETE FROM login_failures WHERE key IN (:login, :address)", keys)
            tx.execute("DELETE FROM login_locks WHERE key IN (:login, :address)", keys)

    @staticmethod
    def _keys(login: str, address: str) -> dict[str, str]:
        return {"login": f"login:{login.strip().lower()}", "address": f"address:{address}"}
