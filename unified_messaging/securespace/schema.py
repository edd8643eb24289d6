"""The secure space file's tables and their migrations (run each time the store is opened)."""
from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    login TEXT PRIMARY KEY, name TEXT NOT NULL, ssin TEXT NOT NULL, roles TEXT NOT NULL,
    password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS space (
    id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, owner_name TEXT NOT NULL,
    owner_ssin TEXT NOT NULL, responsible_name TEXT NOT NULL, responsible_ssin TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
    id INTEGER PRIMARY KEY, label TEXT NOT NULL, holder_name TEXT, kind TEXT NOT NULL, value TEXT NOT NULL,
    identifier_type TEXT NOT NULL, quality TEXT, ssin TEXT, nihii TEXT, nihii11 TEXT, cbe TEXT,
    not_before TEXT NOT NULL, not_after TEXT NOT NULL, fingerprint TEXT NOT NULL UNIQUE,
    responsible_login TEXT NOT NULL, added_at TEXT NOT NULL,
    keystore BLOB NOT NULL, keystore_password BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS access (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    login TEXT NOT NULL, granted_by TEXT NOT NULL, granted_at TEXT NOT NULL,
    PRIMARY KEY (certificate_id, login));
CREATE TABLE IF NOT EXISTS establishments (
    id INTEGER PRIMARY KEY,
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    number TEXT NOT NULL, kind TEXT NOT NULL, ssin TEXT, valid_from TEXT NOT NULL, valid_to TEXT);
CREATE TABLE IF NOT EXISTS mandates (
    id INTEGER PRIMARY KEY, mandant_kind TEXT NOT NULL, mandant_value TEXT NOT NULL,
    mandataire_kind TEXT NOT NULL, mandataire_value TEXT NOT NULL, service TEXT NOT NULL,
    valid_from TEXT NOT NULL, valid_to TEXT, state TEXT NOT NULL,
    transferred_from INTEGER REFERENCES mandates(id), transferred_to INTEGER REFERENCES mandates(id),
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mandates_mandant ON mandates(mandant_value, service);
CREATE TABLE IF NOT EXISTS mandate_events (
    id INTEGER PRIMARY KEY, mandate_id INTEGER NOT NULL REFERENCES mandates(id), at TEXT NOT NULL,
    action TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, by TEXT NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS licence (
    id INTEGER PRIMARY KEY CHECK (id = 1), username TEXT NOT NULL, password BLOB NOT NULL,
    updated_at TEXT NOT NULL);
"""



def create_schema(conn: sqlite3.Connection) -> None:
    """Create the missing tables (``CREATE TABLE IF NOT EXISTS``); no transaction of its own."""
    conn.executescript(_SCHEMA)


def migrate(db: sqlite3.Connection) -> None:
    """Record the schema version and bring a file made by an older release up to date (in ``db``'s transaction)."""
    db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    columns = {row[1] for row in db.execute("PRAGMA table_info(users)")}
    if "language" not in columns:  # a secure space made before Mybox
        db.execute("ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en'")
