"""The journal: one SQLite file, written by the core services, read by the UI and the CLI.

Kept behind this one small class with plain SQL so that moving to PostgreSQL later is a swap, not
a rewrite.  SQLite rules learnt the hard way (see ENGINEERING.md): WAL mode, one connection per
thread, and every writing transaction opened with ``BEGIN IMMEDIATE``.

The read queries for the UI stay fast on a year of traffic: a month is a range on the ``at``
index (never ``substr(at, ...)`` in a WHERE), pages are ``ORDER BY id DESC`` walks of an index
that ends with the row id, and the list of months is one index seek per month.
"""
from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import sqlite_utils

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.journal import search
from unified_messaging.journal.sqlite import SqliteFile

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Columns added after the first release: a journal created before them gets them at start-up.
_ADDED_COLUMNS = (("consultations", "client", "TEXT"), ("consultations", "upstream_service", "TEXT"))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consultations (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    interface TEXT NOT NULL,
    care_provider TEXT,
    quality TEXT,
    patient TEXT,
    period_start TEXT,
    period_end TEXT,
    outcome TEXT NOT NULL,
    code TEXT,
    audit_reference TEXT,
    reference TEXT,
    duration_ms REAL NOT NULL,
    client TEXT,
    upstream_service TEXT  -- genins | memberdata: which MyCareNet service answered (NULL: none asked)
);
CREATE INDEX IF NOT EXISTS consultations_at ON consultations(at);
DROP INDEX IF EXISTS consultations_outcome;
CREATE INDEX IF NOT EXISTS consultations_outcome_at ON consultations(outcome, at, code);
CREATE INDEX IF NOT EXISTS consultations_outcome_id ON consultations(outcome, id);
CREATE TABLE IF NOT EXISTS batch_files (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,  -- done | rejected | stopped
    lines INTEGER,
    ok INTEGER,
    errors INTEGER,
    resumed_at INTEGER,
    output TEXT,  -- the output file's name, without its folder
    reason TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_files_job ON batch_files(job, id);
CREATE INDEX IF NOT EXISTS batch_files_status ON batch_files(status, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

BATCH_STATUSES = ("done", "rejected", "stopped")
UPSTREAM_SERVICES = ("genins", "memberdata")  # consultations.upstream_service when MyCareNet was asked
NO_UPSTREAM = "none"  # the ``service`` filter for consultations never sent (upstream_service NULL)
OK_OUTCOME = "OK"  # InsurabilityService also writes ERROR, FAULT, REJECTED and UNAVAILABLE
_TEXT_COLUMNS = ("patient", "audit_reference", "reference", "care_provider", "code")
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_MASKED_NUMBER = re.compile(r"([0-9]{6})\*{5}")


@dataclass(frozen=True)
class Consultation:
    """One insurability consultation as the journal keeps it: the patient is already masked."""

    at: str
    interface: str
    care_provider: str | None
    quality: str | None
    patient: str | None
    period_start: str | None
    period_end: str | None
    outcome: str
    code: str | None
    audit_reference: str | None
    reference: str | None
    duration_ms: float
    client: str | None = None  # the caller's address (SOAP): the real client's behind a trusted proxy
    upstream_service: str | None = None  # "genins" | "memberdata": the service asked (None: none was)


@dataclass(frozen=True)
class BatchFileRun:
    """One input file of a batch job, as one run left it; the texts are already masked.

    ``status`` is ``done``, ``rejected`` or ``stopped``; the counts are None for a rejected file
    (its lines were never read); ``output`` is a file name (no folder), set once the file is done;
    the times are ISO 8601 in UTC.
    """

    job: str
    input: str
    status: str
    started_at: str
    finished_at: str
    lines: int | None = None
    ok: int | None = None
    errors: int | None = None
    resumed_at: int | None = None
    output: str | None = None
    reason: str | None = None


_CONSULTATION_COLUMNS = tuple(f.name for f in fields(Consultation))
_INSERT_CONSULTATION = (f"INSERT INTO consultations ({', '.join(_CONSULTATION_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(_CONSULTATION_COLUMNS))})")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def month_range(month: str) -> tuple[str, str]:
    """``"2026-11"`` -> ``("2026-11", "2026-12")``: the bounds of ``at >= start AND at < end``."""
    found = _MONTH.fullmatch(month)
    if not found:
        raise ValueError(f"month = {month!r} is not a month: write it as YYYY-MM (for example 2026-11).")
    year, number = int(found.group(1)), int(found.group(2))
    following = f"{year + 1:04d}-01" if number == 12 else f"{year:04d}-{number + 1:02d}"
    return month, following


def _number_glob(text: str) -> str:
    """A GLOB finding ``text`` anywhere, each masked number (``812345*****``) standing for any number it
    may hide: the UI searches with what it shows, and a care provider's NIHII is kept in full."""
    parts, last = [], 0
    for match in _MASKED_NUMBER.finditer(text):
        parts.append(_glob_literal(text[last:match.start()]) + match.group(1) + "[0-9]" * 5)
        last = match.end()
    return "*" + "".join(parts) + _glob_literal(text[last:]) + "*"


def _glob_literal(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _like_pattern(text: str) -> str:
    """``text`` anywhere, with LIKE's wildcards (and the escape character) taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fill_upstream_service(db: sqlite3.Connection) -> None:
    """Once per journal: the consultations journaled before ``upstream_service`` existed, and sent
    (any outcome but REJECTED), were answered by GenericInsurability, the only service there was.
    Since the column exists every consultation sent is journaled with its service."""
    if db.execute("SELECT 1 FROM meta WHERE key = 'upstream_service_filled'").fetchone() is not None:
        return
    filled = db.execute("UPDATE consultations SET upstream_service = 'genins' "
                        "WHERE upstream_service IS NULL AND outcome <> 'REJECTED'").rowcount
    db.execute("INSERT INTO meta(key, value) VALUES ('upstream_service_filled', ?)",
               [utc_now().isoformat(timespec="seconds")])
    if filled:
        log.info("journal: %d consultation(s) from before the upstream_service column marked genins", filled)


def _page(limit: int, offset: int) -> list[int]:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit ({limit}) and offset ({offset}) cannot be negative.")
    return [limit, offset]


class Journal(SqliteFile):
    """The journal file, shared by the threads of the gateway (see ``SqliteFile``)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(path)
        self.clock = clock
        conn = self._connection()
        conn.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        with self.write() as db:
            for table, column, kind in _ADDED_COLUMNS:
                if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    log.info("journal: column %s.%s added", table, column)
            # after the added columns: a journal older than upstream_service gets it first
            db.execute("CREATE INDEX IF NOT EXISTS consultations_service_id ON consultations(upstream_service, id)")
            _fill_upstream_service(db)
            search.create_sqlite_index(db, _TEXT_COLUMNS)
            db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )

    @property
    def db(self) -> sqlite_utils.Database:
        """A sqlite-utils view of this thread's connection."""
        database = getattr(self._local, "db", None)
        if database is None:
            database = sqlite_utils.Database(self._connection())
            self._local.db = database
        return database

    def record_consultation(self, consultation: Consultation) -> int:
        """One row per call, committed before this returns (the caller answers after it).

        A plain prepared INSERT (sqlite3 caches the statement per connection): sqlite-utils' insert
        reads the table's columns and builds the SQL again on every call. The commit does not wait
        for the disk: the journal is in WAL mode with ``synchronous=NORMAL`` (``SqliteFile``), so a
        committed row survives a crash of the process, not a power loss (see README).
        """
        values = [getattr(consultation, name) for name in _CONSULTATION_COLUMNS]
        with self.write() as conn:
            return int(conn.execute(_INSERT_CONSULTATION, values).lastrowid)

    def consultations(self, *, limit: int = 100, outcome: str | None = None) -> list[dict]:
        """The latest consultations, newest first."""
        where, args = ("WHERE outcome = ?", [outcome]) if outcome else ("", [])
        return list(
            self.db.query(f"SELECT * FROM consultations {where} ORDER BY id DESC LIMIT ?", [*args, limit])
        )

    def count(self, table: str) -> int:
        return self.db[table].count

    # ------------------------------------------------------------------ consultations, for the UI
    def _consultation_filters(self, outcome: str | None, month: str | None, text: str | None,
                              interface: str | None, service: str | None = None) -> tuple[str, list[str]]:
        clauses: list[str] = []
        args: list[str] = []
        if outcome:
            clauses.append("outcome = ?")
            args.append(outcome)
        if interface:
            clauses.append("interface = ?")
            args.append(interface)
        if service == NO_UPSTREAM:
            clauses.append("upstream_service IS NULL")
        elif service:
            clauses.append("upstream_service = ?")
            args.append(service)
        if month:
            clauses.append("at >= ? AND at < ?")
            args.extend(month_range(month))
        text = (text or "").strip()
        if text:
            first = len(args)
            matches = [f"{column} LIKE ? ESCAPE '\\'" for column in _TEXT_COLUMNS]
            args.extend([_like_pattern(text)] * len(_TEXT_COLUMNS))
            if _MASKED_NUMBER.search(text):
                matches.extend(f"{column} GLOB ?" for column in _TEXT_COLUMNS if column != "patient")
                args.extend([_number_glob(text)] * (len(_TEXT_COLUMNS) - 1))
            masked = mask_ssins_in_text(text)
            if masked != text:  # the journal keeps patients masked: a full SSIN finds its masked form
                matches.append("patient LIKE ? ESCAPE '\\'")
                args.append(_like_pattern(masked))
            clauses.append("(" + " OR ".join(matches) + ")")
            # the rows the text index finds, the conditions above still deciding; a month is a range of the at index
            narrowed = None if month else search.narrowing(self._connection(), text, [masked] if masked != text else [],
                                                           clauses[-1], args[first:])
            if narrowed:
                clauses.append(narrowed[0])
                args.extend(narrowed[1])
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

    def find_consultations(self, *, outcome: str | None = None, month: str | None = None, text: str | None = None,
                           interface: str | None = None, service: str | None = None, limit: int = 50,
                           offset: int = 0) -> list[dict]:
        """One page of consultations, newest first.

        ``month`` is ``YYYY-MM`` (UTC, as ``at`` is written); ``text`` is found, ignoring ASCII
        case, in the (masked) patient, the audit reference, the reference, the care provider or
        the code; ``service`` is the upstream service that answered (``genins``, ``memberdata``)
        or ``none`` for consultations never sent. Empty filters are no filters.
        """
        where, args = self._consultation_filters(outcome, month, text, interface, service)
        return list(self.db.query(f"SELECT * FROM consultations {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                                  [*args, *_page(limit, offset)]))

    def count_consultations(self, *, outcome: str | None = None, month: str | None = None, text: str | None = None,
                            interface: str | None = None, service: str | None = None) -> int:
        """How many consultations ``find_consultations`` pages through with the same filters."""
        where, args = self._consultation_filters(outcome, month, text, interface, service)
        return int(self._connection().execute(f"SELECT count(*) FROM consultations {where}", args).fetchone()[0])

    def consultation(self, consultation_id: int) -> dict | None:
        """One consultation by its id, or None."""
        rows = list(self.db.query("SELECT * FROM consultations WHERE id = ?", [consultation_id]))
        return rows[0] if rows else None

    def consultation_months(self) -> list[str]:
        """Every month (``YYYY-MM``) with at least one consultation, newest first.

        One index seek per month (the newest ``at`` before the month found last), not a scan.
        """
        conn = self._connection()
        months: list[str] = []
        latest = conn.execute("SELECT max(at) FROM consultations").fetchone()[0]
        while latest is not None:
            months.append(latest[:7])
            latest = conn.execute("SELECT max(at) FROM consultations WHERE at < ?", [latest[:7]]).fetchone()[0]
        return months

    def consultation_outcomes(self) -> list[str]:
        """Every outcome in the journal, in name order (one index seek per outcome)."""
        conn = self._connection()
        outcomes: list[str] = []
        found = conn.execute("SELECT min(outcome) FROM consultations").fetchone()[0]
        while found is not None:
            outcomes.append(found)
            found = conn.execute("SELECT min(outcome) FROM consultations WHERE outcome > ?", [found]).fetchone()[0]
        return outcomes

    @staticmethod
    def _last_months(found: list[str], months: int) -> list[str]:
        if months < 1:
            raise ValueError(f"months ({months}) must be at least 1.")
        return found[:months]

    def consultations_per_month(self, *, months: int = 12) -> list[dict]:
        """``{month, outcome, n}`` for the last ``months`` months with consultations.

        Newest month first, outcomes in name order, no row where n would be 0. Each count is a
        range of the (outcome, at) index, so nothing is read but index entries.
        """
        conn = self._connection()
        outcomes = self.consultation_outcomes()
        rows = []
        for month in self._last_months(self.consultation_months(), months):
            start, end = month_range(month)
            for outcome in outcomes:
                n = conn.execute("SELECT count(*) FROM consultations WHERE outcome = ? AND at >= ? AND at < ?",
                                 [outcome, start, end]).fetchone()[0]
                if n:
                    rows.append({"month": month, "outcome": outcome, "n": n})
        return rows

    def consultation_codes(self, *, months: int = 12, top: int = 10) -> list[dict]:
        """``{code, n}``: the ``top`` most frequent codes of the consultations that were not OK.

        Over the last ``months`` months with consultations, most frequent first (then by code).
        Outcomes other than OK are ERROR, FAULT, REJECTED and UNAVAILABLE; UNAVAILABLE has no code,
        and consultations without a code are left out.
        """
        if top < 0:
            raise ValueError(f"top ({top}) cannot be negative.")
        last = self._last_months(self.consultation_months(), months)
        failed = [o for o in self.consultation_outcomes() if o != OK_OUTCOME]
        if not last or not failed:
            return []
        return list(self.db.query(
            f"SELECT code, count(*) AS n FROM consultations WHERE outcome IN ({', '.join('?' * len(failed))}) "
            "AND at >= ? AND code IS NOT NULL GROUP BY code ORDER BY n DESC, code LIMIT ?",
            [*failed, last[-1], top]))

    # ------------------------------------------------------------------ batch files
    def record_batch_file(self, run: BatchFileRun) -> int:
        """Keep one input file's run; returns its id."""
        if run.status not in BATCH_STATUSES:
            raise ValueError(f"status = {run.status!r}: a batch file run is one of {', '.join(BATCH_STATUSES)}.")
        row = asdict(run)
        columns, values = ", ".join(row), ", ".join(f":{name}" for name in row)
        with self.write() as conn:
            return int(conn.execute(f"INSERT INTO batch_files({columns}) VALUES ({values})", row).lastrowid)

    @staticmethod
    def _batch_filters(job: str | None, status: str | None) -> tuple[str, list[str]]:
        clauses, args = [], []
        for column, value in (("job", job), ("status", status)):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

    def batch_runs(self, *, job: str | None = None, status: str | None = None, limit: int = 50,
                   offset: int = 0) -> list[dict]:
        """One page of batch file runs, newest first."""
        where, args = self._batch_filters(job, status)
        return list(self.db.query(f"SELECT * FROM batch_files {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                                  [*args, *_page(limit, offset)]))

    def count_batch_runs(self, *, job: str | None = None, status: str | None = None) -> int:
        where, args = self._batch_filters(job, status)
        return int(self._connection().execute(f"SELECT count(*) FROM batch_files {where}", args).fetchone()[0])

    def batch_jobs(self) -> list[str]:
        """Every job with a recorded run, in name order."""
        return [row[0] for row in self._connection().execute("SELECT DISTINCT job FROM batch_files ORDER BY job")]
