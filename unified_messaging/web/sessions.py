"""Mybox sessions and the limit on failed logins, kept in ``<data folder>/mybox.sqlite``.

Kept in the database rather than in one process's memory, so that any front worker answers any
request: a logged-in user stays logged in whichever worker answers, and a restart no longer logs
everyone out (sessions still end by their own rules).

A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie; the database keeps
what it stands for (who, since when, the CSRF token, the messages to show on the next page), under
the token's SHA-256 only, so a copy of the file opens no session.  A session ends after ``idle``
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
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.journal.sqlite import SqliteFile

log = logging.getLogger(__name__)

MAX_SESSIONS = 10_000
"""Beyond this many live sessions, the oldest anonymous ones are dropped (the table stays bounded)."""
STATE_FILE = "mybox.sqlite"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, csrf TEXT NOT NULL, created INTEGER NOT NULL, last_seen INTEGER NOT NULL,
    login TEXT, flash TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS sessions_login ON sessions (login);
CREATE TABLE IF NOT EXISTS login_failures (key TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key);
CREATE TABLE IF NOT EXISTS login_locks (key TEXT PRIMARY KEY, until INTEGER NOT NULL);
"""


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class WebState(SqliteFile):
    """The file every Mybox process shares: sessions and failed-login counts."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._connection().executescript(_SCHEMA)

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row

    @classmethod
    def in_data_folder(cls, data_folder: Path) -> "WebState":
        return cls(Path(data_folder) / STATE_FILE)


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
        with self.state.write() as db:
            if db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] >= MAX_SESSIONS:
                self._prune(db, now)
            db.execute("INSERT INTO sessions (token_hash, csrf, created, last_seen, login) VALUES (?, ?, ?, ?, ?)",
                       [_hash(session.token), session.csrf, _micros(now), _micros(now), login])
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token``, touched; ``None`` when unknown or expired."""
        if not token:
            return None
        now, key = self.clock(), _hash(token)
        with self.state.write() as db:
            row = db.execute("SELECT * FROM sessions WHERE token_hash = ?", [key]).fetchone()
            if row is None:
                return None
            session = Session(token, row["csrf"], _moment(row["created"]), _moment(row["last_seen"]), row["login"],
                              [tuple(pair) for pair in json.loads(row["flash"])])
            if self._expired(session, now):
                db.execute("DELETE FROM sessions WHERE token_hash = ?", [key])
                return None
            db.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", [_micros(now), key])
        session.last_seen = now
        return session

    def renew(self, old: Session | None, login: str) -> Session:
        """A new session for ``login`` replacing ``old`` (called on login)."""
        self.end(old)
        return self.new(login)

    def end(self, session: Session | None) -> None:
        if session is not None:
            with self.state.write() as db:
                db.execute("DELETE FROM sessions WHERE token_hash = ?", [_hash(session.token)])

    def end_user(self, login: str) -> None:
        """End every session of ``login`` (user removed, password or roles changed)."""
        with self.state.write() as db:
            db.execute("DELETE FROM sessions WHERE login = ?", [login])

    def add_flash(self, session: Session, kind: str, text: str) -> None:
        """A message for the next page this session sees."""
        session.flash.append((kind, text))
        with self.state.write() as db:
            db.execute("UPDATE sessions SET flash = ? WHERE token_hash = ?",
                       [json.dumps(session.flash), _hash(session.token)])

    def take_flashes(self, session: Session) -> list[tuple[str, str]]:
        """The messages waiting for this session, now shown (so removed)."""
        with self.state.write() as db:
            row = db.execute("SELECT flash FROM sessions WHERE token_hash = ?", [_hash(session.token)]).fetchone()
            db.execute("UPDATE sessions SET flash = '[]' WHERE token_hash = ?", [_hash(session.token)])
        session.flash.clear()
        return [tuple(pair) for pair in json.loads(row["flash"])] if row else []

    def _expired(self, session: Session, now: datetime) -> bool:
        return now - session.last_seen > self.idle or now - session.created > self.lifetime

    def _prune(self, db: sqlite3.Connection, now: datetime) -> None:
        db.execute("DELETE FROM sessions WHERE last_seen < ? OR created < ?",
                   [_micros(now - self.idle), _micros(now - self.lifetime)])
        extra = db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] - MAX_SESSIONS + 1
        if extra > 0:
            db.execute("DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions WHERE login IS NULL "
                       "ORDER BY last_seen LIMIT ?)", [extra])


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
        row = self.state._connection().execute(
            "SELECT MAX(until) FROM login_locks WHERE key IN (?, ?) AND until > ?",
            [*self._keys(login, address), _micros(self.clock())]).fetchone()
        return _moment(row[0]) if row and row[0] is not None else None

    def failed(self, login: str, address: str, *, known_user: bool = False) -> None:
        """Count a wrong password; the ``max_failures``-th within ``lockout`` locks for ``lockout`` from now.

        The log names the login only when it is an existing user's: what was typed in the login field
        of an unknown one may be a password typed in the wrong field.
        """
        now = _micros(self.clock())
        window = self.lockout // timedelta(microseconds=1)
        with self.state.write() as db:
            for key in self._keys(login, address):
                db.execute("DELETE FROM login_failures WHERE key = ? AND at <= ?", [key, now - window])
                db.execute("INSERT INTO login_failures VALUES (?, ?)", [key, now])
                count = db.execute("SELECT COUNT(*) FROM login_failures WHERE key = ?", [key]).fetchone()[0]
                if count >= self.max_failures:
                    db.execute("INSERT OR REPLACE INTO login_locks VALUES (?, ?)", [key, now + window])
                    db.execute("DELETE FROM login_failures WHERE key = ?", [key])
        shown = repr(mask_ssins_in_text(login[:64])) if known_user else logged_login(login)
        log.warning("failed Mybox login for %s from %s", shown, address)

    def succeeded(self, login: str, address: str) -> None:
        keys = self._keys(login, address)
        with self.state.write() as db:
            db.execute("DELETE FROM login_failures WHERE key IN (?, ?)", keys)
            db.execute("DELETE FROM login_locks WHERE key IN (?, ?)", keys)

    @staticmethod
    def _keys(login: str, address: str) -> tuple[str, str]:
        return f"login:{login.strip().lower()}", f"address:{address}"
