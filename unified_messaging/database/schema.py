"""The stores kept through the database layer, and the one list of their migrations.

Times are whole microseconds since 1970 (``BIGINT``: SQLite stores any integer, PostgreSQL's
``INTEGER`` would overflow).  Migrations 1 and 2 use ``IF NOT EXISTS`` so a ``mybox.sqlite`` or a
``securespace.sqlite`` made before migrations existed is adopted as it is (``adopt_sqlite`` first
brings an older secure space file to the columns migration 2 creates).

The secure space keeps its dates as ISO texts on both engines (as its SQLite file always did);
its sealed values are ``BLOB`` on SQLite and ``BYTEA`` on PostgreSQL; row numbers are SQLite's
``INTEGER PRIMARY KEY`` and PostgreSQL's identity columns (``BY DEFAULT``, so that ``db copy``
keeps the numbers).  Logins sort as SQLite sorts them (bytes: ``COLLATE "C"`` on PostgreSQL).
"""
from __future__ import annotations

from unified_messaging.database.engine import POSTGRESQL, SQLITE, Transaction
from unified_messaging.database.migrations import Migration

MYBOX = "mybox"
SECURESPACE = "securespace"
SQLITE_FILES = {MYBOX: "mybox.sqlite", SECURESPACE: "securespace.sqlite"}
"""On SQLite, the file of each store in the data folder."""
SQLITE_PRAGMAS = {SECURESPACE: ("foreign_keys=ON", "secure_delete=ON")}
"""Run on each new SQLite connection of the store (a removed secure-space row is overwritten)."""

TABLES = {
    MYBOX: ("sessions", "login_failures", "login_locks"),
    SECURESPACE: ("users", "space", "certificates", "access", "establishments", "mandates", "mandate_events",
                  "licence"),
}
"""Each store's tables, in an order that satisfies their foreign keys (``db copy`` writes them so)."""
IDENTITIES = {SECURESPACE: ("certificates", "establishments", "mandates", "mandate_events")}
"""The tables whose ``id`` is numbered by the database (PostgreSQL's sequence follows a copy)."""

_SECURESPACE = """
CREATE TABLE IF NOT EXISTS users (
    login TEXT {c} PRIMARY KEY, name TEXT NOT NULL, ssin TEXT NOT NULL, roles TEXT NOT NULL,
    password_hash TEXT NOT NULL, created_at TEXT NOT NULL, language TEXT NOT NULL DEFAULT 'en');
CREATE TABLE IF NOT EXISTS space (
    id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, owner_name TEXT NOT NULL,
    owner_ssin TEXT NOT NULL, responsible_name TEXT NOT NULL, responsible_ssin TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
    id {id}, label TEXT NOT NULL, holder_name TEXT, kind TEXT NOT NULL, value TEXT NOT NULL,
    identifier_type TEXT NOT NULL, quality TEXT, ssin TEXT, nihii TEXT, nihii11 TEXT, cbe TEXT,
    not_before TEXT NOT NULL, not_after TEXT NOT NULL, fingerprint TEXT NOT NULL UNIQUE,
    responsible_login TEXT NOT NULL, added_at TEXT NOT NULL,
    keystore {blob} NOT NULL, keystore_password {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS access (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    login TEXT {c} NOT NULL, granted_by TEXT NOT NULL, granted_at TEXT NOT NULL,
    PRIMARY KEY (certificate_id, login));
CREATE TABLE IF NOT EXISTS establishments (
    id {id},
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    number TEXT NOT NULL, kind TEXT NOT NULL, ssin TEXT, valid_from TEXT NOT NULL, valid_to TEXT);
CREATE TABLE IF NOT EXISTS mandates (
    id {id}, mandant_kind TEXT NOT NULL, mandant_value TEXT NOT NULL,
    mandataire_kind TEXT NOT NULL, mandataire_value TEXT NOT NULL, service TEXT NOT NULL,
    valid_from TEXT NOT NULL, valid_to TEXT, state TEXT NOT NULL,
    transferred_from INTEGER REFERENCES mandates(id), transferred_to INTEGER REFERENCES mandates(id),
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mandates_mandant ON mandates(mandant_value, service);
CREATE TABLE IF NOT EXISTS mandate_events (
    id {id}, mandate_id INTEGER NOT NULL REFERENCES mandates(id), at TEXT NOT NULL,
    action TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, "by" TEXT NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS licence (
    id INTEGER PRIMARY KEY CHECK (id = 1), username TEXT NOT NULL, password {blob} NOT NULL,
    updated_at TEXT NOT NULL);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, MYBOX, "Mybox sessions and failed-login counters", """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, csrf TEXT NOT NULL, created BIGINT NOT NULL, last_seen BIGINT NOT NULL,
    login TEXT, flash TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS sessions_login ON sessions (login);
CREATE TABLE IF NOT EXISTS login_failures (key TEXT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key);
CREATE TABLE IF NOT EXISTS login_locks (key TEXT PRIMARY KEY, until BIGINT NOT NULL);
"""),
    Migration(2, SECURESPACE, "the secure space: users, certificates and access lists, establishments, mandates, "
              "the licence", {
                  SQLITE: _SECURESPACE.format(c="", id="INTEGER PRIMARY KEY", blob="BLOB"),
                  POSTGRESQL: _SECURESPACE.format(c='COLLATE "C"', id="BIGINT GENERATED BY DEFAULT AS IDENTITY "
                                                  "PRIMARY KEY", blob="BYTEA")}),
)


def adopt_sqlite(tx: Transaction, store: str) -> None:
    """Bring a SQLite file made before the numbered migrations to the tables they create (in ``tx``):
    a secure space made before Mybox has no ``users.language``."""
    if store != SECURESPACE:
        return
    columns = {row["name"] for row in tx.query("SELECT name FROM pragma_table_info('users')")}
    if columns and "language" not in columns:
        tx.execute("ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en'")
