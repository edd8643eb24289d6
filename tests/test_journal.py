import threading
from datetime import datetime, timezone

from unified_messaging.journal import Consultation, Journal


def _consultation(i: int) -> Consultation:
    return Consultation(
        at=f"2026-11-22T10:00:{i % 60:02d}", interface="soap", care_provider="81234567890", quality="labo",
        patient="850730*****", period_start="2026-11-22", period_end="2026-11-22", outcome="OK", code=None,
        audit_reference=f"REF{i}", reference=None, duration_ms=1.5,
    )


def test_concurrent_writers_lose_nothing(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", clock=lambda: datetime(2026, 11, 22, tzinfo=timezone.utc))

    def write(start: int) -> None:
        for i in range(start, start + 50):
            journal.record_consultation(_consultation(i))

    threads = [threading.Thread(target=write, args=(n * 50,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert journal.count("consultations") == 400
    assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    latest = journal.consultations(limit=1)[0]
    assert latest["patient"] == "850730*****"
    # a second journal on the same file sees the same data
    assert Journal(tmp_path / "j.sqlite").count("consultations") == 400
