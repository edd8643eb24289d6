"""The invoicing tables of the journal store: sent files, feedback messages, TAcks.

On the journal's database (``Journal.db``: the journal.sqlite file, or the PostgreSQL database of
``[database] url`` shared by every node), whose migration 3 creates the tables
(``database/schema.py``).  One SQL text per query for both engines; the two that need SQLite's
date and JSON functions have their PostgreSQL form in ``_ENGINE_SQL``.  Exactly once holds on both
engines: a TAck or a feedback message is recorded once (``tack_key`` and ``message_key`` are
UNIQUE, ``ON CONFLICT DO NOTHING``) with what it changes on its file in the same transaction, and
every writer takes the ``invoicing`` lock, so a read-then-write (a status that never goes back, a
resend's link) is serialised across nodes as SQLite serialises it.  A file's ``state`` is the
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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping

from unified_messaging.database import POSTGRESQL, SQLITE, Transaction
from unified_messaging.efact.feedback import FileStatus
from unified_messaging.journal.store import Journal
from unified_messaging.texts import Reason

log = logging.getLogger(__name__)

WRITE_LOCK = "invoicing"


class AlreadyRecorded(Exception):
    """A file of the working folder has a row already: a node that led meanwhile recorded it."""

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


def _status_condition(status: str) -> tuple[str, dict[str, object]]:
    shown = status.upper()
    if shown == "ERROR":
        return "state = 'error'", {}
    if shown == "WAITING":
        return "status IS NULL AND state IN ('claimed', 'posting')", {}
    if shown in SHOWN_STATUSES:
        return "status = :status AND state != 'error'", {"status": shown}
    raise ValueError(f"status {status!r} is not one of {', '.join(SHOWN_STATUSES)}")


def _counts(raw: str | None) -> dict[str, int] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_ENGINE_SQL = {
    SQLITE: {
        "delay": "round((julianday(MIN(b.at)) - julianday(s.sent_at)) * 86400.0, 3)",
        "categories": "json_each(b.error_counts) AS j WHERE json_valid(b.error_counts) AND",
        "value": "j.value",
    },
    POSTGRESQL: {
        "delay": "CAST(round(CAST(EXTRACT(EPOCH FROM CAST(MIN(b.at) AS timestamptz) - CAST(s.sent_at AS timestamptz)) "
                 "AS numeric), 3) AS DOUBLE PRECISION)",
        # error_counts is always written by json.dumps of a dict of integers (NULL when not read)
        "categories": "jsonb_each_text(CAST(b.error_counts AS jsonb)) AS j WHERE",
        "value": "CAST(j.value AS BIGINT)",
    },
}
"""The per-engine fragments: seconds between two ISO timestamps, and the rows of a JSON object."""
_ENGINE_LIKE = {SQLITE: "LIKE", POSTGRESQL: "ILIKE"}
"""LIKE ignoring ASCII case, as SQLite's LIKE does."""


def _named(values: list[object], prefix: str = "v") -> tuple[str, dict[str, object]]:
    """``:v0, :v1...`` for an IN list, and their parameters."""
    params = {f"{prefix}{n}": value for n, value in enumerate(values)}
    return ", ".join(f":{name}" for name in params), params


