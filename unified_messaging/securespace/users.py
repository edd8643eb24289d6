"""The secure space's users: login, name, SSIN, roles, Mybox language and scrypt password hash."""
from __future__ import annotations

import logging
from typing import Any, Iterable

from unified_messaging.identifiers import mask_ssin
from unified_messaging.securespace import rules
from unified_messaging.securespace.base import StoreBase
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import LANGUAGES, Role, User

logger = logging.getLogger(__name__)


class UserStore(StoreBase):
    """The ``users`` table (a removed user also leaves every certificate's access list)."""

    def add_user(self, login: str, name: str, ssin: str, roles: Iterable[str | Role], password: str) -> User:
        login = login.strip()
        role_set = _roles(roles)
        rules.check_ssin(ssin)
        rules.check_password_strength(password)
        password_hash = self.hasher.hash(password)
        with self.write() as db:
            if db.query("SELECT 1 AS found FROM users WHERE login = :login", {"login": login}):
                raise Refusal("SS-USER-EXISTS", f"Login '{login}'.")
            db.execute("INSERT INTO users (login, name, ssin, roles, password_hash, created_at) "
                       "VALUES (:login, :name, :ssin, :roles, :hash, :at)",
                       {"login": login, "name": name, "ssin": ssin, "roles": _roles_text(role_set),
                        "hash": password_hash, "at": self._stamp()})
        logger.info("user %s added (%s, SSIN %s)", login, _roles_text(role_set), mask_ssin(ssin))
        return self.user(login)

    def user(self, login: str) -> User:
        rows = self._rows("SELECT * FROM users WHERE login = :login", {"login": login})
        if not rows:
            raise Refusal("SS-UNKNOWN-USER", f"Login '{login}'.")
        return _user(rows[0])

    def users(self) -> list[User]:
        return [_user(row) for row in self._rows("SELECT * FROM users ORDER BY login")]

    def user_by_ssin(self, ssin: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE ssin = :ssin ORDER BY login", {"ssin": ssin})
        return _user(rows[0]) if rows else None

    def authenticate(self, login: str, password: str) -> User:
        """The user when the password is right, else ``SS-WRONG-PASSWORD`` (same for an unknown login)."""
        rows = self._rows("SELECT * FROM users WHERE login = :login", {"login": login})
        if not rows:
            self.hasher.dummy_verify(password)
            raise Refusal("SS-WRONG-PASSWORD")
        if not self.hasher.verify(password, rows[0]["password_hash"]):
            logger.warning("wrong password for user %s", login)
            raise Refusal("SS-WRONG-PASSWORD")
        return _user(rows[0])

    def set_password(self, login: str, password: str) -> None:
        self.user(login)
        rules.check_password_strength(password)
        password_hash = self.hasher.hash(password)
        with self.write() as db:
            db.execute("UPDATE users SET password_hash = :hash WHERE login = :login", {"hash": password_hash, "login": login})
        logger.info("password of user %s changed", login)

    def set_roles(self, login: str, roles: Iterable[str | Role]) -> User:
        self.user(login)
        with self.write() as db:
            db.execute("UPDATE users SET roles = :roles WHERE login = :login",
                       {"roles": _roles_text(_roles(roles)), "login": login})
        return self.user(login)

    def set_language(self, login: str, language: str) -> User:
        """The user's Mybox language: ``en``, ``nl`` or ``fr``."""
        self.user(login)
        if language not in LANGUAGES:
            raise Refusal("SS-BAD-LANGUAGE", f"'{language}' was given.")
        with self.write() as db:
            db.execute("UPDATE users SET language = :language WHERE login = :login", {"language": language, "login": login})
        return self.user(login)

    def remove_user(self, login: str) -> None:
        self.user(login)
        with self.write() as db:
            db.execute("DELETE FROM access WHERE login = :login", {"login": login})
            db.execute("DELETE FROM users WHERE login = :login", {"login": login})
        logger.info("user %s removed", login)


def _roles(roles: Iterable[str | Role]) -> frozenset[Role]:
    found = set()
    for role in roles:
        try:
            found.add(Role(str(getattr(role, "value", role)).strip().lower()))
        except ValueError:
            raise Refusal("SS-BAD-ROLE", f"'{role}' was given.") from None
    if not found:
        raise Refusal("SS-BAD-ROLE", "No role was given.")
    return frozenset(found)


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


def _user(row: dict[str, Any]) -> User:
    return User(row["login"], row["name"], row["ssin"],
                frozenset(Role(r) for r in row["roles"].split(",") if r), row["created_at"], row["language"])

