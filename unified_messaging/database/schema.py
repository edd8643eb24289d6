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

import logging
import re
from datetime import datetime, timezone

from unified_messaging.database.engine import POSTGRESQL, SQLITE, Transaction
from unified_messaging.database.migrations import Migration

log = logging.getLogger(__name__)

MYBOX = "mybox"
SECURESPACE = "securespace"
JOURNAL = "journal"
SQLITE_FILES = {MYBOX: "mybox.sqlite", SECURESPACE: "securespace.sqlite", JOURNAL: "journal.sqlite"}
"""On SQLite, the file of each store in the data folder."""
SQLITE_PRAGMAS = {SECURESPACE: ("foreign_keys=ON", "secure_delete=ON")}
"""Run on each new SQLite connection of the store (a removed secure-space row is overwritten)."""

TABLES = {
    MYBOX: ("sessions", "login_failures", "login_locks"),
    SECURESPACE: ("users", "space", "certificates", "access", "establishments", "mandates", "mandate_events",
                  "licence"),
    JOURNAL: ("meta", "consultations", "batch_files", "invoicing_files", "invoicing_feedback", "invoicing_tacks",
              "invoicing_resends"),
}
"""Each store's tables, in an order that satisfies their foreign keys (``db copy`` writes them so)."""
SEEDED = {"meta": "key"}
"""Tables a migration puts rows in (the journal's schema version...), by their key: ``db copy``
finds them filled in an empty database and overwrites those rows with the copied ones."""
IDENTITIES = {SECURESPACE: ("certificates", "establishments", "mandates", "mandate_events"),
              JOURNAL: ("consultations", "batch_files", "invoicing_files", "invoicing_feedback", "invoicing_tacks")}
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

_JOURNAL = """
CREATE TABLE IF NOT EXISTS consultations (
    id {id}, at TEXT NOT NULL, interface TEXT NOT NULL, care_provider TEXT, quality TEXT, patient TEXT,
    period_start TEXT, period_end TEXT, outcome TEXT NOT NULL, code TEXT, audit_reference TEXT, reference TEXT,
    duration_ms {real} NOT NULL, client TEXT,
    upstream_service TEXT);
CREATE INDEX IF NOT EXISTS consultations_at ON consultations(at);
DROP INDEX IF EXISTS consultations_outcome;
CREATE INDEX IF NOT EXISTS consultations_outcome_at ON consultations(outcome, at, code);
CREATE INDEX IF NOT EXISTS consultations_outcome_id ON consultations(outcome, id);
CREATE INDEX IF NOT EXISTS consultations_service_id ON consultations(upstream_service, id);
CREATE TABLE IF NOT EXISTS batch_files (
    id {id}, job TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, lines INTEGER, ok INTEGER,
    errors INTEGER, resumed_at INTEGER, output TEXT, reason TEXT, started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS batch_files_job ON batch_files(job, id);
CREATE INDEX IF NOT EXISTS batch_files_status ON batch_files(status, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('schema_version', '1') ON CONFLICT (key) DO NOTHING;
INSERT INTO meta (key, value) VALUES ('upstream_service_filled', 'migration 3') ON CONFLICT (key) DO NOTHING;
CREATE TABLE IF NOT EXISTS invoicing_files (
    id {id}, name TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, zone_204 TEXT, destination TEXT,
    is_test INTEGER, state TEXT NOT NULL, status TEXT, reference TEXT, reason TEXT, work_name TEXT,
    resend_of INTEGER REFERENCES invoicing_files(id), attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT,
    posting_since TEXT, last_feedback TEXT, last_feedback_at TEXT, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, amount_requested BIGINT, amount_accepted BIGINT, amount_rejected BIGINT,
    payment_reference TEXT, reason_text TEXT, sender TEXT, mailbox_nihii TEXT, mailbox_quality TEXT, acting TEXT);
CREATE TABLE IF NOT EXISTS invoicing_feedback (
    id {id}, message_key TEXT NOT NULL UNIQUE, file_id INTEGER REFERENCES invoicing_files(id), zone_204 TEXT,
    code TEXT NOT NULL, nip_reference TEXT, output_reference TEXT, received_name TEXT NOT NULL,
    probative_name TEXT, at TEXT NOT NULL, error_counts TEXT, record_count INTEGER);
CREATE TABLE IF NOT EXISTS invoicing_tacks (
    id {id}, tack_key TEXT NOT NULL UNIQUE, file_id INTEGER REFERENCES invoicing_files(id),
    input_reference TEXT, reference TEXT, success INTEGER NOT NULL, message TEXT, probative_name TEXT,
    at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invoicing_resends (
    sha256 TEXT PRIMARY KEY, refused_id INTEGER NOT NULL REFERENCES invoicing_files(id), at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS invoicing_files_zone_204 ON invoicing_files(zone_204);
CREATE INDEX IF NOT EXISTS invoicing_files_state ON invoicing_files(state);
CREATE INDEX IF NOT EXISTS invoicing_files_created_at ON invoicing_files(created_at);
CREATE INDEX IF NOT EXISTS invoicing_files_status ON invoicing_files(status, created_at);
CREATE INDEX IF NOT EXISTS invoicing_feedback_file ON invoicing_feedback(file_id, code, at);
CREATE INDEX IF NOT EXISTS invoicing_feedback_at ON invoicing_feedback(at);
CREATE INDEX IF NOT EXISTS invoicing_tacks_file ON invoicing_tacks(file_id, success, at);
"""

