"""Mybox sessions and the limit on failed logins, both kept in the gateway's memory.

A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie; the server keeps what
it stands for (who, since when, the CSRF token).  A session ends after ``idle`` without a request
and after ``lifetime`` whatever its use; a restart of the gateway ends them all, which is the safe
side for a tool that shows patients' insurance data.  Logging in replaces the session (a new
token), so a token seen before login is worth nothing after it.

Failed logins are counted per login and per client address; after ``max_failures`` in a row the
pair is refused for ``lockout`` (a correct password included), so guessing costs hours, not
seconds, and one attacker cannot lock out everyone (the address counts on its own).
"""
from __future__ import annotations

import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from unified_messaging.identifiers import mask_ssins_in_text

log = logging.getLogger(__name__)

MAX_SESSIONS = 10_000
"""Beyond this many live sessions, the oldest anonymous ones are dropped (memory stays bounded)."""


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
    """Live sessions by token; thread-safe."""

    def __init__(self, *, idle: timedelta, lifetime: timedelta, clock: Callable[[], datetime],
                 token: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> None:
        self.idle, self.lifetime, self.clock, self._token = idle, lifetime, clock, token
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def new(self, login: str | None = None) -> Session:
        now = self.clock()
        session = Session(self._token(), self._token(), now, now, login)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._prune(now)
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token``, touched; ``None`` when unknown or expired."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[token]
                return None
            session.last_seen = now
            return session

    def renew(self, old: Session | None, login: str) -> Session:
        """A new session for ``login`` replacing ``old`` (called on login)."""
        self.end(old)
        return self.new(login)

    def end(self, session: Session | None) -> None:
        if session is not None:
            with self._lock:
                self._sessions.pop(session.token, None)

    def end_user(self, login: str) -> None:
        """End every session of ``login`` (user removed, password or roles changed)."""
        with self._lock:
            for token in [t for t, s in self._sessions.items() if s.login == login]:
                del self._sessions[token]

    def _expired(self, session: Session, now: datetime) -> bool:
        return now - session.last_seen > self.idle or now - session.created > self.lifetime

    def _prune(self, now: datetime) -> None:
        for token in [t for t, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[token]
        anonymous = sorted((s.last_seen, t) for t, s in self._sessions.items() if s.login is None)
        for _, token in anonymous[: max(0, len(self._sessions) - MAX_SESSIONS + 1)]:
            del self._sessions[token]


def logged_login(typed: str) -> str:
    """How the log shows a login that names no user: its length only, never its characters."""
    return f"an unknown login ({len(typed)} characters)"


class LoginLimiter:
    """Counts failed logins per login and per client address; refuses while either is locked."""

    def __init__(self, *, max_failures: int, lockout: timedelta, clock: Callable[[], datetime]) -> None:
        self.max_failures, self.lockout, self.clock = max_failures, lockout, clock
        self._failures: dict[str, list[datetime]] = {}
        self._locked: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def locked_until(self, login: str, address: str) -> datetime | None:
        """When logging in becomes possible again for this login or address, or ``None`` if it is now."""
        now = self.clock()
        with self._lock:
            ends = [end for key in self._keys(login, address) if (end := self._locked.get(key)) and end > now]
        return max(ends) if ends else None

    def failed(self, login: str, address: str, *, known_user: bool = False) -> None:
        """Count a wrong password; the ``max_failures``-th within ``lockout`` locks for ``lockout`` from now.

        The log names the login only when it is an existing user's: what was typed in the login field
        of an unknown one may be a password typed in the wrong field.
        """
        now = self.clock()
        with self._lock:
            for key in self._keys(login, address):
                recent = [t for t in self._failures.get(key, []) if now - t < self.lockout]
                recent.append(now)
                if len(recent) >= self.max_failures:
                    self._locked[key] = now + self.lockout
                    recent = []
                self._failures[key] = recent
        shown = repr(mask_ssins_in_text(login[:64])) if known_user else logged_login(login)
        log.warning("failed Mybox login for %s from %s", shown, address)

    def succeeded(self, login: str, address: str) -> None:
        with self._lock:
            for key in self._keys(login, address):
                self._failures.pop(key, None)
                self._locked.pop(key, None)

    @staticmethod
    def _keys(login: str, address: str) -> tuple[str, str]:
        return f"login:{login.strip().lower()}", f"address:{address}"
