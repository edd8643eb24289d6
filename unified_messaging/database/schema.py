"""The stores kept through the database layer, and the one list of their migrations.

Times are whole microseconds since 1970 (``BIGINT``: SQLite stores any integer, PostgreSQL's
``INTEGER`` would overflow).  Migration 1 uses ``IF NOT EXISTS`` so a ``mybox.sqlite`` made
before migrations existed is adopted as it is.
"""
from __future__ import annotations

from unified_messaging.database.migrations import Migration

MYBOX = "mybox"
SQLITE_FILES = {MYBOX: "mybox.sqlite"}
"""On SQLite, the file of each store in the data folder."""

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
)