JOURNAL_ADDED_COLUMNS = {
    "consultations": (("client", "TEXT"), ("upstream_service", "TEXT")),
    "invoicing_files": (("amount_requested", "INTEGER"), ("amount_accepted", "INTEGER"),
                        ("amount_rejected", "INTEGER"), ("payment_reference", "TEXT"),
                        ("reason_text", "TEXT"), ("sender", "TEXT"), ("mailbox_nihii", "TEXT"),
                        ("mailbox_quality", "TEXT"), ("acting", "TEXT")),
    "invoicing_feedback": (("error_counts", "TEXT"), ("record_count", "INTEGER")),
}
"""The columns a journal.sqlite of an earlier release may lack (``adopt_sqlite`` adds them before
migration 3, whose ``CREATE TABLE IF NOT EXISTS`` then leaves the tables as they are)."""


def _postgres_text(sql: str) -> str:
    """PostgreSQL's text compares as SQLite's does (bytes), whatever the cluster's locale: the
    journal's ISO dates, outcomes and codes are ranges and sort keys."""
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)


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
    Migration(3, JOURNAL, "the journal (consultations, batch files) and the invoicing state", {
        SQLITE: _JOURNAL.format(id="INTEGER PRIMARY KEY", real="REAL"),
        POSTGRESQL: _postgres_text(_JOURNAL.format(id="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                                                   real="DOUBLE PRECISION"))}),
    Migration(4, JOURNAL, "invoicing: one row per file of the working folder",
              "CREATE UNIQUE INDEX IF NOT EXISTS invoicing_files_work_name ON invoicing_files(work_name)"),
)


def adopt_sqlite(tx: Transaction, store: str) -> None:
    """Bring a SQLite file made before the numbered migrations to the tables they create (in ``tx``):
    a secure space made before Mybox has no ``users.language``; a journal may lack columns added
    over its releases, and its consultations from before ``upstream_service`` are marked."""
    if store == JOURNAL:
        _adopt_journal(tx)
    if store != SECURESPACE:
        return
    columns = {row["name"] for row in tx.query("SELECT name FROM pragma_table_info('users')")}
    if columns and "language" not in columns:
        tx.execute("ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en'")


def _adopt_journal(tx: Transaction) -> None:
    for table, added in JOURNAL_ADDED_COLUMNS.items():
        present = {row["name"] for row in tx.query(f"SELECT name FROM pragma_table_info('{table}')")}
        for column, kind in added:
            if present and column not in present:
                tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                log.info("journal: column %s.%s added", table, column)
    if not tx.query("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'consultations'"):
        return  # a new journal: migration 3 creates it
    tx.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    if tx.query("SELECT 1 AS found FROM meta WHERE key = 'upstream_service_filled'"):
        return
    # The consultations journaled before upstream_service existed, and sent (any outcome but
    # REJECTED), were answered by GenericInsurability, the only service there was.
    filled = tx.execute("UPDATE consultations SET upstream_service = 'genins' "
                        "WHERE upstream_service IS NULL AND outcome <> 'REJECTED'")
    tx.execute("INSERT INTO meta (key, value) VALUES ('upstream_service_filled', :at)",
               {"at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if filled:
        log.info("journal: %d consultation(s) from before the upstream_service column marked genins", filled)
