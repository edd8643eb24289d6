"""The invoicing tables in the journal file: sent files, feedback messages, TAcks.

Plain SQL over the journal's connection helpers (``Journal.write()`` opens ``BEGIN IMMEDIATE``;
``Journal.db`` reads), so that moving to PostgreSQL stays a swap.  A file's ``state`` is the
pipeline's bookkeeping; its ``status`` is what the lab sees (OK, ONGOING, DONE, NOK).

``state``: ``claimed`` (recorded, not posted yet, or safe to post again), ``posting`` (a post was
attempted and its outcome is not known: it must not be posted again before the mailbox's TAcks
say it never arrived), ``sent`` (success TAck), ``refused`` (failure TAck or a refusal that is the
file's fault), ``error`` (refused by the gateway before sending).

Mybox and ``invoicing status`` show one status per file (``SHOWN_STATUSES``): ``ERROR`` for ``state = 'error'``,
``WAITING`` while nothing was sent (no status, ``claimed`` or ``posting``), else the status.
Amounts are in cents, set by the 920900; a feedback message keeps its error counts as JSON
(``{"B": 2, "zone": 1}``: error slots per letter, ``zone`` for error-code zones), NULL when the
message could not be read.  Months are UTC months of the ISO timestamps the tables hold.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping

from unified_messaging.efact.feedback import FileStatus
from unified_messaging.texts import Reason
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
    updated_at TEXT NOT NULL,
    amount_requested INTEGER,
    amount_accepted INTEGER,
    amount_rejected INTEGER,
    payment_reference TEXT
);
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
    at TEXT NOT NULL,
    error_counts TEXT,
    record_count INTEGER
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

# Columns added after the first release: a journal created before them gets them at start-up.
_ADDED_COLUMNS = {
    "invoicing_files": (("amount_requested", "INTEGER"), ("amount_accepted", "INTEGER"),
                        ("amount_rejected", "INTEGER"), ("payment_reference", "TEXT"),
                        ("reason_text", "TEXT"), ("sender", "TEXT"), ("mailbox_nihii", "TEXT"),
                        ("mailbox_quality", "TEXT"), ("acting", "TEXT")),
    "invoicing_feedback": (("error_counts", "TEXT"), ("record_count", "INTEGER")),
}

# Created once every column exists (some are on added columns).
_INDEXES = """
CREATE INDEX IF NOT EXISTS invoicing_files_zone_204 ON invoicing_files(zone_204);
CREATE INDEX IF NOT EXISTS invoicing_files_state ON invoicing_files(state);
CREATE INDEX IF NOT EXISTS invoicing_files_created_at ON invoicing_files(created_at);
CREATE INDEX IF NOT EXISTS invoicing_files_status ON invoicing_files(status, created_at);
CREATE INDEX IF NOT EXISTS invoicing_feedback_file ON invoicing_feedback(file_id, code, at);
CREATE INDEX IF NOT EXISTS invoicing_feedback_at ON invoicing_feedback(at);
CREATE INDEX IF NOT EXISTS invoicing_tacks_file ON invoicing_tacks(file_id, success, at)
"""

# What the UI shows for a file; the SQL below and ``_status_condition`` must agree.
SHOWN_STATUSES = ("WAITING", "OK", "ONGOING", "DONE", "NOK", "ERROR")
_SHOWN_STATUS_SQL = ("CASE WHEN state = 'error' THEN 'ERROR' "
                     "WHEN status IS NULL AND state IN ('claimed', 'posting') THEN 'WAITING' "
                     "ELSE status END")
_TEXT_COLUMNS = ("name", "reference", "zone_204", "destination", "reason")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")

# A status never goes back: DONE and NOK are final, ONGOING does not return to OK.
_RANK = {None: 0, FileStatus.OK.value: 1, FileStatus.ONGOING.value: 2, FileStatus.DONE.value: 3,
         FileStatus.NOK.value: 3}


def _with_reason_text(values: dict[str, object]) -> dict[str, object]:
    """``reason`` given as a :class:`Reason`: its English text in ``reason`` (the command line, the
    search) and its lines in ``reason_text`` (Mybox translates them); a plain text clears ``reason_text``."""
    if "reason" not in values:
        return values
    given = values["reason"]
    if isinstance(given, Reason):
        return {**values, "reason": str(given), "reason_text": given.to_json()}
    return {**values, "reason_text": None}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SettledAmounts:
    """What a 920900 settles for a file, in cents (None where the message leaves it blank)."""

    requested: int | None
    accepted: int | None
    rejected: int | None
    payment_reference: str | None = None


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def _month_range(month: str) -> tuple[str, str]:
    """``"2025-03"`` -> (``"2025-03-01"``, ``"2025-04-01"``): bounds for ISO timestamps."""
    found = _MONTH.fullmatch(month)
    if not found:
        raise ValueError(f"month {month!r} is not YYYY-MM")
    year, number = int(found.group(1)), int(found.group(2))
    next_year, next_month = _shift_month(year, number, 1)
    return f"{year:04d}-{number:02d}-01", f"{next_year:04d}-{next_month:02d}-01"


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _status_condition(status: str) -> tuple[str, list[object]]:
    shown = status.upper()
    if shown == "ERROR":
        return "state = 'error'", []
    if shown == "WAITING":
        return "status IS NULL AND state IN ('claimed', 'posting')", []
    if shown in SHOWN_STATUSES:
        return "status = ? AND state != 'error'", [shown]
    raise ValueError(f"status {status!r} is not one of {', '.join(SHOWN_STATUSES)}")


def _counts(raw: str | None) -> dict[str, int] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class InvoicingStore:
    """Reads and writes the invoicing tables; one instance may serve several threads."""

    def __init__(self, journal: Journal, *, clock: Callable[[], datetime] | None = None) -> None:
        self.journal = journal
        self._clock = clock or journal.clock
        with journal.write() as conn:
            earlier = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            for table, columns in _ADDED_COLUMNS.items():
                present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for column, kind in columns:
                    if column not in present:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                        if table in earlier:  # an upgrade, worth saying; a new journal just gets them
                            log.info("journal: column %s.%s added", table, column)
            for statement in filter(None, (s.strip() for s in _INDEXES.split(";"))):
                conn.execute(statement)

    def now(self) -> str:
        return _iso(self._clock())

    # -- files --

    def file(self, file_id: int) -> dict | None:
        """One file: every column plus ``shown_status`` (see ``SHOWN_STATUSES``)."""
        rows = list(self.journal.db.query(f"SELECT *, {_SHOWN_STATUS_SQL} AS shown_status FROM invoicing_files "
                                          "WHERE id = ?", [file_id]))
        return rows[0] if rows else None

    def files(self, *, states: tuple[str, ...] | None = None, limit: int = 1000) -> list[dict]:
        where, args = "", []
        if states:
            where = f"WHERE state IN ({', '.join('?' for _ in states)})"
            args = list(states)
        return list(self.journal.db.query(f"SELECT *, {_SHOWN_STATUS_SQL} AS shown_status FROM invoicing_files "
                                          f"{where} ORDER BY id DESC LIMIT ?", [*args, limit]))

    def mailboxes_in_flight(self) -> list[tuple[str, str]]:
        """The (NIHII, quality) mailboxes of files whose feedback may still come (posted, not final)."""
        rows = self.journal.db.query(
            "SELECT DISTINCT mailbox_nihii, mailbox_quality FROM invoicing_files WHERE mailbox_nihii IS NOT NULL "
            "AND state IN ('posting', 'sent') AND (status IS NULL OR status NOT IN ('DONE', 'NOK'))")
        return [(row["mailbox_nihii"], row["mailbox_quality"]) for row in rows]

    def by_work_name(self, work_name: str) -> dict | None:
        rows = list(self.journal.db.query("SELECT * FROM invoicing_files WHERE work_name = ?", [work_name]))
        return rows[0] if rows else None

    def reason_texts(self, name: str) -> dict[str, str]:
        """The stored message ids of the reasons given to files called ``name``, by their English text (so
        that a reason file in ``error/`` is shown translated when the journal knows it)."""
        rows = self.journal.db.query("SELECT reason, reason_text FROM invoicing_files WHERE name = ? AND "
                                     "reason_text IS NOT NULL ORDER BY id", [name])
        return {row["reason"].strip(): row["reason_text"] for row in rows if row["reason"]}

    def by_zone_204(self, zone_204: str) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_files WHERE zone_204 = ? ORDER BY id",
                                          [zone_204]))

    def record_file(self, *, name: str, size: int, sha256: str, zone_204: str | None, destination: str | None,
                    is_test: bool | None, state: str, work_name: str | None, status: str | None = None,
                    reason: str | Reason | None = None, sender: str | None = None,
                    mailbox: tuple[str, str] | None = None, acting: str | None = None) -> int:
        """Record a claimed file (before anything is sent); links it to a refused one if resent.

        ``sender`` is the party its record 10 names (``NIHII=...``), ``mailbox`` the (NIHII, quality) it is
        sent for and ``acting`` how the chosen certificate may act for it (see ``identity.py``).
        """
        now = self.now()
        stored = _with_reason_text({"reason": reason})
        with self.journal.write() as conn:
            link = conn.execute("SELECT refused_id FROM invoicing_resends WHERE sha256 = ?", [sha256]).fetchone()
            cursor = conn.execute(
                "INSERT INTO invoicing_files (name, size, sha256, zone_204, destination, is_test, state, status, "
                "reason, reason_text, work_name, resend_of, created_at, updated_at, sender, mailbox_nihii, "
                "mailbox_quality, acting) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [name, size, sha256, zone_204, destination, None if is_test is None else int(is_test), state, status,
                 stored["reason"], stored["reason_text"], work_name, link[0] if link else None, now, now, sender,
                 mailbox[0] if mailbox else None, mailbox[1] if mailbox else None, acting])
            if link:
                conn.execute("DELETE FROM invoicing_resends WHERE sha256 = ?", [sha256])
            return int(cursor.lastrowid)

    def update_file(self, file_id: int, **values: object) -> None:
        values = {**_with_reason_text(values), "updated_at": self.now()}
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
                changes = {**_with_reason_text(file_changes), "updated_at": now}
                columns = ", ".join(f"{key} = ?" for key in changes)
                conn.execute(f"UPDATE invoicing_files SET {columns} WHERE id = ?", [*changes.values(), file_id])
            return bool(cursor.rowcount)

    def has_feedback(self, message_key: str) -> bool:
        return bool(list(self.journal.db.query("SELECT 1 FROM invoicing_feedback WHERE message_key = ?",
                                               [message_key])))

    def record_feedback(self, *, message_key: str, file_id: int | None, zone_204: str | None, code: str,
                        nip_reference: str | None, output_reference: str | None, received_name: str,
                        probative_name: str | None, status: str, reason: str | Reason | None = None,
                        error_counts: Mapping[str, int] | None = None, record_count: int | None = None,
                        settled: SettledAmounts | None = None) -> None:
        """Record a feedback message (once) and move its file's status forward, never back.

        ``reason`` (why a refusing message refused the file) is kept with the NOK status it brings.
        ``error_counts`` and ``record_count`` describe the message (None: it could not be read);
        ``settled`` (a 920900) sets the file's amounts and payment reference in the same transaction.
        """
        now = self.now()
        counts = None if error_counts is None else json.dumps(dict(error_counts), sort_keys=True,
                                                              separators=(",", ":"))
        with self.journal.write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO invoicing_feedback (message_key, file_id, zone_204, code, nip_reference, "
                "output_reference, received_name, probative_name, at, error_counts, record_count) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [message_key, file_id, zone_204, code, nip_reference, output_reference, received_name,
                 probative_name, now, counts, record_count])
            if not cursor.rowcount or file_id is None:
                return
            if settled is not None:
                conn.execute("UPDATE invoicing_files SET amount_requested = ?, amount_accepted = ?, "
                             "amount_rejected = ?, payment_reference = ? WHERE id = ?",
                             [settled.requested, settled.accepted, settled.rejected, settled.payment_reference,
                              file_id])
            row = conn.execute("SELECT status FROM invoicing_files WHERE id = ?", [file_id]).fetchone()
            current = row[0] if row else None
            if _RANK.get(status, 0) > _RANK.get(current, 0) or current is None:
                conn.execute("UPDATE invoicing_files SET status = ?, updated_at = ? WHERE id = ?",
                             [status, now, file_id])
                if reason and status == FileStatus.NOK.value:
                    stored = _with_reason_text({"reason": reason})
                    conn.execute("UPDATE invoicing_files SET reason = ?, reason_text = ? WHERE id = ?",
                                 [stored["reason"], stored["reason_text"], file_id])
            conn.execute("UPDATE invoicing_files SET last_feedback = ?, last_feedback_at = ? WHERE id = ?",
                         [code, now, file_id])

    def feedback_for(self, file_id: int) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_feedback WHERE file_id = ? ORDER BY id",
                                          [file_id]))

    def tacks_for(self, file_id: int) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_tacks WHERE file_id = ? ORDER BY id", [file_id]))

    def resent_as(self, file_id: int) -> list[dict]:
        return list(self.journal.db.query("SELECT * FROM invoicing_files WHERE resend_of = ? ORDER BY id", [file_id]))

    # -- what the web UI reads (newest first) --

    def _period_start(self, months: int) -> str:
        """The first day of the month ``months - 1`` before the current one (UTC)."""
        if months < 1:
            raise ValueError("months is at least 1")
        today = self._clock().astimezone(timezone.utc)
        year, month = _shift_month(today.year, today.month, -(months - 1))
        return f"{year:04d}-{month:02d}-01"

    @staticmethod
    def _file_filter(status: str | None, month: str | None, text: str | None) -> tuple[str, list[object]]:
        conditions: list[str] = []
        args: list[object] = []
        if status:
            condition, values = _status_condition(status)
            conditions.append(condition)
            args += values
        if month:
            start, end = _month_range(month)
            conditions.append("created_at >= ? AND created_at < ?")
            args += [start, end]
        if text and text.strip():
            pattern = _like_pattern(text.strip())
            conditions.append("(" + " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for column in _TEXT_COLUMNS) + ")")
            args += [pattern] * len(_TEXT_COLUMNS)
        return ("WHERE " + " AND ".join(conditions)) if conditions else "", args

    def list_files(self, *, status: str | None = None, month: str | None = None, text: str | None = None,
                   limit: int = 50, offset: int = 0) -> list[dict]:
        """One page of files, newest first: every column plus ``shown_status`` (see ``SHOWN_STATUSES``).

        ``status``: a shown status; ``month``: ``YYYY-MM`` of ``created_at``; ``text``: found (case
        ignored for ASCII, ``%`` and ``_`` taken literally) in the name, MyCareNet reference, zone 204,
        destination or reason.  Raises ValueError on an unknown status, a bad month or a negative
        limit or offset.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset are not negative")
        where, args = self._file_filter(status, month, text)
        return list(self.journal.db.query(
            f"SELECT *, {_SHOWN_STATUS_SQL} AS shown_status FROM invoicing_files {where} "
            "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", [*args, limit, offset]))

    def count_files(self, *, status: str | None = None, month: str | None = None, text: str | None = None) -> int:
        """How many files ``list_files`` finds with the same filters (for the pager)."""
        where, args = self._file_filter(status, month, text)
        rows = list(self.journal.db.query(f"SELECT COUNT(*) AS n FROM invoicing_files {where}", args))
        return int(rows[0]["n"])

    def file_months(self) -> list[str]:
        """Every ``YYYY-MM`` with at least one file, newest first."""
        return [row["month"] for row in self.journal.db.query(
            "SELECT DISTINCT substr(created_at, 1, 7) AS month FROM invoicing_files ORDER BY month DESC")]

    def files_per_status_per_month(self, *, months: int = 12) -> list[dict]:
        """``{month, status, n}`` over the current month and the ``months - 1`` before it; newest month
        first, then status; ``status`` as the UI shows it; combinations without files are left out."""
        return list(self.journal.db.query(
            f"SELECT substr(created_at, 1, 7) AS month, {_SHOWN_STATUS_SQL} AS status, COUNT(*) AS n "
            "FROM invoicing_files WHERE created_at >= ? GROUP BY month, status ORDER BY month DESC, status",
            [self._period_start(months)]))

    def feedback_delays(self, *, months: int = 12) -> list[dict]:
        """``{code, file_id, seconds}``: for each file created in the period and each feedback code it
        received, the seconds from its sending (its first success TAck, else ``created_at``) to the
        first message of that code; newest file first, then code."""
        return list(self.journal.db.query(
            "WITH sent AS (SELECT f.id, f.created_at, COALESCE((SELECT MIN(t.at) FROM invoicing_tacks AS t "
            "WHERE t.file_id = f.id AND t.success = 1), f.created_at) AS sent_at "
            "FROM invoicing_files AS f WHERE f.created_at >= ?) "
            "SELECT b.code AS code, b.file_id AS file_id, "
            "round((julianday(MIN(b.at)) - julianday(s.sent_at)) * 86400.0, 3) AS seconds "
            "FROM sent AS s JOIN invoicing_feedback AS b ON b.file_id = s.id "
            "GROUP BY b.file_id, b.code ORDER BY s.created_at DESC, b.file_id DESC, b.code",
            [self._period_start(months)]))

    def error_categories(self, *, months: int = 12, codes: tuple[str, ...] | None = None) -> dict[str, int]:
        """The error counts of the feedback received in the period, summed: ``B``, ``F``, ``R``, ``E``,
        ``S`` (error-slot letters) and ``zone`` are always there.  A settlement repeats the errors of
        the detailed check: ``codes`` limits the sum to some messages (``("920098", "920099")``)."""
        where, args = "b.at >= ?", [self._period_start(months)]
        if codes:
            where += f" AND b.code IN ({', '.join('?' for _ in codes)})"
            args += list(codes)
        totals = {key: 0 for key in ("B", "F", "R", "E", "S", "zone")}
        for row in self.journal.db.query(
                "SELECT j.key AS category, SUM(j.value) AS n FROM invoicing_feedback AS b, "
                f"json_each(b.error_counts) AS j WHERE {where} AND b.error_counts IS NOT NULL "
                "AND json_valid(b.error_counts) GROUP BY j.key", args):
            totals[row["category"]] = int(row["n"] or 0)
        return totals

    def feedback(self, feedback_id: int) -> dict | None:
        """One feedback message's row; ``error_counts`` decoded (a dict, None when it was not read)."""
        rows = list(self.journal.db.query("SELECT * FROM invoicing_feedback WHERE id = ?", [feedback_id]))
        if not rows:
            return None
        row = rows[0]
        row["error_counts"] = _counts(row["error_counts"])
        return row

    def tack(self, tack_id: int) -> dict | None:
        """One TAck's row (``success`` is 0 or 1, as stored)."""
        rows = list(self.journal.db.query("SELECT * FROM invoicing_tacks WHERE id = ?", [tack_id]))
        return rows[0] if rows else None
