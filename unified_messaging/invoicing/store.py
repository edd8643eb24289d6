"""The invoicing tables in the journal file: sent files, feedback messages, TAcks.

Plain SQL over the journal's connection helpers (``Journal.write()`` opens ``BEGIN IMMEDIATE``;
``Journal.db`` reads), so that moving to PostgreSQL stays a swap.  A file's ``state`` is the
pipeline's bookkeeping; its ``status`` is what the lab sees (OK, ONGOING, DONE, NOK).

``state``: ``claimed`` (recorded, not posted yet, or safe to post again), ``posting`` (a post was
attempted and its outcome is not known: it must not be posted again before the mailbox's TAcks
say it never arrived), ``sent`` (success TAck), ``refused`` (failure TAck or a refusal that is the
file's fault), ``error`` (refused by the gateway before sending).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from unified_messaging.invoicing.feedback import FileStatus
from unified_messaging.journal.store import Journal

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoicing_files (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    zone_204 TEXT,
    destination TEXT,
    is_test INTEGER,
    state TEXT NOT NULL,
    status TEXT,
    reference TEXT,
    reason TEXT,
    work_name TEXT,
    resend_of INTEGER REFERENCES invoicing_files(id),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    posting_since TEXT,
    last_feedback TEXT,
    last_feedback_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoicing_files_zone_204 ON invoicing_files(zone_204);
CREATE INDEX IF NOT EXISTS invoicing_files_state ON invoicing_files(state);
CREATE TABLE IF NOT EXISTS invoicing_feedback (
    id INTEGER PRIMARY KEY,
    message_key TEXT NOT NULL UNIQUE,
    file_id INTEGER REFERENCES invoicing_files(id),
    zone_204 TEXT,
    code TEXT NOT NULL,
    nip_reference TEXT,
    output_reference TEXT,
    received_name TEXT NOT NULL,
    probative_name TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invoicing_tacks (
    id INTEGER PRIMARY KEY,
    tack_key TEXT NOT NULL UNIQUE,
    file_id INTEGER REFERENCES invoicing_files(id),
    input_reference TEXT,
    reference TEXT,
    success INTEGER NOT NULL,
    message TEXT,
    probative_name TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invoicing_resends (
    sha256 TEXT PRIMARY KEY,
    refused_id INTEGER NOT NULL REFERENCES invoicing_files(id),
    at TEXT NOT NULL
);
"""

# A status never goes back: DONE and NOK are final, ONGOING does not return to OK.
_RANK = {None: 0, FileStatus.OK.value: 1, FileStatus.ONGOING.value: 2, FileStatus.DONE.value: 3,
         FileStatus.NOK.value: 3}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


