"""The dashboard's kept figures (web/figures.py): what can still change is read again, the rest is kept."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal import Consultation, Journal
from unified_messaging.web.figures import DashboardFigures, delay_counts

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
BASE = Consultation(
    at="2026-12-01T10:00:00.000+00:00", interface="soap", care_provider="81234530000", quality="labo",
    patient="850730*****", period_start="2026-12-01", period_end="2026-12-01", outcome="OK", code=None,
    audit_reference=None, reference=None, duration_ms=12.5,
)
CODES = ("920098", "920099", "920999")


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def add(journal: Journal, month: str, outcome: str = "OK", code: str | None = None) -> None:
    journal.record_consultation(replace(BASE, at=f"{month}-03T10:00:00.000+00:00", outcome=outcome, code=code))


def test_the_newest_months_are_read_again_and_the_closed_ones_kept(journal):
    figures = DashboardFigures(lambda: NOW)
    for month in ("2026-09", "2026-10", "2026-11", "2026-12"):
        add(journal, month)
    assert figures.consultations_per_month(journal) == journal.consultations_per_month(months=12)
    add(journal, "2026-12", "ERROR", "MSG-001")  # the current month grows
    add(journal, "2026-11")  # the month before too (a call that ended after midnight)
    assert figures.consultations_per_month(journal) == journal.consultations_per_month(months=12)
    add(journal, "2026-09")  # a closed month cannot grow: it is not read again
    kept = {(r["month"], r["outcome"]): r["n"] for r in figures.consultations_per_month(journal)}
    assert kept[("2026-09", "OK")] == 1 and kept[("2026-12", "ERROR")] == 1 and kept[("2026-11", "OK")] == 2
    add(journal, "2027-01")  # a new month: everything read again
    assert figures.consultations_per_month(journal) == journal.consultations_per_month(months=12)


def test_an_empty_journal_then_the_first_consultation(journal):
    figures = DashboardFigures(lambda: NOW)
    assert figures.consultations_per_month(journal) == []
    add(journal, "2026-12")
    assert figures.consultations_per_month(journal) == [{"month": "2026-12", "outcome": "OK", "n": 1}]


def _file(store: InvoicingStore, name: str) -> int:
    return store.record_file(name=name, size=10, sha256=name.encode().hex().ljust(64, "0"), zone_204=None,
                             destination="131", is_test=True, state="sent", work_name=None, status="OK")


def _feedback(store: InvoicingStore, file_id: int, code: str, errors: dict[str, int]) -> None:
    store.record_feedback(message_key=f"{file_id}-{code}", file_id=file_id, zone_204=None, code=code,
                          nip_reference=None, output_reference=None, received_name=f"{file_id}-{code}.txt",
                          probative_name=None, status="ONGOING", error_counts=errors, record_count=3)


def test_the_invoicing_figures_are_kept_until_a_row_is_added(journal):
    clock = [NOW]
    store = InvoicingStore(journal, clock=lambda: clock[0])
    figures = DashboardFigures(lambda: clock[0])
    first = _file(store, "A.txt")
    _feedback(store, first, "920098", {"B": 2, "F": 0})
    shown = figures.invoicing(store, CODES)
    assert shown.delays == delay_counts(store.feedback_delays(months=12)) and shown.codes == {"920098"}
    assert shown.categories == store.error_categories(months=12, codes=CODES) and shown.categories["B"] == 2
    assert figures.invoicing(store, CODES) is shown  # nothing added: kept
    store.update_file(first, status="ONGOING")  # a file's status is not in these figures
    assert figures.invoicing(store, CODES) is shown
    _feedback(store, first, "920099", {"B": 1, "R": 4})
    again = figures.invoicing(store, CODES)
    assert again.codes == {"920098", "920099"} and again.categories["R"] == 4 and again.categories["B"] == 3
    second = _file(store, "B.txt")
    assert figures.invoicing(store, CODES) is not again  # a new file: read again
    store.record_tack(tack_key="t-1", file_id=second, input_reference=None, reference=None, success=True,
                      message=None, probative_name=None)
    kept = figures.invoicing(store, CODES)
    assert kept == figures.invoicing(store, CODES)
    clock[0] = datetime(2027, 12, 7, 12, 0, tzinfo=timezone.utc)  # the period (2027) moved past them
    moved = figures.invoicing(store, CODES)
    assert moved.codes == frozenset() and moved.delays == {} and moved.categories["B"] == 0


def test_the_buckets_of_the_delays():
    rows = [{"code": "931000", "seconds": 60}, {"code": "931000", "seconds": 3599.9},
            {"code": "920098", "seconds": 3600}, {"code": "920900", "seconds": 30 * 86400}]
    assert delay_counts(rows) == {("< 1 h", "931000"): 2, ("1–6 h", "920098"): 1, ("> 7 d", "920900"): 1}
