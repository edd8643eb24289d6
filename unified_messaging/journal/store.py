"""The journal: every consultation and batch file, written by the core services, read by the UI and
the CLI, on the database layer (``unified_messaging.database``, the ``journal`` store).

By default (``[database] url`` empty) the SQLite file ``journal.sqlite`` of the data folder (or
``[journal] path``): WAL mode with ``synchronous=NORMAL``, one connection per thread, every writer
``BEGIN IMMEDIATE``, mode 600 (``database/sqlite_file.py``), its schema migrated on opening (a file of an
earlier release is adopted as it is, its added columns added). Else the PostgreSQL database every
node shares, whose schema ``unified-messaging db migrate`` creates. One SQL text per query serves
both; the text search's two SQLite-only operators have their PostgreSQL forms in ``_MATCH``.

The read queries for the UI stay fast on a year of traffic: a month is a range on the ``at``
index (never ``substr(at, ...)`` in a WHERE), pages are ``ORDER BY id DESC`` walks of an index
that ends with the row id, and the list of months is one index seek per month.
"""
from __future__ import annotations

import logging
import re
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from unified_messaging.database import JOURNAL, POSTGRESQL, SQLITE, Database, Transaction, open_store, store_database
from unified_messaging.database.engine import Params, Row
from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.journal import search

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class ConsultationPage:
    """One page of consultations and what the pager says: ``total`` matching consultations, or, when
    ``more``, at least ``total`` (the count stopped there; the page asked is one of them)."""

    rows: list[dict]
    number: int
    size: int
    total: int
    more: bool

    @property
    def last(self) -> int:
        """The last page counted: the last page, or when ``more`` the last one known to be full."""
        return max(1, -(-self.total // self.size))


_CONSULTATION_COLUMNS = tuple(f.name for f in fields(Consultation))
_INSERT_CONSULTATION = (f"INSERT INTO consultations ({', '.join(_CONSULTATION_COLUMNS)}) "
                        f"VALUES ({', '.join(':' + name for name in _CONSULTATION_COLUMNS)})")


_PRESENT_MONTHS = (
    "WITH RECURSIVE present(k, last) AS (SELECT 1, max(at) FROM consultations UNION ALL "
    "SELECT k + 1, (SELECT max(at) FROM consultations WHERE at < substr(present.last, 1, 7)) FROM present "
    "WHERE present.last IS NOT NULL{limit}) ")
"""The months with consultations, newest first, as one recursive statement both engines run: each
row's ``last`` is the newest ``at`` of its month (an index seek below the month found before), so
``at >= substr(last, 1, 7) AND at <= last`` is that month as an index range; ``{limit}`` is empty
or ``AND k < :months``; the row after the oldest month has ``last`` NULL."""
_LAST_MONTHS = _PRESENT_MONTHS.format(limit=" AND k < :months") + (
    ", outcomes(outcome) AS (SELECT min(outcome) FROM consultations UNION ALL "
    "SELECT (SELECT min(outcome) FROM consultations WHERE outcome > outcomes.outcome) FROM outcomes "
    "WHERE outcomes.outcome IS NOT NULL) ")
_PER_MONTH = _LAST_MONTHS + (
    "SELECT substr(p.last, 1, 7) AS month, o.outcome AS outcome, (SELECT count(*) FROM consultations AS c "
    "WHERE c.outcome = o.outcome AND c.at >= substr(p.last, 1, 7) AND c.at <= p.last) AS n "
    "FROM present AS p, outcomes AS o WHERE p.last IS NOT NULL AND o.outcome IS NOT NULL "
    "ORDER BY month DESC, outcome")
_CODES = _LAST_MONTHS + (
    "SELECT c.code AS code, count(*) AS n FROM outcomes AS o JOIN consultations AS c ON c.outcome = o.outcome "
    "AND c.at >= (SELECT substr(min(last), 1, 7) FROM present) WHERE o.outcome <> :ok AND c.code IS NOT NULL "
    "GROUP BY c.code ORDER BY n DESC, c.code LIMIT :top")


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


def _number_regex(text: str) -> str:
    """What ``_number_glob`` finds, as a PostgreSQL regular expression (``~`` is unanchored)."""
    parts, last = [], 0
    for match in _MASKED_NUMBER.finditer(text):
        parts.append(re.escape(text[last:match.start()]) + match.group(1) + "[0-9]{5}")
        last = match.end()
    return "".join(parts) + re.escape(text[last:])


def _like_pattern(text: str) -> str:
    """``text`` anywhere, with LIKE's wildcards (and the escape character) taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_MATCH = {SQLITE: ("LIKE", "GLOB", _number_glob), POSTGRESQL: ("ILIKE", "~", _number_regex)}
"""Per engine: the LIKE ignoring ASCII case (SQLite's LIKE does), and the operator and pattern of
a search with masked numbers (SQLite's GLOB, PostgreSQL's regular expressions)."""


class _Args(dict):
    """The named parameters of a query being built: ``add`` names each value and gives its placeholder."""

    def add(self, value: object) -> str:
        name = f"p{len(self)}"
        self[name] = value
        return f":{name}"


def _page(args: _Args, limit: int, offset: int) -> str:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit ({limit}) and offset ({offset}) cannot be negative.")
    return f"LIMIT {args.add(limit)} OFFSET {args.add(offset)}"


class Journal:
    """The journal's database, shared by the threads of the gateway (and, on PostgreSQL, by nodes).

    ``target`` is a database opened for the journal store (``Journal.open``: PostgreSQL is checked,
    not migrated, there), or the path of a SQLite file (created or adopted, and migrated, here).
    """

    def __init__(self, target: Database | Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.db = store_database(target, JOURNAL)
        self.clock = clock
        self._like, self._number_operator, self._number_pattern = _MATCH[self.db.engine]
        if self.db.engine == SQLITE:  # PostgreSQL: search.create_postgresql_index, from a migration
            with self.db.transaction() as tx:
                search.create_sqlite_index(tx, _TEXT_COLUMNS)

    @classmethod
    def open(cls, url: str, path: Path, *, clock: Callable[[], datetime] = utc_now) -> Journal:
        """The configured journal: ``url`` "" = the SQLite file ``path``, else that PostgreSQL
        (refused when ``db migrate`` has not created the journal's tables there)."""
        if not url:
            return cls(path, clock=clock)
        return cls(open_store(url, Path(path).parent, store=JOURNAL), clock=clock)

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None on PostgreSQL."""
        return getattr(self.db, "path", None)

    def describe(self) -> str:
        return self.db.describe()

    def write(self, *, lock: str | None = None) -> AbstractContextManager[Transaction]:
        """A writing transaction (``lock`` serialises a read-then-write across nodes on PostgreSQL)."""
        return self.db.transaction(lock=lock)

    def query(self, sql: str, params: Params = None) -> list[Row]:
        return self.db.query(sql, params)

    def close(self) -> None:
        self.db.close()

    def record_consultation(self, consultation: Consultation) -> int:
        """One row per call, committed before this returns (the caller answers after it).

        One prepared INSERT (sqlite3 caches the statement per connection, psycopg per SQL text) and
        SQLite's ``lastrowid`` (a ``RETURNING`` costs more there): no table introspection per call;
        on PostgreSQL one round trip (``INSERT ... RETURNING id`` in autocommit).
        On SQLite the commit does not wait for the disk: WAL mode with ``synchronous=NORMAL``
        (``SqliteFile``), so a committed row survives a crash of the process, not a power loss (see
        README).
        """
        return self.db.insert(_INSERT_CONSULTATION, consultation.__dict__)

    def consultations(self, *, limit: int = 100, outcome: str | None = None) -> list[dict]:
        """The latest consultations, newest first."""
        where = "WHERE outcome = :outcome" if outcome else ""
        return self.db.query(f"SELECT * FROM consultations {where} ORDER BY id DESC LIMIT :limit",
                             {"outcome": outcome, "limit": limit})

    def count(self, table: str) -> int:
        return int(self.db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"])

    # ------------------------------------------------------------------ consultations, for the UI
    def _consultation_filters(self, outcome: str | None, month: str | None, text: str | None,
                              interface: str | None, service: str | None = None) -> tuple[str, _Args]:
        clauses: list[str] = []
        args = _Args()
        if outcome:
            clauses.append(f"outcome = {args.add(outcome)}")
        if interface:
            clauses.append(f"interface = {args.add(interface)}")
        if service == NO_UPSTREAM:
            clauses.append("upstream_service IS NULL")
        elif service:
            clauses.append(f"upstream_service = {args.add(service)}")
        if month:
            start, end = month_range(month)
            clauses.append(f"at >= {args.add(start)} AND at < {args.add(end)}")
        text = (text or "").strip()
        if text:
            like = args.add(_like_pattern(text))
            matches = [f"{column} {self._like} {like} ESCAPE '\\'" for column in _TEXT_COLUMNS]
            if _MASKED_NUMBER.search(text):
                number = args.add(self._number_pattern(text))
                matches.extend(f"{column} {self._number_operator} {number}" for column in _TEXT_COLUMNS
                               if column != "patient")
            masked = mask_ssins_in_text(text)
            if masked != text:  # the journal keeps patients masked: a full SSIN finds its masked form
                matches.append(f"patient {self._like} {args.add(_like_pattern(masked))} ESCAPE '\\'")
            clauses.append("(" + " OR ".join(matches) + ")")
            # the rows the text index finds, the conditions above still deciding; a month is a range of the at index
            query = None if month or self.db.engine != SQLITE else search.narrowing(
                lambda sql: self.db.query(sql, args)[0]["n"], text, [masked] if masked != text else [], clauses[-1])
            if query:
                clauses.append(search.indexed(args.add(query)))
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
        return self._page_rows(where, args, limit, offset)

    def _page_rows(self, where: str, args: _Args, limit: int, offset: int) -> list[dict]:
        """The page's ids first, then their rows: a month (or an outcome and a month) is a range of an
        index on ``at``, not in id order, so its ids are sorted from the index alone (about 8,000 integers
        for a month of bench_mybox.py's year) instead of sorting the month's whole rows (18 ms there)."""
        page = _page(args, limit, offset)
        return self.db.query(f"SELECT * FROM consultations WHERE id IN (SELECT id FROM consultations {where} "
                             f"ORDER BY id DESC {page}) ORDER BY id DESC", args)

    def count_consultations(self, *, outcome: str | None = None, month: str | None = None, text: str | None = None,
                            interface: str | None = None, service: str | None = None,
                            at_most: int | None = None) -> int:
        """How many consultations ``find_consultations`` pages through with the same filters; with
        ``at_most``, counting stops there (a count of ``at_most`` means "at least that many")."""
        where, args = self._consultation_filters(outcome, month, text, interface, service)
        return self._count(where, args, at_most)

    def _count(self, where: str, args: _Args, at_most: int | None) -> int:
        if at_most is None:
            return int(self.db.query(f"SELECT count(*) AS n FROM consultations {where}", args)[0]["n"])
        if at_most < 0:
            raise ValueError(f"at_most ({at_most}) cannot be negative.")
        if not where:  # the whole table: a bare count(*) (SQLite counts the b-tree's pages) beats stepping rows
            return min(at_most, self._count(where, args, None))
        return int(self.db.query(f"SELECT count(*) AS n FROM (SELECT 1 AS one FROM consultations {where} "
                                 f"LIMIT {args.add(at_most)}) AS counted", args)[0]["n"])

    def consultation_page(self, *, number: int, size: int, counted: int, outcome: str | None = None,
                          month: str | None = None, text: str | None = None, interface: str | None = None,
                          service: str | None = None) -> ConsultationPage:
        """Page ``number`` (from 1; past the last, the last) of ``size`` consultations, newest first,
        with the filters of ``find_consultations``, and how many match, counted up to
        ``max(counted, number * size)`` only: past that the count says "more" (``ConsultationPage``).

        Counting every match costs a read of every matching row (or index entry), and of every row for a
        search the index does not serve: 150-200 ms for a NIHII found in most of a year's rows. Counting
        up to a bound stops at that many matches. The filters (and the text index's sample) are worked out
        once for the count and the page.
        """
        if number < 1 or size < 1:
            raise ValueError(f"number ({number}) and size ({size}) must be at least 1.")
        where, args = self._consultation_filters(outcome, month, text, interface, service)
        bound = max(counted, number * size)
        found = self._count(where, _Args(args), bound + 1)
        more = found > bound
        total = bound if more else found
        last = max(1, -(-total // size))
        number = number if more else min(number, last)
        offset = (number - 1) * size
        # No more rows than the count left for this page: a scan for a rare text stops at its last row, not
        # at the oldest consultation (and no match asks nothing more), so that scan is not paid twice.
        rows = self._page_rows(where, _Args(args), min(size, total - offset), offset) if total > offset else []
        return ConsultationPage(rows, number, size, total, more)

    def consultation(self, consultation_id: int) -> dict | None:
        """One consultation by its id, or None."""
        return self.db.query_one("SELECT * FROM consultations WHERE id = :id", {"id": consultation_id})

    def consultation_months(self) -> list[str]:
        """Every month (``YYYY-MM``) with at least one consultation, newest first.

        One statement, one index seek per month (the newest ``at`` before the month found last), not
        a scan.
        """
        return [row["last"][:7] for row in self.db.query(_PRESENT_MONTHS.format(limit="") +
                                                           "SELECT last FROM present WHERE last IS NOT NULL ORDER BY k")]

    def consultation_outcomes(self) -> list[str]:
        """Every outcome in the journal, in name order (one index seek per outcome)."""
        outcomes: list[str] = []
        found = self.db.query("SELECT min(outcome) AS outcome FROM consultations")[0]["outcome"]
        while found is not None:
            outcomes.append(found)
            found = self.db.query("SELECT min(outcome) AS outcome FROM consultations WHERE outcome > :after",
                                  {"after": found})[0]["outcome"]
        return outcomes

    @staticmethod
    def _months_asked(months: int) -> dict[str, int]:
        if months < 1:
            raise ValueError(f"months ({months}) must be at least 1.")
        return {"months": months}

    def consultations_per_month(self, *, months: int = 12) -> list[dict]:
        """``{month, outcome, n}`` for the last ``months`` months with consultations.

        Newest month first, outcomes in name order, no row where n would be 0. One statement (on
        PostgreSQL, one round trip instead of one per month and outcome): each count is a range of
        the (outcome, at, code) index, so nothing is read but index entries.
        """
        rows = self.db.query(_PER_MONTH, self._months_asked(months))
        return [row for row in rows if row["n"]]  # filtered here: SQLite would count each pair twice

    def consultation_codes(self, *, months: int = 12, top: int = 10) -> list[dict]:
        """``{code, n}``: the ``top`` most frequent codes of the consultations that were not OK.

        Over the last ``months`` months with consultations, most frequent first (then by code).
        Outcomes other than OK are ERROR, FAULT, REJECTED and UNAVAILABLE; UNAVAILABLE has no code,
        and consultations without a code are left out. One statement, on the (outcome, at, code)
        index per outcome.
        """
        if top < 0:
            raise ValueError(f"top ({top}) cannot be negative.")
        return self.db.query(_CODES, {**self._months_asked(months), "ok": OK_OUTCOME, "top": top})

    # ------------------------------------------------------------------ batch files
    def record_batch_file(self, run: BatchFileRun) -> int:
        """Keep one input file's run; returns its id."""
        if run.status not in BATCH_STATUSES:
            raise ValueError(f"status = {run.status!r}: a batch file run is one of {', '.join(BATCH_STATUSES)}.")
        row = asdict(run)
        columns, values = ", ".join(row), ", ".join(f":{name}" for name in row)
        with self.db.transaction() as tx:
            return tx.insert(f"INSERT INTO batch_files ({columns}) VALUES ({values})", row)

    @staticmethod
    def _batch_filters(job: str | None, status: str | None) -> tuple[str, _Args]:
        clauses, args = [], _Args()
        for column, value in (("job", job), ("status", status)):
            if value:
                clauses.append(f"{column} = {args.add(value)}")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

    def batch_runs(self, *, job: str | None = None, status: str | None = None, limit: int = 50,
                   offset: int = 0) -> list[dict]:
        """One page of batch file runs, newest first."""
        where, args = self._batch_filters(job, status)
        page = _page(args, limit, offset)
        return self.db.query(f"SELECT * FROM batch_files {where} ORDER BY id DESC {page}", args)

    def count_batch_runs(self, *, job: str | None = None, status: str | None = None) -> int:
        where, args = self._batch_filters(job, status)
        return int(self.db.query(f"SELECT count(*) AS n FROM batch_files {where}", args)[0]["n"])

    def batch_jobs(self) -> list[str]:
        """Every job with a recorded run, in name order."""
        return [row["job"] for row in self.db.query("SELECT DISTINCT job FROM batch_files ORDER BY job")]
