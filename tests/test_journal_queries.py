"""The journal's read queries for the UI, on real SQLite files: filters, pages, months, batch runs."""
from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from tests.support import HEADER, INSURED, write_job
from unified_messaging.identifiers import mask_ssin
from unified_messaging.insurability.batch import BatchRunner
from unified_messaging.insurability.batch_job import load_batch_job
from unified_messaging.journal import BatchFileRun, Consultation, Journal

BASE = Consultation(
    at="2026-11-22T10:00:00.000+00:00", interface="soap", care_provider="81234530000", quality="labo",
    patient="850730*****", period_start="2026-11-22", period_end="2026-11-22", outcome="OK", code=None,
    audit_reference=None, reference=None, duration_ms=12.5,
)


def add(journal: Journal, **changes: object) -> int:
    return journal.record_consultation(replace(BASE, **changes))


def refs(rows: list[dict]) -> list[str]:
    return [r["reference"] for r in rows]


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


@pytest.fixture
def year(journal):
    """Eleven consultations over three months (October and December 2026, January 2027; none in November)."""
    rows = [
        ("2026-10-01T00:00:00.000+00:00", "soap", "OK", None, "A1"),
        ("2026-10-15T08:00:00.000+00:00", "folder", "ERROR", "MSG-001", "A2"),
        ("2026-10-31T23:59:59.999+00:00", "batch", "REJECTED", "UM-SSIN", "A3"),
        ("2026-12-01T00:00:00.000+00:00", "soap", "OK", None, "B1"),
        ("2026-12-10T09:30:00.000+00:00", "soap", "ERROR", "MSG-001", "B2"),
        ("2026-12-11T09:30:00.000+00:00", "batch", "FAULT", "SOA-02001", "B3"),
        ("2026-12-24T12:00:00.000+00:00", "folder", "UNAVAILABLE", None, "B4"),
        ("2026-12-31T23:59:59.999+00:00", "batch", "ERROR", "MSG-002", "B5"),
        ("2027-01-01T00:00:00.000+00:00", "soap", "OK", None, "C1"),
        ("2027-01-02T00:00:00.000+00:00", "soap", "REJECTED", "UM-NIHII", "C2"),
        ("2027-01-03T00:00:00.000+00:00", "folder", "ERROR", "MSG-001", "C3"),
    ]
    for at, interface, outcome, code, reference in rows:
        add(journal, at=at, interface=interface, outcome=outcome, code=code, reference=reference)
    return journal


# ------------------------------------------------------------------------------ find / count
def test_no_filter_is_every_consultation_newest_first(year):
    assert refs(year.find_consultations()) == ["C3", "C2", "C1", "B5", "B4", "B3", "B2", "B1", "A3", "A2", "A1"]
    assert year.count_consultations() == 11
    assert year.find_consultations(outcome="", month="", text="  ", interface="") == year.find_consultations()


def test_newest_first_is_by_insertion_not_by_date(journal):
    add(journal, at="2026-12-02T00:00:00.000+00:00", reference="LATER-DATE")
    add(journal, at="2026-12-01T00:00:00.000+00:00", reference="INSERTED-LAST")
    assert refs(journal.find_consultations()) == ["INSERTED-LAST", "LATER-DATE"]


def test_pages(year):
    assert refs(year.find_consultations(limit=4)) == ["C3", "C2", "C1", "B5"]
    assert refs(year.find_consultations(limit=4, offset=4)) == ["B4", "B3", "B2", "B1"]
    assert refs(year.find_consultations(limit=4, offset=8)) == ["A3", "A2", "A1"]
    assert year.find_consultations(limit=4, offset=12) == []
    assert year.find_consultations(limit=0) == []
    assert refs(year.find_consultations(outcome="ERROR", limit=2, offset=1)) == ["B5", "B2"]
    with pytest.raises(ValueError, match="cannot be negative"):
        year.find_consultations(offset=-1)
    with pytest.raises(ValueError, match="cannot be negative"):
        year.find_consultations(limit=-1)


