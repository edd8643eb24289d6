"""Benchmark of Mybox's pages on a year of traffic in the journal.

One piece on purpose: a benchmark is one script, run and read top to bottom (command line, the
synthetic year, the pages, measuring, the report), and kept whole so that its method reads in one place.

What is measured
----------------
The target (the issue): "Pages stay fast with a year of traffic in the journal (for example 100,000
consultations and 2,000 files): each list page answers in under 200 ms on this machine".

1. A fresh data folder's journal (``<data folder>/journal.sqlite``, the file the gateway opens) is
   filled with a synthetic but realistic year, through the real schema (``Journal(path)`` creates the
   journal's and the invoicing tables and indexes first, by its migration), with ``executemany`` in one
   transaction and a fixed random seed:

   * ``--consultations`` insurability consultations (default 100,000) over the last ``--days``
     (default 365), weekdays and office hours, in time order (ids follow time, as in production): interfaces
     soap / folder / batch (70/20/10 %), masked patients (``850730*****``, a pool of 4,000), three
     care providers, outcomes OK 93 %, ERROR (INPUT_ERROR, NO_IO_ERROR, MULTIIO_ERROR), REJECTED
     (UM-SSIN, UM-PERIOD, ...), FAULT (SOA-...), UNAVAILABLE (no code), audit references for OK
     and ERROR, a caller's reference for the folder and batch interfaces;
   * ``--files`` invoicing files (default 2,000) over the same days, each a real eFact sending
     built with ``simulator.sending_writer``; ~2 % refused by the gateway (ERROR), ~1.5 % refused by their
     TAck (NOK), the others accepted by a TAck and then answered by 931000 (after hours), 920098 or
     920099 (after days) and 920900 (after weeks) when that moment is already past: the status
     (OK, ONGOING, DONE, NOK) follows from what has arrived, so the recent weeks are OK/ONGOING and
     the older months DONE or NOK; every feedback message is a real one (``writer.build_9xxxxx``)
     written to ``received/`` under the poller's naming, and its journal row carries the poller's
     own ``error_counts`` / ``record_count`` / settled amounts, read back from the message; a few
     refused files are sent again later (``resend_of``);
   * ``--batch-runs`` batch file runs (default 500): three jobs, done / rejected / stopped.

2. The real gateway is started on that data folder (``tests.web_support.start_mybox``: in this
   process, built-in simulator, users admin / office / nurse), and one ``requests`` session logged
   in as ``admin`` (who sees every page) asks each page over real HTTP, keep-alive:
   ``--warmup`` requests first (default 3, not measured), then ``--repeat`` requests (default 30),
   one at a time, in rounds (a round asks every page once, so that a burst of load from elsewhere
   on the machine spreads over all pages). The time is from sending the request to having read the
   whole body. Every answer must be 200 on the page asked (not the login page), and the rare
   searches must find their row: anything else is an error and the script exits with status 1.

3. The store queries behind each page are also timed in this process, straight on the journal
   file (``--query-repeat`` calls each, the best one kept: what the query costs when nothing else
   disturbs it): the page's "queries" column is their sum, so that the rest (the page's Python,
   the template, HTTP) can be told apart.
   ``--explain`` also prints SQLite's ``EXPLAIN QUERY PLAN`` for every statement of every page.

The table gives, per page: median, p95 and max in milliseconds (nearest rank), the body size,
the queries' share, and PASS or OVER against ``--target-ms`` (default 200, judged on the p95).

How to run
----------
From the checkout, with the project and its test extras installed in the virtualenv (the script
starts the gateway through ``tests/web_support.py``, which imports pytest)::

    .venv/bin/python tests/benchmarks/bench_mybox.py                    # about 40 seconds
    .venv/bin/python tests/benchmarks/bench_mybox.py --days 1460 --consultations 400000 --files 8000
    .venv/bin/python tests/benchmarks/bench_mybox.py --explain --markdown

This is a script, not a pytest test (pytest does not collect ``bench_*.py``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

import unified_messaging  # noqa: E402
from tests.benchmarks.common import not_negative_int, positive_int, progress  # noqa: E402
from tests.conftest import make_config  # noqa: E402
from tests.web_support import MyboxStack, login, start_mybox  # noqa: E402
from unified_messaging.identifiers import mask_ssin, mask_ssins_in_text  # noqa: E402
from unified_messaging.simulator import feedback_writer as writer  # noqa: E402
from unified_messaging.simulator.sending_writer import SendingSpec, build_sending  # noqa: E402
from unified_messaging.efact.feedback import read_feedback  # noqa: E402
from unified_messaging.invoicing.folders import Folders  # noqa: E402
from unified_messaging.invoicing.poller import error_counts, settled_amounts  # noqa: E402
from unified_messaging.invoicing.store import InvoicingStore  # noqa: E402
from unified_messaging.journal.store import Journal  # noqa: E402

SEED = 20240601
OTHER_CPU_WARNING = 0.10
USER = "admin"
DAY = 86400.0


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time Mybox's pages (dashboard, invoicing, consultations, batch runs) over HTTP on a journal "
                    "holding a year of traffic. Starts the real gateway in this process.")
    parser.add_argument("--consultations", type=not_negative_int, default=100_000, metavar="N",
                        help="consultations in the journal, over the last --days (default: %(default)s)")
    parser.add_argument("--files", type=not_negative_int, default=2_000, metavar="N",
                        help="invoicing files in the journal, over the last --days (default: %(default)s)")
    parser.add_argument("--days", type=positive_int, default=365, metavar="N",
                        help="how far back the traffic goes: 1460 with four times the counts is four years of "
                             "the same traffic (default: %(default)s)")
    parser.add_argument("--batch-runs", type=not_negative_int, default=500, metavar="N",
                        help="batch file runs in the journal (default: %(default)s)")
    parser.add_argument("--repeat", type=positive_int, default=30, metavar="N",
                        help="measured requests per page (default: %(default)s)")
    parser.add_argument("--warmup", type=not_negative_int, default=3, metavar="N",
                        help="requests per page before measuring, not counted (default: %(default)s)")
    parser.add_argument("--query-repeat", type=not_negative_int, default=10, metavar="N",
                        help="calls of each store query for the queries column (the best is kept), 0 to skip "
                             "(default: %(default)s)")
    parser.add_argument("--target-ms", type=float, default=200.0, metavar="MS",
                        help="the target a page's p95 must stay under (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="random seed of the synthetic year (default: %(default)s)")
    parser.add_argument("--explain", action="store_true",
                        help="also print EXPLAIN QUERY PLAN for every statement the pages' queries run")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown for README.md")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary folder (journal, invoicing folders) and print its path")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the synthetic year


def _iso(moment: float) -> str:
    """A POSIX time as the gateway writes it: ISO 8601, UTC, milliseconds, ``+00:00``."""
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).isoformat(timespec="milliseconds")


def _office_moment(rng: random.Random, start: float, end: float) -> float:
    """A moment in [start, end): four out of five on a weekday, mostly in office hours (UTC)."""
    while True:
        moment = rng.uniform(start, end)
        day = dt.datetime.fromtimestamp(moment, dt.timezone.utc)
        if day.weekday() >= 5 and rng.random() < 0.8:
            continue
        hour = min(20.99, max(5.0, rng.gauss(11.0, 3.0)))
        midnight = day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        moment = midnight + hour * 3600 + rng.uniform(0, 1)
        if start <= moment < end:
            return moment


def _ssin(rng: random.Random) -> str:
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(90 * 365))
    return f"{birth:%y%m%d}{rng.randrange(100000):05d}"


@dataclass
class Year:
    """What was written, and the values the pages are asked about."""

    consultations: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    files: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    feedback: int = 0
    tacks: int = 0
    resends: int = 0
    batch_runs: int = 0
    received_bytes: int = 0
    seconds: float = 0.0
    month: str = ""                 # a full month about six months back
    rare_audit_reference: str = ""  # one consultation's audit reference
    common_text: str = ""           # a care provider's NIHII, in most consultations
    full_ssin: str = ""             # a frequent patient, typed in full (found through its masked form)
    rare_zone_204: str = ""         # one file's zone 204
    done_file: int = 0              # a settled file with errors (three messages on disk)
    nok_file: int = 0               # a file refused by the detailed check (920099)
    jobs: list[str] = field(default_factory=list)
    with_messages: set[int] = field(default_factory=set)  # files with feedback messages in received/


CARE_PROVIDERS = (("81234530000", "labo", 0.72), ("19876543004", "doctor", 0.18), ("71045677001", "nurse", 0.10))
INTERFACES = (("soap", 0.70), ("folder", 0.20), ("batch", 0.10))
OUTCOMES = (("OK", 0.93, (None,)), ("ERROR", 0.035, ("INPUT_ERROR", "INPUT_ERROR", "NO_IO_ERROR", "MULTIIO_ERROR")),
            ("REJECTED", 0.02, ("UM-SSIN", "UM-PERIOD", "UM-NIHII", "UM-DATE", "UM-QUALITY")),
            ("FAULT", 0.01, ("SOA-03006", "SOA-01001", "SOA-02001")), ("UNAVAILABLE", 0.005, (None,)))
FEDERATIONS = ("100", "200", "300", "400", "500", "600", "900")
MUTUALITIES = ("131", "216", "319", "403", "509", "602", "926")
JOBS = ("admissions-nightly", "outpatients-morning", "dialysis-weekly")


def _weighted(rng: random.Random, choices, weights):
    return rng.choices(choices, weights=weights, k=1)[0]


def consultation_rows(count: int, days: int, now: float, rng: random.Random, year: Year) -> list[tuple]:
    patients = [_ssin(rng) for _ in range(4000)]
    patient_weights = [1.0 / (1 + i) ** 0.6 for i in range(len(patients))]  # a few frequent patients
    year.full_ssin = patients[0]
    moments = sorted(_office_moment(rng, now - days * DAY, now) for _ in range(count))
    outcome_names = [o[0] for o in OUTCOMES]
    outcome_weights = [o[1] for o in OUTCOMES]
    codes = {o[0]: o[2] for o in OUTCOMES}
    rows = []
    sequence = rng.randrange(10 ** 7)
    for moment in moments:
        interface = _weighted(rng, [i[0] for i in INTERFACES], [i[1] for i in INTERFACES])
        nihii, quality, _w = _weighted(rng, CARE_PROVIDERS, [c[2] for c in CARE_PROVIDERS])
        outcome = _weighted(rng, outcome_names, outcome_weights)
        code = rng.choice(codes[outcome])
        day = dt.datetime.fromtimestamp(moment, dt.timezone.utc)
        sequence += 1
        audit = f"{day:%y%m%d}{sequence % 10 ** 8:08d}" if outcome in ("OK", "ERROR") else None
        reference = f"ORD-{day:%Y%m%d}-{rng.randrange(10 ** 5):05d}" if interface != "soap" else None
        duration = round(rng.lognormvariate(math.log(180), 0.5), 2) if outcome != "UNAVAILABLE" else 30000.0
        patient = mask_ssin(rng.choices(patients, weights=patient_weights, k=1)[0])
        rows.append((_iso(moment), interface, nihii, quality, patient, day.date().isoformat(), day.date().isoformat(),
                     outcome, code, audit, reference, duration))
        year.outcomes[outcome] = year.outcomes.get(outcome, 0) + 1
    year.consultations = len(rows)
    year.common_text = CARE_PROVIDERS[0][0]
    with_audit = [r for r in rows[len(rows) // 3: 2 * len(rows) // 3] if r[9]]
    year.rare_audit_reference = with_audit[len(with_audit) // 2][9] if with_audit else "00000000000000"
    return rows


@dataclass
class _File:
    id: int
    created: float
    name: str
    zone_204: str
    destination: str
    sending: bytes
    lines: int
    state: str = "sent"
    status: str | None = None
    reference: str | None = None
    reason: str | None = None
    resend_of: int | None = None
    last_feedback: str | None = None
    last_feedback_at: float | None = None
    updated: float = 0.0
    amounts: tuple = (None, None, None, None)
    errors: int = 0


def invoicing_rows(count: int, days: int, now: float, rng: random.Random, received: Path,
                   year: Year) -> tuple[list, list, list]:
    """Rows for invoicing_files, invoicing_feedback and invoicing_tacks; the messages go to ``received``."""
    moments = sorted(_office_moment(rng, now - days * DAY, now - 600) for _ in range(count))
    files: list[_File] = []
    feedback: list[tuple] = []
    tacks: list[tuple] = []
    per_day: dict[str, int] = {}
    service_slots = ("R502405", "R502255", "S502744", "F501203")
    for index, created in enumerate(moments, start=1):
        day = dt.datetime.fromtimestamp(created, dt.timezone.utc)
        number = per_day[f"{day:%Y%m%d}"] = per_day.get(f"{day:%Y%m%d}", 0) + 1
        zone_204 = f"{day:%Y%m%d}{number:06d}"
        month = f"{day:%Y%m}"
        spec = SendingSpec(
            zone_204=zone_204, is_test=False, mutualities=tuple(sorted(rng.sample(MUTUALITIES, rng.randint(1, 3)))),
            invoices_per_mutuality=rng.randint(1, 6), lines_per_invoice=rng.randint(1, 4),
            line_amount=rng.choice((1250, 2375, 4410, 9120)), sending_number=number % 1000,
            invoicing_month=month, creation_date=f"{day:%Y%m%d}")
        sending = build_sending(spec)
        file = _File(index, created, f"labo-{day:%Y%m%d}-{number:03d}.txt", zone_204, rng.choice(FEDERATIONS),
                     sending, spec.lines_per_invoice, updated=created)
        files.append(file)
        stem = Path(file.name).stem
        fate = rng.random()
        if fate < 0.02:  # refused by the gateway before sending: wrong check digits
            file.state, file.status = "error", "NOK"
            file.reason = "The file was not sent: record 3 (50): zone 99 holds wrong check digits."
            continue
        sent = created + rng.uniform(2, 60)
        reference = f"{day:%y%m%d}{rng.randrange(10 ** 8):08d}"
        file.reference = reference
        if fate < 0.035:  # refused by its TAck
            file.state, file.status = "refused", "NOK"
            file.reason = "MyCareNet refused the file: the sending's zone 204 is already known."
            tacks.append((f"tack-{index}", index, zone_204, reference, 0, file.reason, None, _iso(sent)))
            file.updated = sent
            continue
        tacks.append((f"tack-{index}", index, zone_204, reference, 1, f"accepted ({reference})", None, _iso(sent)))
        file.status, file.updated = "OK", sent
        first_50 = writer.first_index(sending, "50")
        refused = rng.random() < 0.07
        errors: dict[int, list[str]] = {}
        if refused:
            errors = {first_50: ["B502405"]}
        elif rng.random() < 0.4:
            for k in range(rng.randint(1, min(3, spec.lines_per_invoice))):
                errors[first_50 + k] = [rng.choice(service_slots)]
        plan = [("931000", sent + rng.uniform(0.5, 30) * 3600, lambda: writer.build_931000(sending))]
        detailed_at = sent + rng.uniform(2, 10) * DAY
        if refused:
            plan.append(("920099", detailed_at, lambda: writer.build_920099(sending, errors)))
        else:
            plan.append(("920098", detailed_at, lambda: writer.build_920098(sending, errors)))
            plan.append(("920900", sent + rng.uniform(15, 40) * DAY, lambda: writer.build_920900(sending, errors)))
        for code, at, build in plan:
            if at >= now:
                break
            content = build()
            message = read_feedback(content)
            key = hashlib.sha256(f"{zone_204}-{code}".encode()).hexdigest()
            received_name = f"{stem}_{code}_{key[:8]}.txt"
            (received / received_name).write_bytes(content)
            year.received_bytes += len(content)
            counts = error_counts(message)
            feedback.append((key, index, zone_204, code, f"{reference[:6]}{rng.randrange(10 ** 8):08d}", None,
                             received_name, None, _iso(at), json.dumps(counts, sort_keys=True, separators=(",", ":")),
                             len(message.records)))
            file.last_feedback, file.last_feedback_at, file.updated = code, at, at
            file.errors = sum(counts.values())
            if code == "920099":
                file.status = "NOK"
                file.reason = f"Refused after the detailed check (920099): see {received_name}."
            elif code == "920900":
                file.status = "DONE"
                settled = settled_amounts(message)
                if settled is not None:
                    file.amounts = (settled.requested, settled.accepted, settled.rejected, settled.payment_reference)
            else:
                file.status = "ONGOING"
    # Half the files refused more than three days ago are sent again: the next file after two days.
    for file in files:
        if file.status == "NOK" and file.state != "error" and file.created < now - 3 * DAY and rng.random() < 0.5:
            later = next((f for f in files if f.created > file.created + 2 * DAY and f.resend_of is None), None)
            if later is not None:
                later.resend_of = file.id
                year.resends += 1
    year.statuses = {}
    rows = []
    for f in files:
        shown = "ERROR" if f.state == "error" else f.status
        year.statuses[shown] = year.statuses.get(shown, 0) + 1
        rows.append((f.id, f.name, len(f.sending), hashlib.sha256(f.sending).hexdigest(), f.zone_204, f.destination, 0,
                     f.state, f.status, f.reference, f.reason, None, f.resend_of, 0 if f.state == "error" else 1,
                     None, None if f.state == "error" else _iso(f.created + 1), f.last_feedback,
                     _iso(f.last_feedback_at) if f.last_feedback_at else None, _iso(f.created), _iso(f.updated),
                     *f.amounts))
    feedback.sort(key=lambda row: row[8])
    tacks.sort(key=lambda row: row[7])
    year.files, year.feedback, year.tacks = len(rows), len(feedback), len(tacks)
    year.with_messages = {row[1] for row in feedback}
    if files:
        year.rare_zone_204 = files[len(files) // 2].zone_204
        done = ([f for f in files if f.status == "DONE" and f.errors] or [f for f in files if f.status == "DONE"]
                or files)
        year.done_file = done[-1].id
        nok = [f for f in files if f.last_feedback == "920099"] or [f for f in files if f.status == "NOK"] or files
        year.nok_file = nok[-1].id
    return rows, feedback, tacks


def batch_rows(count: int, days: int, now: float, rng: random.Random, year: Year) -> list[tuple]:
    rows = []
    for started in sorted(_office_moment(rng, now - days * DAY, now - 3600) for _ in range(count)):
        job = rng.choice(JOBS)
        day = dt.datetime.fromtimestamp(started, dt.timezone.utc)
        name = f"{job}-{day:%Y%m%d-%H%M}.csv"
        fate = rng.random()
        if fate < 0.06:
            rows.append((job, name, "rejected", None, None, None, None, None,
                         "UM-CSV: line 1 has no 'ssin' column.", _iso(started), _iso(started + 0.2)))
            continue
        lines = rng.randint(20, 2000)
        errors = sum(rng.random() < 0.05 for _ in range(lines))
        took = lines * rng.uniform(0.15, 0.4)
        if fate < 0.10:
            done = rng.randint(0, lines)
            rows.append((job, name, "stopped", lines, done, errors, done, None,
                         "MyCareNet is unreachable; the file will be resumed at its next line.",
                         _iso(started), _iso(started + took * done / lines)))
            continue
        rows.append((job, name, "done", lines, lines - errors, errors, None, name.replace(".csv", "-result.csv"),
                     None, _iso(started), _iso(started + took)))
    year.batch_runs = len(rows)
    year.jobs = sorted({row[0] for row in rows})
    return rows


def populate(data_folder: Path, invoicing_root: Path, journal_path: Path, args: argparse.Namespace) -> Year:
    """Fill the journal with a year of traffic, through the real schema, in one transaction."""
    started = time.perf_counter()
    rng = random.Random(args.seed)
    now = time.time()
    year = Year()
    six_months_ago = dt.datetime.fromtimestamp(now - min(182, args.days / 2) * DAY, dt.timezone.utc)
    year.month = f"{six_months_ago:%Y-%m}"
    folders = Folders(invoicing_root)
    folders.create()
    consultations = consultation_rows(args.consultations, args.days, now, rng, year)
    files, feedback, tacks = invoicing_rows(args.files, args.days, now, rng, folders.received, year)
    batches = batch_rows(args.batch_runs, args.days, now, rng, year)
    journal = Journal(journal_path)
    try:
        with journal.write():
            conn = journal.db.connection()  # executemany: SQLite's own bulk load, in the transaction
            conn.executemany(
                "INSERT INTO consultations (at, interface, care_provider, quality, patient, period_start, period_end, "
                "outcome, code, audit_reference, reference, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                consultations)
            conn.executemany(
                "INSERT INTO invoicing_files (id, name, size, sha256, zone_204, destination, is_test, state, status, "
                "reference, reason, work_name, resend_of, attempts, next_attempt_at, posting_since, last_feedback, "
                "last_feedback_at, created_at, updated_at, amount_requested, amount_accepted, amount_rejected, "
                "payment_reference) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", files)
            conn.executemany(
                "INSERT INTO invoicing_feedback (message_key, file_id, zone_204, code, nip_reference, "
                "output_reference, received_name, probative_name, at, error_counts, record_count) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                feedback)
            conn.executemany(
                "INSERT INTO invoicing_tacks (tack_key, file_id, input_reference, reference, success, message, "
                "probative_name, at) VALUES (?,?,?,?,?,?,?,?)", tacks)
            conn.executemany(
                "INSERT INTO batch_files (job, input, status, lines, ok, errors, resumed_at, output, reason, "
                "started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", batches)
    finally:
        journal.close()
    year.seconds = time.perf_counter() - started
    return year


# --------------------------------------------------------------------------- pages and their queries


@dataclass
class Page:
    name: str
    path: str
    queries: list[tuple[str, Callable[[], object]]]
    must_contain: str | None = None
    times: list[float] = field(default_factory=list)
    size: int = 0
    query_ms: float | None = None
    query_detail: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.times)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000


def _q(path: str, **query: object) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def pages_for(year: Year, journal: Journal, store: InvoicingStore, page_size: int) -> list[Page]:
    def files_page(number: int, **f):
        total = store.count_files(**f)
        last = max(1, -(-total // page_size))
        offset = (min(number, last) - 1) * page_size
        return [("count_files", lambda: store.count_files(**f)),
                ("list_files", lambda: store.list_files(**f, limit=page_size, offset=offset)),
                ("file_months", store.file_months)]

    def consultations_page(number: int, **f):
        total = journal.count_consultations(**f)
        last = max(1, -(-total // page_size))
        offset = (min(number, last) - 1) * page_size
        return [("count_consultations", lambda: journal.count_consultations(**f)),
                ("find_consultations", lambda: journal.find_consultations(**f, limit=page_size, offset=offset)),
                ("consultation_months", journal.consultation_months)]

    def batch_page(**f):
        return [("batch_jobs", journal.batch_jobs), ("count_batch_runs", lambda: journal.count_batch_runs(**f)),
                ("batch_runs", lambda: journal.batch_runs(**f, limit=page_size, offset=0))]

    def detail(file_id: int):
        return [("file", lambda: store.file(file_id)), ("feedback_for", lambda: store.feedback_for(file_id)),
                ("tacks_for", lambda: store.tacks_for(file_id)), ("resent_as", lambda: store.resent_as(file_id))]

    last_consultation_page = max(1, -(-year.consultations // page_size))
    job = year.jobs[0] if year.jobs else "none"
    pages = [
        Page("dashboard", "/", [
            ("files_per_status_per_month", lambda: store.files_per_status_per_month(months=12)),
            ("feedback_delays", lambda: store.feedback_delays(months=12)),
            ("error_categories", lambda: store.error_categories(months=12)),
            ("consultations_per_month", lambda: journal.consultations_per_month(months=12)),
            ("consultation_codes", lambda: journal.consultation_codes(months=12, top=10))]),
        Page("invoicing, page 1", "/invoicing", files_page(1)),
        Page("invoicing, status=DONE", _q("/invoicing", status="DONE"), files_page(1, status="DONE")),
        Page("invoicing, status=NOK", _q("/invoicing", status="NOK"), files_page(1, status="NOK")),
        Page(f"invoicing, month={year.month}", _q("/invoicing", month=year.month), files_page(1, month=year.month)),
        Page("invoicing, text (one zone 204)", _q("/invoicing", q=year.rare_zone_204),
             files_page(1, text=year.rare_zone_204), must_contain=year.rare_zone_204),
        Page("invoicing, page 20", _q("/invoicing", page=20), files_page(20)),
        Page(f"invoicing file #{year.done_file} (DONE, 3 messages)", f"/invoicing/{year.done_file}",
             detail(year.done_file),
             must_contain="feedback-download" if year.done_file in year.with_messages else None),
        Page(f"invoicing file #{year.nok_file} (NOK, 920099)", f"/invoicing/{year.nok_file}", detail(year.nok_file),
             must_contain="feedback-download" if year.nok_file in year.with_messages else None),
        Page("consultations, page 1", "/insurability", consultations_page(1)),
        Page("consultations, outcome=ERROR", _q("/insurability", outcome="ERROR"),
             consultations_page(1, outcome="ERROR")),
        Page("consultations, outcome=OK", _q("/insurability", outcome="OK"), consultations_page(1, outcome="OK")),
        Page(f"consultations, month={year.month}", _q("/insurability", month=year.month),
             consultations_page(1, month=year.month)),
        Page("consultations, text rare (audit ref)", _q("/insurability", q=year.rare_audit_reference),
             consultations_page(1, text=year.rare_audit_reference), must_contain=year.rare_audit_reference),
        # An 11-digit number typed in the search box is sent back masked (one redirect): the page timed
        # is the one the user lands on, searching with the masked number.
        Page("consultations, text common (NIHII)", _q("/insurability", q=mask_ssins_in_text(year.common_text)),
             consultations_page(1, text=mask_ssins_in_text(year.common_text)), must_contain=year.common_text),
        Page("consultations, text full SSIN", _q("/insurability", q=mask_ssin(year.full_ssin)),
             consultations_page(1, text=mask_ssin(year.full_ssin)), must_contain=mask_ssin(year.full_ssin)),
        Page("consultations, interface=batch", _q("/insurability", interface="batch"),
             consultations_page(1, interface="batch")),
        Page("consultations, ERROR + month", _q("/insurability", outcome="ERROR", month=year.month),
             consultations_page(1, outcome="ERROR", month=year.month)),
        Page(f"consultations, last page ({last_consultation_page})", _q("/insurability", page=last_consultation_page),
             consultations_page(last_consultation_page)),
        Page("batch runs, page 1", "/batch", batch_page()),
        Page("batch runs, status=rejected", _q("/batch", status="rejected"), batch_page(status="rejected")),
        Page(f"batch runs, job={job}", _q("/batch", job=job), batch_page(job=job)),
    ]
    # Pages about rows that a small --files / --consultations / --batch-runs did not make are left out.
    missing = set()
    if not year.files:
        missing |= {f"invoicing file #{year.done_file} (DONE, 3 messages)",
                    f"invoicing file #{year.nok_file} (NOK, 920099)", "invoicing, text (one zone 204)"}
    if not year.consultations:
        missing |= {"consultations, text rare (audit ref)", "consultations, text full SSIN"}
    if not year.jobs:
        missing.add(f"batch runs, job={job}")
    return [page for page in pages if page.name not in missing]


# --------------------------------------------------------------------------- measuring


def measure(session: requests.Session, stack: MyboxStack, pages: list[Page], warmup: int, repeat: int,
            cpu: CpuShare) -> None:
    """``warmup`` rounds, then ``repeat`` measured rounds; a round asks every page once, in order.

    Rounds rather than one page's requests in a row: a burst of load from elsewhere on the machine
    then spreads over every page instead of landing on one.
    """
    started_at, own_start, machine_start = time.perf_counter(), own_cpu_seconds(), machine_busy_seconds()
    for round_number in range(warmup + repeat):
        for page in pages:
            if page.error:
                continue
            started = time.perf_counter()
            answer = session.get(stack.url(page.path), allow_redirects=False)
            body = answer.content
            elapsed = time.perf_counter() - started
            if answer.status_code != 200:
                page.error = f"HTTP {answer.status_code} (Location: {answer.headers.get('Location', '-')})"
            elif round_number == 0 and page.must_contain and page.must_contain not in answer.text:
                page.error = f"the page does not show {page.must_contain!r}"
            elif round_number >= warmup:
                page.times.append(elapsed)
                page.size = len(body)
        if round_number + 1 == warmup:
            started_at, own_start, machine_start = time.perf_counter(), own_cpu_seconds(), machine_busy_seconds()
            progress(f"{warmup} warm-up round(s) done")
        elif round_number + 1 > warmup and (round_number + 1 - warmup) % 10 == 0:
            progress(f"{round_number + 1 - warmup} of {repeat} measured rounds done")
    elapsed = max(time.perf_counter() - started_at, 1e-9)
    cpu.own = (own_cpu_seconds() - own_start) / elapsed
    cpu.other = max(0.0, machine_busy_seconds() - machine_start - (own_cpu_seconds() - own_start)) / elapsed


def time_queries(page: Page, repeat: int) -> None:
    if repeat <= 0:
        return
    total = 0.0
    for name, call in page.queries:
        call()
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
        best = min(samples) * 1000  # the least disturbed call: what the query itself costs
        page.query_detail.append((name, best))
        total += best
    page.query_ms = total


def explain(journal: Journal, page: Page) -> list[str]:
    """EXPLAIN QUERY PLAN of every statement the page's queries run (seen through a trace callback)."""
    conn = journal.db.connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        for _name, call in page.queries:
            call()
    finally:
        conn.set_trace_callback(None)
    shapes: dict[str, list[str]] = {}  # statements that differ only in their literals are one shape
    for statement in statements:
        text = " ".join(statement.split())
        if text.upper().startswith(("SELECT", "WITH")):
            shapes.setdefault(_LITERALS.sub("?", text), []).append(statement)
    lines = []
    for shape, runs in shapes.items():
        if shape in _EXPLAINED:
            lines.append(f"  (as above) {' '.join(runs[0].split())[:110]}")
            continue
        _EXPLAINED.add(shape)
        took = 0.0
        for statement in runs:
            started = time.perf_counter()
            conn.execute(statement).fetchall()
            took += (time.perf_counter() - started) * 1000
        times = f" x{len(runs)}" if len(runs) > 1 else ""
        lines.append(f"  {took:7.2f} ms{times}  {' '.join(runs[0].split())}")
        for row in conn.execute("EXPLAIN QUERY PLAN " + runs[0]):
            lines.append(f"               {'  ' * _depth(row)}{row[3]}")
    return lines


