"""The consultations' text index (journal/search.py): the same rows as the scan, kept in step, built once."""
from __future__ import annotations

import logging
import random
import sqlite3
from dataclasses import replace

import pytest

from tests.support import INSURED
from unified_messaging.identifiers import mask_ssin
from unified_messaging.journal import Consultation, Journal, search

BASE = Consultation(
    at="2026-11-22T10:00:00.000+00:00", interface="soap", care_provider="81234530000", quality="labo",
    patient="850730*****", period_start="2026-11-22", period_end="2026-11-22", outcome="OK", code=None,
    audit_reference=None, reference=None, duration_ms=12.5,
)
REFERENCES = ("O'Brien \"quoted\"", "50%_OFF", "50%XOFF", "50_OFF", "A\\B", "Lab-Order-42", "ÉCOLE-été",
              "ref 812345***** end", "ref 81234530000 end", "[0-9]*?", "UM-SSIN", None)


def add(journal: Journal, **changes: object) -> int:
    return journal.record_consultation(replace(BASE, **changes))


def ids(journal: Journal, **filters: object) -> tuple[int, list[int]]:
    return (journal.count_consultations(**filters),
            [row["id"] for row in journal.find_consultations(**filters, limit=1000)])


def statements(journal: Journal, call) -> list[str]:
    seen: list[str] = []
    journal.db.connection().set_trace_callback(seen.append)
    try:
        call()
    finally:
        journal.db.connection().set_trace_callback(None)
    return seen


@pytest.fixture
def varied(tmp_path):
    """240 consultations mixing masked patients, NIHIIs, audit references, odd characters, cases."""
    journal = Journal(tmp_path / "journal.sqlite")
    rng = random.Random(16)
    nihiis = ("81234530000", "19912345678", "81234630000")
    patients = ("850730*****", "812345*****", mask_ssin(INSURED[0].ssin), "010101*****", None)
    for n in range(240):
        add(journal, care_provider=rng.choice(nihiis), patient=rng.choice(patients),
            audit_reference=rng.choice((None, f"2606080750{n:04d}", f"aud-7f3e-Zed-{n}")),
            reference=rng.choice(REFERENCES), code=rng.choice((None, "NOT_INSURED", "MSG-001", "SOA-02001")),
            outcome=rng.choice(("OK", "ERROR", "REJECTED")))
    yield journal
    journal.close()


TEXTS = ("812345*****", "81234530000", "19912345678", "8123", "850730*****", INSURED[0].ssin,
         mask_ssin(INSURED[0].ssin), "26060807500042", "2606080750", "AUD-7F3E-zed-1", "o'brien", '"quoted"',
         "\"", "50%_", "%_O", "_OFF", "0_", "A\\B", "[0-9]*?", "*****", "école", "ÉCOLE", "été", "not_ins",
         "ref 812345***** end", "x 812345***** y", "um-ssin", "MSG", "nothing-like-this", "%", "_", "É")


@pytest.mark.parametrize("text", TEXTS)
def test_the_index_finds_exactly_the_rows_of_the_scan(varied, monkeypatch, text):
    indexed = ids(varied, text=text)
    filtered = ids(varied, text=text, outcome="ERROR")
    used = any("MATCH" in sql for sql in statements(varied, lambda: ids(varied, text=text)))
    common = indexed[0] >= search.SAMPLE_ROWS * search.COMMON_SHARE  # the sample is all 240 rows here
    assert used == (len(text) >= 3 and not common)  # "*****": common (see test_a_common_text_keeps_the_scan)
    monkeypatch.setattr(search, "MIN_CHARACTERS", 10_000)  # today's query: a scan of every row
    assert not any("MATCH" in sql for sql in statements(varied, lambda: ids(varied, text=text)))
    assert ids(varied, text=text) == indexed
    assert ids(varied, text=text, outcome="ERROR") == filtered