def test_a_page_counts_up_to_its_bound_and_pages_as_find_consultations(year):
    page = year.consultation_page(number=1, size=2, counted=4)  # 11 rows, counted up to 4
    assert refs(page.rows) == ["C3", "C2"] and (page.total, page.more, page.last) == (4, True, 2)
    third = year.consultation_page(number=3, size=2, counted=4)  # the page asked moves the bound
    assert refs(third.rows) == ["B4", "B3"] and (third.total, third.more, third.last) == (6, True, 3)
    last = year.consultation_page(number=6, size=2, counted=4)
    assert refs(last.rows) == ["A1"] and (last.number, last.total, last.more, last.last) == (6, 11, False, 6)
    beyond = year.consultation_page(number=99, size=2, counted=4)  # past the last: the last
    assert refs(beyond.rows) == ["A1"] and beyond.number == 6
    errors = year.consultation_page(number=1, size=2, counted=40, outcome="ERROR", month="2026-10")
    assert refs(errors.rows) == refs(year.find_consultations(outcome="ERROR", month="2026-10", limit=2))
    assert (errors.total, errors.more) == (year.count_consultations(outcome="ERROR", month="2026-10"), False)
    assert year.count_consultations(at_most=3) == 3 and year.count_consultations(at_most=30) == 11
    none = year.consultation_page(number=1, size=2, counted=4, text="no such text")
    assert (none.rows, none.total, none.more, none.last) == ([], 0, False, 1)
    with pytest.raises(ValueError, match="at least 1"):
        year.consultation_page(number=0, size=2, counted=4)


def test_the_rows_are_the_journal_columns(year):
    (row,) = year.find_consultations(limit=1)
    assert row["reference"] == "C3" and row["patient"] == "850730*****" and row["duration_ms"] == 12.5
    assert set(row) == {"id", "at", "interface", "care_provider", "quality", "patient", "period_start",
                        "period_end", "outcome", "code", "audit_reference", "reference", "duration_ms", "client",
                        "upstream_service"}


@pytest.mark.parametrize("outcome, expected", [
    ("OK", ["C1", "B1", "A1"]), ("ERROR", ["C3", "B5", "B2", "A2"]), ("REJECTED", ["C2", "A3"]),
    ("FAULT", ["B3"]), ("UNAVAILABLE", ["B4"]), ("ok", []), ("NOPE", []),
])
def test_outcome(year, outcome, expected):
    assert refs(year.find_consultations(outcome=outcome)) == expected
    assert year.count_consultations(outcome=outcome) == len(expected)


@pytest.mark.parametrize("interface, expected", [
    ("soap", ["C2", "C1", "B2", "B1", "A1"]), ("folder", ["C3", "B4", "A2"]), ("batch", ["B5", "B3", "A3"]),
    ("mybox", []),
])
def test_interface(year, interface, expected):
    assert refs(year.find_consultations(interface=interface)) == expected
    assert year.count_consultations(interface=interface) == len(expected)


@pytest.mark.parametrize("month, expected", [
    ("2026-10", ["A3", "A2", "A1"]),  # the first and the last millisecond of the month are in it
    ("2026-11", []),
    ("2026-12", ["B5", "B4", "B3", "B2", "B1"]),  # December's end is January of the next year
    ("2027-01", ["C3", "C2", "C1"]),
    ("2025-10", []),
])
def test_month(year, month, expected):
    assert refs(year.find_consultations(month=month)) == expected
    assert year.count_consultations(month=month) == len(expected)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-1", "26-10", "2026/10", "2026-10-01", "2026-10\n",
                                   "october"])
def test_a_month_that_is_not_yyyy_mm_is_refused(year, month):
    with pytest.raises(ValueError, match="YYYY-MM"):
        year.find_consultations(month=month)
    with pytest.raises(ValueError, match="YYYY-MM"):
        year.count_consultations(month=month)


def test_filters_combine(year):
    assert refs(year.find_consultations(outcome="ERROR", month="2026-12")) == ["B5", "B2"]
    assert refs(year.find_consultations(outcome="ERROR", month="2026-12", interface="batch")) == ["B5"]
    assert refs(year.find_consultations(outcome="ERROR", text="msg-001")) == ["C3", "B2", "A2"]
    assert refs(year.find_consultations(outcome="ERROR", text="msg-001", month="2027-01")) == ["C3"]
    assert refs(year.find_consultations(outcome="ERROR", text="msg-001", month="2027-01", interface="soap")) == []
    assert refs(year.find_consultations(interface="soap", month="2027-01", limit=1, offset=1)) == ["C1"]
    for filters, n in (({"outcome": "ERROR", "month": "2026-12"}, 2), ({"text": "MSG-001", "interface": "folder"}, 2),
                       ({"outcome": "OK", "month": "2026-11"}, 0), ({"text": "um-", "month": "2026-10"}, 1),
                       ({"outcome": "ERROR", "text": "msg", "month": "2026-12", "interface": "batch"}, 1)):
        assert year.count_consultations(**filters) == n == len(year.find_consultations(**filters, limit=100))


