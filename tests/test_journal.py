import os
import stat
import threading
from datetime import datetime, timezone

from unified_messaging.journal import Consultation, Journal
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.store import SecureSpaceStore


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
    assert journal.db.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    latest = journal.consultations(limit=1)[0]
    assert latest["patient"] == "850730*****"
    # a second journal on the same file sees the same data
    assert Journal(tmp_path / "j.sqlite").count("consultations") == 400


def _modes(folder, prefix: str) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.name.startswith(prefix)}


def test_the_journal_and_the_secure_space_are_readable_by_their_owner_only(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    journal.record_consultation(_consultation(1))
    store = SecureSpaceStore.in_data_folder(tmp_path, b"a-master-secret-of-32-bytes-long!", hasher=PasswordHasher(16))
    assert store.users() == []
    modes = {**_modes(tmp_path, "journal.sqlite"), **_modes(tmp_path, "securespace.sqlite")}
    assert {"journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "securespace.sqlite",
            "securespace.sqlite-wal", "securespace.sqlite-shm"} <= set(modes)
    assert {name: oct(mode) for name, mode in modes.items() if mode != 0o600} == {}
    journal.close()
    store.close()


def test_a_journal_made_readable_by_an_older_version_is_made_private(tmp_path):
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    for file in tmp_path.iterdir():
        file.chmod(0o644)
    journal = Journal(path)
    journal.record_consultation(_consultation(2))
    assert set(_modes(tmp_path, "journal.sqlite").values()) == {0o600}
    journal.close()


def test_a_forked_child_writes_with_connections_of_its_own(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    journal.record_consultation(_consultation(1))
    parent_connection = journal.db.connection()
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if it wrote with a new connection
        ok = False
        try:
            ok = journal.db.connection() is not parent_connection
            journal.record_consultation(_consultation(2))
            journal.close()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    journal.record_consultation(_consultation(3))
    assert journal.count("consultations") == 3
    assert journal.db.connection() is parent_connection
    assert journal.db.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