class InvoicingStore:
    """Reads and writes the invoicing tables; one instance may serve several threads."""

    def __init__(self, journal: Journal, *, clock: Callable[[], datetime] | None = None) -> None:
        self.journal = journal
        self.db = journal.db
        self._clock = clock or journal.clock
        self._sql = _ENGINE_SQL[self.db.engine]

    def now(self) -> str:
        return _iso(self._clock())

    def _write(self) -> AbstractContextManager[Transaction]:
        return self.db.transaction(lock=WRITE_LOCK)

    def _file_query(self, where: str, params: dict[str, object], order: str = "") -> list[dict]:
        return self.db.query(f"SELECT *, {_SHOWN_STATUS_SQL} AS shown_status FROM invoicing_files {where} {order}",
                             params)

    # -- files --

    def file(self, file_id: int) -> dict | None:
        """One file: every column plus ``shown_status`` (see ``SHOWN_STATUSES``)."""
        rows = self._file_query("WHERE id = :id", {"id": file_id})
        return rows[0] if rows else None

    def files(self, *, states: tuple[str, ...] | None = None, limit: int = 1000) -> list[dict]:
        where, params = "", {}
        if states:
            names, params = _named(list(states))
            where = f"WHERE state IN ({names})"
        return self._file_query(where, {**params, "limit": limit}, "ORDER BY id DESC LIMIT :limit")

    def mailboxes_in_flight(self) -> list[tuple[str, str]]:
        """The (NIHII, quality) mailboxes of files whose feedback may still come (posted, not final)."""
        rows = self.db.query(
            "SELECT DISTINCT mailbox_nihii, mailbox_quality FROM invoicing_files WHERE mailbox_nihii IS NOT NULL "
            "AND state IN ('posting', 'sent') AND (status IS NULL OR status NOT IN ('DONE', 'NOK'))")
        return [(row["mailbox_nihii"], row["mailbox_quality"]) for row in rows]

    def by_work_name(self, work_name: str) -> dict | None:
        return self.db.query_one("SELECT * FROM invoicing_files WHERE work_name = :work_name", {"work_name": work_name})

    def reason_texts(self, name: str) -> dict[str, str]:
        """The stored message ids of the reasons given to files called ``name``, by their English text (so
        that a reason file in ``error/`` is shown translated when the journal knows it)."""
        rows = self.db.query("SELECT reason, reason_text FROM invoicing_files WHERE name = :name AND "
                             "reason_text IS NOT NULL ORDER BY id", {"name": name})
        return {row["reason"].strip(): row["reason_text"] for row in rows if row["reason"]}

    def by_zone_204(self, zone_204: str) -> list[dict]:
        return self.db.query("SELECT * FROM invoicing_files WHERE zone_204 = :zone ORDER BY id", {"zone": zone_204})

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
        with self._write() as tx:
            if work_name is not None and tx.query("SELECT 1 AS found FROM invoicing_files WHERE work_name = :work_name",
                                                  {"work_name": work_name}):
                raise AlreadyRecorded(f"the working file {work_name} is recorded already (by another node)")
            link = tx.query("SELECT refused_id FROM invoicing_resends WHERE sha256 = :sha256", {"sha256": sha256})
            file_id = tx.insert(
                "INSERT INTO invoicing_files (name, size, sha256, zone_204, destination, is_test, state, status, "
                "reason, reason_text, work_name, resend_of, created_at, updated_at, sender, mailbox_nihii, "
                "mailbox_quality, acting) VALUES (:name, :size, :sha256, :zone_204, :destination, :is_test, :state, "
                ":status, :reason, :reason_text, :work_name, :resend_of, :now, :now, :sender, :mailbox_nihii, "
                ":mailbox_quality, :acting)",
                {"name": name, "size": size, "sha256": sha256, "zone_204": zone_204, "destination": destination,
                 "is_test": None if is_test is None else int(is_test), "state": state, "status": status,
                 "reason": stored["reason"], "reason_text": stored["reason_text"], "work_name": work_name,
                 "resend_of": link[0]["refused_id"] if link else None, "now": now, "sender": sender,
                 "mailbox_nihii": mailbox[0] if mailbox else None, "mailbox_quality": mailbox[1] if mailbox else None,
                 "acting": acting})
            if link:
                tx.execute("DELETE FROM invoicing_resends WHERE sha256 = :sha256", {"sha256": sha256})
            return file_id

    @staticmethod
    def _set_file(tx: Transaction, file_id: int, values: Mapping[str, object]) -> None:
        """``UPDATE`` the file's columns named in ``values`` (names from this module, never from outside)."""
        columns = ", ".join(f"{key} = :{key}" for key in values)
        tx.execute(f"UPDATE invoicing_files SET {columns} WHERE id = :file_id", {**values, "file_id": file_id})

    def update_file(self, file_id: int, **values: object) -> None:
        with self._write() as tx:
            self._set_file(tx, file_id, {**_with_reason_text(values), "updated_at": self.now()})

    def start_posting(self, file_id: int) -> bool:
        """Mark a ``claimed`` file ``posting``, committed before the post goes out: after a crash the file is
        known as maybe-posted.  False when the file is no longer ``claimed`` (another node began its post or
        settled it since it was read): then it must not be posted."""
        with self._write() as tx:
            return tx.execute("UPDATE invoicing_files SET state = 'posting', posting_since = :now, "
                              "attempts = attempts + 1, updated_at = :now WHERE id = :id AND state = 'claimed'",
                              {"now": self.now(), "id": file_id}) == 1

    def link_resend(self, sha256: str, refused_id: int) -> None:
        with self._write() as tx:
            tx.execute("INSERT INTO invoicing_resends (sha256, refused_id, at) VALUES (:sha256, :refused_id, :at) "
                       "ON CONFLICT (sha256) DO UPDATE SET refused_id = excluded.refused_id, at = excluded.at",
                       {"sha256": sha256, "refused_id": refused_id, "at": self.now()})

    # -- TAcks and feedback --

    def has_tack(self, tack_key: str) -> bool:
        return bool(self.db.query("SELECT 1 AS found FROM invoicing_tacks WHERE tack_key = :key", {"key": tack_key}))

    def record_tack(self, *, tack_key: str, file_id: int | None, input_reference: str | None,
                    reference: str | None, success: bool, message: str | None, probative_name: str | None,
                    file_changes: dict[str, object] | None = None) -> bool:
        """Record a TAck (once) and, in the same transaction, what it changes on its file."""
        now = self.now()
        with self._write() as tx:
            added = tx.execute(
                "INSERT INTO invoicing_tacks (tack_key, file_id, input_reference, reference, success, message, "
                "probative_name, at) VALUES (:tack_key, :file_id, :input_reference, :reference, :success, :message, "
                ":probative_name, :at) ON CONFLICT (tack_key) DO NOTHING",
                {"tack_key": tack_key, "file_id": file_id, "input_reference": input_reference,
                 "reference": reference, "success": int(success), "message": message,
                 "probative_name": probative_name, "at": now})
            if added and file_id is not None and file_changes:
                self._set_file(tx, file_id, {**_with_reason_text(file_changes), "updated_at": now})
            return bool(added)

    def has_feedback(self, message_key: str) -> bool:
        return bool(self.db.query("SELECT 1 AS found FROM invoicing_feedback WHERE message_key = :key",
                                  {"key": message_key}))

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
        with self._write() as tx:
            added = tx.execute(
                "INSERT INTO invoicing_feedback (message_key, file_id, zone_204, code, nip_reference, "
                "output_reference, received_name, probative_name, at, error_counts, record_count) "
                "VALUES (:message_key, :file_id, :zone_204, :code, :nip_reference, :output_reference, "
                ":received_name, :probative_name, :at, :error_counts, :record_count) "
                "ON CONFLICT (message_key) DO NOTHING",
                {"message_key": message_key, "file_id": file_id, "zone_204": zone_204, "code": code,
                 "nip_reference": nip_reference, "output_reference": output_reference,
                 "received_name": received_name, "probative_name": probative_name, "at": now,
                 "error_counts": counts, "record_count": record_count})
            if not added or file_id is None:
                return
            if settled is not None:
                self._set_file(tx, file_id, {"amount_requested": settled.requested,
                                             "amount_accepted": settled.accepted,
                                             "amount_rejected": settled.rejected,
                                             "payment_reference": settled.payment_reference})
            row = tx.query("SELECT status FROM invoicing_files WHERE id = :id", {"id": file_id})
            current = row[0]["status"] if row else None
            if _RANK.get(status, 0) > _RANK.get(current, 0) or current is None:
                self._set_file(tx, file_id, {"status": status, "updated_at": now})
                if reason and status == FileStatus.NOK.value:
                    self._set_file(tx, file_id, _with_reason_text({"reason": reason}))
            self._set_file(tx, file_id, {"last_feedback": code, "last_feedback_at": now})

    def feedback_for(self, file_id: int) -> list[dict]:
        return self.db.query("SELECT * FROM invoicing_feedback WHERE file_id = :id ORDER BY id", {"id": file_id})

    def tacks_for(self, file_id: int) -> list[dict]:
        return self.db.query("SELECT * FROM invoicing_tacks WHERE file_id = :id ORDER BY id", {"id": file_id})

    def resent_as(self, file_id: int) -> list[dict]:
        return self.db.query("SELECT * FROM invoicing_files WHERE resend_of = :id ORDER BY id", {"id": file_id})

    # -- what the web UI reads (newest first) --

    def _period_start(self, months: int) -> str:
        """The first day of the month ``months - 1`` before the current one (UTC)."""
        if months < 1:
            raise ValueError("months is at least 1")
        today = self._clock().astimezone(timezone.utc)
        year, month = _shift_month(today.year, today.month, -(months - 1))
        return f"{year:04d}-{month:02d}-01"

    def _file_filter(self, status: str | None, month: str | None, text: str | None) -> tuple[str, dict[str, object]]:
        conditions: list[str] = []
        params: dict[str, object] = {}
        if status:
            condition, values = _status_condition(status)
            conditions.append(condition)
            params.update(values)
        if month:
            params["start"], params["end"] = _month_range(month)
            conditions.append("created_at >= :start AND created_at < :end")
        if text and text.strip():
            params["pattern"] = _like_pattern(text.strip())
            like = _ENGINE_LIKE[self.db.engine]
            conditions.append("(" + " OR ".join(f"{column} {like} :pattern ESCAPE '\\'" for column in _TEXT_COLUMNS)
                              + ")")
        return ("WHERE " + " AND ".join(conditions)) if conditions else "", params

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
        where, params = self._file_filter(status, month, text)
        return self._file_query(where, {**params, "limit": limit, "offset": offset},
                                "ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset")

    def count_files(self, *, status: str | None = None, month: str | None = None, text: str | None = None) -> int:
        """How many files ``list_files`` finds with the same filters (for the pager)."""
        where, params = self._file_filter(status, month, text)
        return int(self.db.query(f"SELECT COUNT(*) AS n FROM invoicing_files {where}", params)[0]["n"])

    def file_months(self) -> list[str]:
        """Every ``YYYY-MM`` with at least one file, newest first."""
        return [row["month"] for row in self.db.query(
            "SELECT DISTINCT substr(created_at, 1, 7) AS month FROM invoicing_files ORDER BY month DESC")]

    def files_per_status_per_month(self, *, months: int = 12) -> list[dict]:
        """``{month, status, n}`` over the current month and the ``months - 1`` before it; newest month
        first, then status; ``status`` as the UI shows it; combinations without files are left out."""
        return self.db.query(  # by position: PostgreSQL would group by the column status, not the alias
            f"SELECT substr(created_at, 1, 7) AS month, {_SHOWN_STATUS_SQL} AS status, COUNT(*) AS n "
            "FROM invoicing_files WHERE created_at >= :start GROUP BY 1, 2 ORDER BY 1 DESC, 2",
            {"start": self._period_start(months)})

    def feedback_delays(self, *, months: int = 12) -> list[dict]:
        """``{code, file_id, seconds}``: for each file created in the period and each feedback code it
        received, the seconds from its sending (its first success TAck, else ``created_at``) to the
        first message of that code; newest file first, then code."""
        return self.db.query(
            "WITH sent AS (SELECT f.id, f.created_at, COALESCE((SELECT MIN(t.at) FROM invoicing_tacks AS t "
            "WHERE t.file_id = f.id AND t.success = 1), f.created_at) AS sent_at "
            "FROM invoicing_files AS f WHERE f.created_at >= :start) "
            f"SELECT b.code AS code, b.file_id AS file_id, {self._sql['delay']} AS seconds "
            "FROM sent AS s JOIN invoicing_feedback AS b ON b.file_id = s.id "
            "GROUP BY b.file_id, b.code, s.created_at, s.sent_at ORDER BY s.created_at DESC, b.file_id DESC, b.code",
            {"start": self._period_start(months)})

    def error_categories(self, *, months: int = 12, codes: tuple[str, ...] | None = None) -> dict[str, int]:
        """The error counts of the feedback received in the period, summed: ``B``, ``F``, ``R``, ``E``,
        ``S`` (error-slot letters) and ``zone`` are always there.  A settlement repeats the errors of
        the detailed check: ``codes`` limits the sum to some messages (``("920098", "920099")``)."""
        where, params = "b.at >= :start", {"start": self._period_start(months)}
        if codes:
            names, values = _named(list(codes))
            where += f" AND b.code IN ({names})"
            params.update(values)
        totals = {key: 0 for key in ("B", "F", "R", "E", "S", "zone")}
        for row in self.db.query(
                f"SELECT j.key AS category, SUM({self._sql['value']}) AS n FROM invoicing_feedback AS b, "
                f"{self._sql['categories']} {where} AND b.error_counts IS NOT NULL GROUP BY j.key", params):
            totals[row["category"]] = int(row["n"] or 0)
        return totals

    def feedback(self, feedback_id: int) -> dict | None:
        """One feedback message's row; ``error_counts`` decoded (a dict, None when it was not read)."""
        row = self.db.query_one("SELECT * FROM invoicing_feedback WHERE id = :id", {"id": feedback_id})
        if row is not None:
            row["error_counts"] = _counts(row["error_counts"])
        return row

    def tack(self, tack_id: int) -> dict | None:
        """One TAck's row (``success`` is 0 or 1, as stored)."""
        return self.db.query_one("SELECT * FROM invoicing_tacks WHERE id = :id", {"id": tack_id})