def test_text_is_found_in_each_searched_column_ignoring_case(journal):
    add(journal, patient="940101*****", reference="P")
    add(journal, audit_reference="aud-7f3e-Zed", reference="AUDIT")
    add(journal, reference="Lab-Order-42")
    add(journal, care_provider="19912345678", reference="NIHII")
    add(journal, code="NOT_INSURED", outcome="ERROR", reference="CODE")
    add(journal, quality="nurse", interface="folder", reference="OTHER")  # quality and interface are not searched
    for text, expected in (("940101", ["P"]), ("7F3E-z", ["AUDIT"]), ("lab-ORDER", ["Lab-Order-42"]),
                           ("19912345678", ["NIHII"]), ("not_ins", ["CODE"]), ("nurse", []), ("folder", []),
                           ("  Lab-Order-42  ", ["Lab-Order-42"])):
        assert refs(journal.find_consultations(text=text)) == expected, text
        assert journal.count_consultations(text=text) == len(expected)


def test_percent_and_underscore_in_the_text_are_plain_characters(journal):
    for reference in ("50%_OFF", "50%XOFF", "50ABOFF", "50_OFF", "5", "A\\B", "A-B"):
        add(journal, reference=reference)
    assert refs(journal.find_consultations(text="50%_")) == ["50%_OFF"]
    assert refs(journal.find_consultations(text="%")) == ["50%XOFF", "50%_OFF"]
    assert refs(journal.find_consultations(text="_off")) == ["50_OFF", "50%_OFF"]
    assert refs(journal.find_consultations(text="0_")) == ["50_OFF"]
    assert refs(journal.find_consultations(text="A\\B")) == ["A\\B"]
    assert journal.count_consultations(text="%") == 2 and journal.count_consultations(text="_") == 2


def test_a_full_ssin_in_the_search_finds_its_masked_patient(journal):
    ssin = INSURED[0].ssin
    add(journal, patient=mask_ssin(ssin), reference="HIM")
    add(journal, patient="010101*****", reference="OTHER")
    assert refs(journal.find_consultations(text=ssin)) == ["HIM"]
    assert refs(journal.find_consultations(text=ssin[:6])) == ["HIM"]
    assert journal.count_consultations(text=ssin) == 1


def test_an_empty_journal(journal):
    assert journal.find_consultations() == [] and journal.count_consultations() == 0
    assert journal.consultation_months() == []
    assert journal.consultations_per_month() == [] and journal.consultation_codes() == []
    assert journal.batch_runs() == [] and journal.count_batch_runs() == 0 and journal.batch_jobs() == []


# ------------------------------------------------------------------------------ months and figures
def test_months_present_newest_first(year):
    assert year.consultation_months() == ["2027-01", "2026-12", "2026-10"]


def test_per_month_and_outcome(year):
    assert year.consultations_per_month() == [
        {"month": "2027-01", "outcome": "ERROR", "n": 1}, {"month": "2027-01", "outcome": "OK", "n": 1},
        {"month": "2027-01", "outcome": "REJECTED", "n": 1},
        {"month": "2026-12", "outcome": "ERROR", "n": 2}, {"month": "2026-12", "outcome": "FAULT", "n": 1},
        {"month": "2026-12", "outcome": "OK", "n": 1}, {"month": "2026-12", "outcome": "UNAVAILABLE", "n": 1},
        {"month": "2026-10", "outcome": "ERROR", "n": 1}, {"month": "2026-10", "outcome": "OK", "n": 1},
        {"month": "2026-10", "outcome": "REJECTED", "n": 1},
    ]
    # the last 2 months *present*: January and December (November has none, so October is out)
    assert {r["month"] for r in year.consultations_per_month(months=2)} == {"2027-01", "2026-12"}
    assert {r["month"] for r in year.consultations_per_month(months=1)} == {"2027-01"}
    assert sum(r["n"] for r in year.consultations_per_month(months=99)) == 11
    with pytest.raises(ValueError):
        year.consultations_per_month(months=0)