class InvoicingStore:
    """Reads and writes the invoicing tables; one instance may serve several threads."""

    def __init__(self, journal: Journal, *, clock: Callable[[], datetime] | None = None) -> None:
        self.journal = journal
        self._clock = clock or journal.clock
        with journal.write() as conn:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)

    def now(self) -> str:
        return _iso(self._clock())

    # -- files --

    def file(self, file_id: int) -> dict | None:
        rows = list(self.journal.db.query("SELECT * FROM invoicing_files WHERE id = ?", [file_id]))
        return rows[0] if rows else None

    def files(self, *, states: tuple[str, ...] | None = None, limit: int = 1000) -> list[dict]:
        where, args = "", []
        if states:
            where = f"WHERE state IN ({', '.join('?' for _ in states)})"
            args = list(states)
        return list(self.journal.db.query(f"SELECT * FROM invoicing_files {where} ORDER BY id DESC LIMIT ?",
                                          [*args, limit]))

    def by_work_name(self, work_name: str) -> dict | None:
        rows = list(self.journal.db.query("SELECT * FROM invoicing_files WHERE work_name = ?", [work_name]))
        return rows[0] if rows else None

    def by_zone_204(self, zone_204: str) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_files WHERE zone_204 = ? ORDER BY id",
                                          [zone_204]))

    def record_file(self, *, name: str, size: int, sha256: str, zone_204: str | None, destination: str | None,
                    is_test: bool | None, state: str, work_name: str | None, status: str | None = None,
                    reason: str | None = None) -> int:
        """Record a claimed file (before anything is sent); links it to a refused one if resent."""
        now = self.now()
        with self.journal.write() as conn:
            link = conn.execute("SELECT refused_id FROM invoicing_resends WHERE sha256 = ?", [sha256]).fetchone()
            cursor = conn.execute(
                "INSERT INTO invoicing_files (name, size, sha256, zone_204, destination, is_test, state, status, "
                "reason, work_name, resend_of, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [name, size, sha256, zone_204, destination, None if is_test is None else int(is_test), state, status,
                 reason, work_name, link[0] if link else None, now, now])
            if link:
                conn.execute("DELETE FROM invoicing_resends WHERE sha256 = ?", [sha256])
            return int(cursor.lastrowid)

    def update_file(self, file_id: int, **values: object) -> None:
        values["updated_at"] = self.now()
        columns = ", ".join(f"{key} = ?" for key in values)
        with self.journal.write() as conn:
            conn.execute(f"UPDATE invoicing_files SET {columns} WHERE id = ?", [*values.values(), file_id])

    def start_posting(self, file_id: int) -> None:
        """Committed before the post goes out: after a crash the file is known as maybe-posted."""
        now = self.now()
        with self.journal.write() as conn:
            conn.execute("UPDATE invoicing_files SET state = 'posting', posting_since = ?, attempts = attempts + 1, "
                         "updated_at = ? WHERE id = ?", [now, now, file_id])

    def link_resend(self, sha256: str, refused_id: int) -> None:
        with self.journal.write() as conn:
            conn.execute("INSERT OR REPLACE INTO invoicing_resends (sha256, refused_id, at) VALUES (?, ?, ?)",
                         [sha256, refused_id, self.now()])

    # -- TAcks and feedback --

    def has_tack(self, tack_key: str) -> bool:
        return bool(list(self.journal.db.query("SELECT 1 FROM invoicing_tacks WHERE tack_key = ?", [tack_key])))

    def record_tack(self, *, tack_key: str, file_id: int | None, input_reference: str | None,
                    reference: str | None, success: bool, message: str | None, probative_name: str | None,
                    file_changes: dict[str, object] | None = None) -> bool:
        """Record a TAck (once) and, in the same transaction, what it changes on its file."""
        now = self.now()
        with self.journal.write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO invoicing_tacks (tack_key, file_id, input_reference, reference, success, "
                "message, probative_name, at) VALUES (?,?,?,?,?,?,?,?)",
                [tack_key, file_id, input_reference, reference, int(success), message, probative_name, now])
            if cursor.rowcount and file_id is not None and file_changes:
                changes = {**file_changes, "updated_at": now}
                columns = ", ".join(f"{key} = ?" for key in changes)
                conn.execute(f"UPDATE invoicing_files SET {columns} WHERE id = ?", [*changes.values(), file_id])
            return bool(cursor.rowcount)

    def has_feedback(self, message_key: str) -> bool:
        return bool(list(self.journal.db.query("SELECT 1 FROM invoicing_feedback WHERE message_key = ?",
                                               [message_key])))

    def record_feedback(self, *, message_key: str, file_id: int | None, zone_204: str | None, code: str,
                        nip_reference: str | None, output_reference: str | None, received_name: str,
                        probative_name: str | None, status: str, reason: str | None = None) -> None:
        """Record a feedback message (once) and move its file's status forward, never back.

        ``reason`` (why a refusing message refused the file) is kept with the NOK status it brings.
        """
        now = self.now()
        with self.journal.write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO invoicing_feedback (message_key, file_id, zone_204, code, nip_reference, "
                "output_reference, received_name, probative_name, at) VALUES (?,?,?,?,?,?,?,?,?)",
                [message_key, file_id, zone_204, code, nip_reference, output_reference, received_name,
                 probative_name, now])
            if not cursor.rowcount or file_id is None:
                return
            row = conn.execute("SELECT status FROM invoicing_files WHERE id = ?", [file_id]).fetchone()
            current = row[0] if row else None
            if _RANK.get(status, 0) > _RANK.get(current, 0) or current is None:
                conn.execute("UPDATE invoicing_files SET status = ?, updated_at = ? WHERE id = ?",
                             [status, now, file_id])
                if reason and status == FileStatus.NOK.value:
                    conn.execute("UPDATE invoicing_files SET reason = ? WHERE id = ?", [reason, file_id])
            conn.execute("UPDATE invoicing_files SET last_feedback = ?, last_feedback_at = ? WHERE id = ?",
                         [code, now, file_id])

    def feedback_for(self, file_id: int) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_feedback WHERE file_id = ? ORDER BY id",
                                          [file_id]))

    def tacks_for(self, file_id: int) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_tacks WHERE file_id = ? ORDER BY id", [file_id]))

    def resent_as(self, file_id: int) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_files WHERE resend_of = ? ORDER BY id", [file_id]))