_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_EXPLAINED: set[str] = set()


_PARENTS: dict[int, int] = {}


def _depth(row: tuple) -> int:
    node, parent = row[0], row[1]
    depth = _PARENTS.get(parent, -1) + 1
    _PARENTS[node] = depth
    return depth


# --------------------------------------------------------------------------- report


def machine_facts() -> list[tuple[str, str]]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return [
        ("date", dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("CPU", model),
        ("cores", f"{cores} logical, {usable} usable by this process"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()}), "
                   f"SQLite {sqlite3.sqlite_version}, {platform.platform()}"),
        ("unified-messaging", f"{unified_messaging.__version__}, {_git_revision()}"),
        ("load average", _loadavg()),
    ]


def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used since boot (``/proc/stat``), NaN if unknown."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class CpuShare:
    """CPU used during the measured rounds, 1.0 = one core busy all along."""

    own: float = math.nan    # this process: the client and the gateway (it runs in this process)
    other: float = math.nan  # every other process of the machine


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3]) + " (1, 5, 15 min)"
    except OSError:
        return "unknown"


def _git_revision() -> str:
    try:
        revision = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                  capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return f"git {revision}"
    except (OSError, subprocess.SubprocessError):
        return "git revision unknown"


def print_report(pages: list[Page], facts: list[tuple[str, str]], year: Year, args: argparse.Namespace,
                 journal_bytes: int, cpu: CpuShare, load_before: str) -> None:
    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]))

    setup = [
        ("journal", f"{journal_bytes / 1024 / 1024:.1f} MB, written in {year.seconds:.1f} s (seed {args.seed})"),
        ("consultations", f"{year.consultations:,} over {args.days} days ({counts(year.outcomes)})"),
        ("invoicing files", f"{year.files:,} over {args.days} days ({counts(year.statuses)}); {year.resends} resent"),
        ("feedback, TAcks", f"{year.feedback:,} feedback messages ({year.received_bytes / 1024 / 1024:.1f} MB in "
                            f"received/), {year.tacks:,} TAcks"),
        ("batch runs", f"{year.batch_runs:,} ({', '.join(year.jobs)})"),
        ("load at start", load_before),
        ("CPU, measured", f"this process (client + gateway) {cpu.own:.0%} of a core, other processes "
                          f"{cpu.other:.0%} of a core, during the measured rounds"),
        ("per page", f"{args.warmup} warm-up request(s), then {args.repeat} measured, one request at a time, in "
                     f"rounds over every page, HTTP keep-alive, logged in as {USER}; gateway in this process"),
    ]
    width = max(len(k) for k, _ in facts + setup)
    print()
    print(f"Mybox pages on a year of traffic: target p95 < {args.target_ms:g} ms")
    for key, value in facts + setup:
        print(f"  {key:<{width}}  {value}")
    print()
    headers = ["page", "median ms", "p95 ms", "max ms", "bytes", "queries ms", "verdict"]
    lines = []
    for page in pages:
        if page.error:
            lines.append([page.name, "-", "-", "-", "-", "-", f"ERROR: {page.error}"])
            continue
        p95 = page.percentile_ms(0.95)
        verdict = "PASS" if p95 < args.target_ms else f"OVER {args.target_ms:g} ms"
        lines.append([page.name, f"{page.median_ms:.1f}", f"{p95:.1f}", f"{max(page.times) * 1000:.1f}",
                      f"{page.size:,}", "-" if page.query_ms is None else f"{page.query_ms:.1f}", verdict])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(fmt(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt(line))
    print()
    rank = max(1, math.ceil(0.95 * args.repeat))
    print(f"queries ms = the page's store queries called in this process (best of {args.query_repeat} calls each, "
          "summed);\nthe rest of the median is the view's Python, the template and HTTP. "
          f"p95 = nearest rank: number {rank} of {args.repeat}, fastest\nfirst; PASS = p95 under the target.")
    slowest = max((p for p in pages if not p.error), key=lambda p: p.percentile_ms(0.95), default=None)
    if slowest is not None:
        print(f"slowest page: {slowest.name}, p95 {slowest.percentile_ms(0.95):.1f} ms")
    if cpu.other > OTHER_CPU_WARNING:
        print(f"WARNING: other processes used {cpu.other:.0%} of a core during the measured rounds: the figures "
              "are disturbed (tails most of all); run again on an idle machine.")
    if args.query_repeat:
        print()
        print(f"store queries per page (ms, best of {args.query_repeat} calls):")
        for page in pages:
            print(f"  {page.name}: " + ", ".join(f"{name} {ms:.2f}" for name, ms in page.query_detail))
    if args.markdown:
        print()
        print("| page | median ms | p95 ms | max ms | queries ms |")
        print("|---|---:|---:|---:|---:|")
        for page in pages:
            if not page.error:
                print(f"| {page.name} | {page.median_ms:.1f} | {page.percentile_ms(0.95):.1f} | "
                      f"{max(page.times) * 1000:.1f} | {'-' if page.query_ms is None else f'{page.query_ms:.1f}'} |")
        facts_by_key = dict(facts)
        print()
        print(f"_{facts_by_key['CPU']}, {facts_by_key['cores']}, Python {platform.python_version()}, "
              f"{facts_by_key['date'][:10]}; {year.consultations:,} consultations, {year.files:,} invoicing files, "
              f"{year.feedback:,} feedback messages, {year.batch_runs:,} batch runs in the journal._")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("unified_messaging").addHandler(logging.NullHandler())
    logging.getLogger("unified_messaging").propagate = False
    workdir = Path(tempfile.mkdtemp(prefix="um-bench-mybox-"))
    stack: MyboxStack | None = None
    cpu = CpuShare()
    load_before = _loadavg()
    pages: list[Page] = []
    try:
        config = make_config(workdir)  # the configuration start_mybox gives the gateway: same data folder
        progress(f"writing a year of traffic to {config.journal_path}")
        year = populate(config.data_folder, config.invoicing_root, config.journal_path, args)
        progress(f"{year.consultations:,} consultations, {year.files:,} files, {year.feedback:,} feedback messages, "
                 f"{year.tacks:,} TAcks, {year.batch_runs:,} batch runs in {year.seconds:.1f} s")
        journal_bytes = config.journal_path.stat().st_size
        progress("starting the gateway")
        stack = start_mybox(workdir)
        page_size = stack.gateway.config.web.page_size
        session = login(stack, USER)
        reader = Journal(config.journal_path)  # this process's own connections, for the queries column
        store = InvoicingStore(reader)
        pages = pages_for(year, reader, store, page_size)
        progress(f"{len(pages)} pages: {args.warmup} warm-up round(s), then {args.repeat} measured rounds")
        measure(session, stack, pages, args.warmup, args.repeat, cpu)
        for page in pages:
            if page.error:
                progress(f"{page.name}: {page.error}")
        session.close()
        for page in pages:
            time_queries(page, args.query_repeat)
        plans = []
        if args.explain:
            for page in pages:
                plans.append(f"{page.name}:")
                plans.extend(explain(reader, page))
        reader.close()
    finally:
        if stack is not None:
            stack.gateway.stop()
            progress("gateway stopped")
        if args.keep_temp:
            progress(f"kept {workdir} (um-data/journal.sqlite, um-data/invoicing/received)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(pages, machine_facts(), year, args, journal_bytes, cpu, load_before)
    if plans:
        print()
        print("EXPLAIN QUERY PLAN (time of one run in this process, then the plan):")
        print("\n".join(plans))
    return 1 if any(page.error for page in pages) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