def test_codes_of_the_consultations_that_were_not_ok(year):
    add(year, at="2027-01-04T00:00:00.000+00:00", outcome="OK", code="MSG-002", reference="OK-WITH-A-CODE")
    assert year.consultation_codes() == [
        {"code": "MSG-001", "n": 3}, {"code": "MSG-002", "n": 1}, {"code": "SOA-02001", "n": 1},
        {"code": "UM-NIHII", "n": 1}, {"code": "UM-SSIN", "n": 1},
    ]  # most frequent first, then by code; UNAVAILABLE (no code) and OK are not counted
    assert year.consultation_codes(top=0) == []
    with pytest.raises(ValueError):
        year.consultation_codes(top=-1)
    assert year.consultation_codes(top=2) == [{"code": "MSG-001", "n": 3}, {"code": "MSG-002", "n": 1}]
    assert year.consultation_codes(months=1) == [{"code": "MSG-001", "n": 1}, {"code": "UM-NIHII", "n": 1}]
    assert year.consultation_codes(months=2) == [
        {"code": "MSG-001", "n": 2}, {"code": "MSG-002", "n": 1}, {"code": "SOA-02001", "n": 1},
        {"code": "UM-NIHII", "n": 1},
    ]


def test_only_ok_consultations_have_no_codes(journal):
    add(journal)
    assert journal.consultation_codes() == []
    assert journal.consultations_per_month() == [{"month": "2026-11", "outcome": "OK", "n": 1}]


def test_month_filters_and_figures_use_an_index(year):
    """EXPLAIN QUERY PLAN of every statement the queries run: no full scan of the consultations."""
    statements: list[str] = []
    year.db.connection().set_trace_callback(statements.append)
    year.find_consultations(month="2026-12")
    year.count_consultations(month="2026-12")
    year.find_consultations(month="2026-12", outcome="ERROR")
    year.count_consultations(month="2026-12", outcome="ERROR")
    year.find_consultations(month="2026-12", text="msg", interface="soap")
    year.find_consultations(outcome="ERROR", offset=1)
    year.consultation_months()
    year.consultations_per_month()
    year.consultation_codes()
    year.db.connection().set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(selects) == 9  # the months, the per-month counts and the codes are one statement each
    conn = sqlite3.connect(year.path)
    try:
        for sql in selects:
            details = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            plan = " | ".join(details)
            table_scans = [d for d in details if d.startswith("SCAN") and d.split()[1] in ("consultations", "c")]
            assert not table_scans and "INDEX" in plan, (sql, plan)  # the CTEs' own rows are scanned, not the table
            if "at >=" in sql or "at <" in sql:
                assert "at>?" in plan or "at<?" in plan, (sql, plan)
        outcome_page = next(s for s in selects if "outcome =" in s and "ORDER BY id DESC" in s and "at >=" not in s)
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + outcome_page))
        assert "consultations_outcome_id" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        conn.close()


FIRST_CONSULTATIONS = """
    CREATE TABLE consultations (id INTEGER PRIMARY KEY, at TEXT NOT NULL, interface TEXT NOT NULL,
        care_provider TEXT, quality TEXT, patient TEXT, period_start TEXT, period_end TEXT,
        outcome TEXT NOT NULL, code TEXT, audit_reference TEXT, reference TEXT, duration_ms REAL NOT NULL);
"""  # the consultations table of the first release