def test_masked_numbers_nihiis_and_audit_references_are_found(varied):
    masked = {row["care_provider"] for row in varied.find_consultations(text="812345*****", limit=1000)}
    assert masked >= {"81234530000"}  # the NIHII a masked number may stand for
    assert "19912345678" in masked  # a patient shown as 812345***** (or the reference) on that row
    assert {row["care_provider"] for row in varied.find_consultations(text="19912345678", limit=1000)} == \
        {"19912345678"}
    audit = varied.find_consultations(text="aud-7F3E-zed-12")
    assert audit and all("aud-7f3e-Zed-12" in row["audit_reference"] for row in audit)
    ssin = INSURED[0].ssin
    assert {row["patient"] for row in varied.find_consultations(text=ssin, limit=1000)} == {mask_ssin(ssin)}


def test_a_common_text_keeps_the_scan(tmp_path):
    """When the newest rows show a text to be common, the scan finds a page at once: no index."""
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        for n in range(search.SAMPLE_ROWS // 4):
            add(journal, reference=f"R-{n}", care_provider="19912345678" if n % 2 else "81234530000")
        sql = statements(journal, lambda: journal.count_consultations(text="19912345678"))
        assert not any("MATCH" in s for s in sql)
        assert journal.count_consultations(text="19912345678") == search.SAMPLE_ROWS // 8
        assert any("MATCH" in s for s in statements(journal, lambda: journal.count_consultations(text="R-12")))
    finally:
        journal.close()


def test_the_index_follows_inserts_updates_and_deletes(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        first = add(journal, reference="FIRST-ONE")
        add(journal, reference="SECOND-ONE")
        assert ids(journal, text="first-one") == (1, [first])
        with journal.write() as tx:
            tx.execute("UPDATE consultations SET reference = 'RENAMED-ONE' WHERE id = :id", {"id": first})
        assert ids(journal, text="first-one") == (0, [])
        assert ids(journal, text="renamed") == (1, [first])
        with journal.write() as tx:
            tx.execute("DELETE FROM consultations WHERE id = :id", {"id": first})
        assert ids(journal, text="renamed") == (0, [])
        assert ids(journal, text="-ONE")[0] == 1
        with journal.write() as tx:  # FTS5 raises if the index and the table disagree
            tx.execute("INSERT INTO consultations_text(consultations_text) VALUES ('integrity-check')")
    finally:
        journal.close()


def test_a_journal_made_before_the_index_gets_it_filled_once(tmp_path, caplog):
    path = tmp_path / "old.sqlite"
    Journal(path).close()
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE consultations_text; DROP TRIGGER consultations_text_insert; "
                       "DROP TRIGGER consultations_text_delete; DROP TRIGGER consultations_text_update;")
    conn.executemany("INSERT INTO consultations (at, interface, outcome, reference, audit_reference, duration_ms) "
                     "VALUES ('2026-01-05T10:00:00.000+00:00', 'soap', 'OK', ?, ?, 3)",
                     [(f"OLD-{n}", f"AUDIT-{n:05d}") for n in range(500)])
    conn.commit()
    conn.close()
    with caplog.at_level(logging.INFO, logger="unified_messaging.journal.search"):
        journal = Journal(path)
        journal.close()
        journal = Journal(path)  # opened again: nothing to build
    try:
        built = [r.getMessage() for r in caplog.records if "text search index built" in r.getMessage()]
        assert len(built) == 1 and "over 500 consultation(s)" in built[0], built
        assert any("MATCH" in s for s in statements(journal, lambda: journal.count_consultations(text="audit-00042")))
        assert [row["reference"] for row in journal.find_consultations(text="audit-00042")] == ["OLD-42"]
        new = add(journal, reference="NEW-AFTER")
        assert [row["id"] for row in journal.find_consultations(text="new-after")] == [new]
    finally:
        journal.close()


def test_the_index_query_takes_every_character_literally():
    assert search.match_query("ab") is None
    assert search.match_query('a"b') == '("a""b")'
    assert search.match_query("x*y") == '("x*y")'
    # every third trigram and the last: they cover every character
    assert search.match_query("812345*****") == '("812" AND "345" AND "***") OR (("812" AND "345"))'