def test_an_existing_journal_gets_the_new_table_and_indexes(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(FIRST_CONSULTATIONS + """
        CREATE INDEX consultations_at ON consultations(at);
        CREATE INDEX consultations_outcome ON consultations(outcome, at);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO consultations(at, interface, outcome, reference, duration_ms)
            VALUES ('2026-01-05T10:00:00.000+00:00', 'soap', 'OK', 'OLD', 3);
    """)
    conn.close()
    journal = Journal(path)
    try:
        assert refs(journal.find_consultations(month="2026-01")) == ["OLD"]
        names = {r[0] for r in journal.db.connection().execute("SELECT name FROM sqlite_master")}
        assert {"batch_files", "consultations_outcome_id", "batch_files_job", "batch_files_status",
                "consultations_service_id"} <= names
        assert refs(journal.find_consultations(service="genins")) == ["OLD"]  # sent before MemberData existed
        assert journal.batch_runs() == []
    finally:
        journal.close()


# ------------------------------------------------------------------------------ batch runs
def run_of(**changes: object) -> BatchFileRun:
    fields = {"job": "/jobs/a/batch.properties", "input": "a.csv", "status": "done",
              "started_at": "2026-11-22T10:00:00.000+00:00", "finished_at": "2026-11-22T10:00:05.000+00:00",
              "lines": 3, "ok": 2, "errors": 1, "resumed_at": 0, "output": "a.result.csv"}
    return BatchFileRun(**{**fields, **changes})


def test_batch_runs_filters_pages_and_jobs(journal):
    ids = [
        journal.record_batch_file(run_of(input="1.csv")),
        journal.record_batch_file(run_of(input="2.csv", status="rejected", lines=None, ok=None, errors=None,
                                         resumed_at=None, output=None, reason="The file is empty.")),
        journal.record_batch_file(run_of(job="/jobs/b/batch.properties", input="3.csv", status="stopped",
                                         output=None, reason="MyCareNet could not be reached")),
        journal.record_batch_file(run_of(job="/jobs/b/batch.properties", input="4.csv", resumed_at=2)),
    ]
    assert ids == sorted(ids)
    assert [r["input"] for r in journal.batch_runs()] == ["4.csv", "3.csv", "2.csv", "1.csv"]
    assert [r["input"] for r in journal.batch_runs(limit=2, offset=1)] == ["3.csv", "2.csv"]
    assert [r["input"] for r in journal.batch_runs(job="/jobs/a/batch.properties")] == ["2.csv", "1.csv"]
    assert [r["input"] for r in journal.batch_runs(status="done")] == ["4.csv", "1.csv"]
    assert [r["input"] for r in journal.batch_runs(job="/jobs/b/batch.properties", status="done")] == ["4.csv"]
    assert journal.batch_runs(job="/jobs/a/batch.properties", status="stopped") == []
    assert journal.count_batch_runs() == 4
    assert journal.count_batch_runs(job="/jobs/b/batch.properties") == 2
    assert journal.count_batch_runs(status="rejected") == 1
    assert journal.count_batch_runs(job="/jobs/a/batch.properties", status="done") == 1
    assert journal.batch_jobs() == ["/jobs/a/batch.properties", "/jobs/b/batch.properties"]
    rejected = journal.batch_runs(status="rejected")[0]
    assert rejected == {"id": ids[1], "job": "/jobs/a/batch.properties", "input": "2.csv", "status": "rejected",
                        "lines": None, "ok": None, "errors": None, "resumed_at": None, "output": None,
                        "reason": "The file is empty.", "started_at": "2026-11-22T10:00:00.000+00:00",
                        "finished_at": "2026-11-22T10:00:05.000+00:00"}
    with pytest.raises(ValueError, match="cannot be negative"):
        journal.batch_runs(limit=-5)


def test_a_busy_run_is_not_a_batch_file_run(journal):
    with pytest.raises(ValueError, match="done, rejected, stopped"):
        journal.record_batch_file(run_of(status="busy"))
    assert journal.count_batch_runs() == 0


def test_a_batch_run_stores_no_full_ssin(gateway, tmp_path):
    """An SSIN in a file name or in the reason a file is rejected reaches the journal masked only."""
    ssin = INSURED[0].ssin
    job = load_batch_job(write_job(tmp_path))
    (job.input_folder / f"{ssin}.csv").write_text(f"ssin;period_start;{ssin}\n{ssin};2025-10-01;X\n")
    (job.input_folder / "ok.csv").write_text(f"{HEADER}\n{ssin};2025-10-01;;{ssin}\n")
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    try:
        summary = BatchRunner(job, gateway.insurability, journal=journal).run()
        assert [f.status for f in summary.files] == ["rejected", "done"]
        assert ssin in summary.files[0].reason  # the person reading the error folder sees the whole line
        rejected, done = reversed(journal.batch_runs())
        assert rejected["input"] == f"{ssin[:6]}*****.csv" and f"'{ssin[:6]}*****'" in rejected["reason"]
        assert done["input"] == "ok.csv" and (done["lines"], done["ok"], done["errors"]) == (1, 1, 0)
    finally:
        journal.close()
    for file in tmp_path.glob("journal.sqlite*"):
        assert ssin.encode() not in file.read_bytes(), file


def test_a_masked_number_finds_the_full_numbers_it_may_stand_for(journal):
    """Mybox searches with what it shows (``812345*****``); a care provider's NIHII is kept in full."""
    for nihii, patient in (("81234530000", "850730*****"), ("19876543210", "812345*****"), ("81234630000", "-")):
        journal.record_consultation(Consultation(
            at="2026-11-02T10:00:00.000+00:00", interface="soap", care_provider=nihii, quality="labo",
            patient=patient, period_start="2026-11-02", period_end="2026-11-02", outcome="OK", code=None,
            audit_reference=None, reference=None, duration_ms=1.0))
    found = {row["care_provider"] for row in journal.find_consultations(text="812345*****")}
    assert found == {"81234530000", "19876543210"}  # the NIHII, and the patient shown that way
    assert journal.count_consultations(text="812345*****") == 2
    assert journal.count_consultations(text="81234*****") == 0  # not a masked 11-digit number: taken literally
