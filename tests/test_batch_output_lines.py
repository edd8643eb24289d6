"""The ``.part`` file's grouped writes and SQLite's lone writing statements (issue #16)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from unified_messaging.database.sqlite import SqliteDatabase
from unified_messaging.insurability.batch_input import parse_date
from unified_messaging.insurability.batch_job import BatchJob
from unified_messaging.insurability.batch_output import OUTPUT_COLUMNS, PartFile


def _job(tmp_path: Path) -> BatchJob:
    return BatchJob(source=tmp_path / "batch.properties", input_folder=tmp_path, output_folder=tmp_path,
                    archive_folder=tmp_path, error_folder=tmp_path)


def test_lines_ready_together_go_in_one_write_and_a_torn_last_line_is_cut_off_on_reopening(tmp_path, monkeypatch):
    job, part = _job(tmp_path), tmp_path / ".a.result.csv.part"
    header = ["ssin", "period_start"]
    with PartFile(part, header, job) as out:
        writes: list[int] = []
        real_write = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: writes.append(len(data)) or real_write(fd, data))
        out.write_lines([["1", "a;b"], ["2", 'say "x"'], ["3", "c"]])
        monkeypatch.undo()
        assert len(writes) == 1 and out.done == 3
    with open(part, "ab") as torn:
        torn.write(b"4;2025-10-")  # a power loss in the middle of the next write
    with PartFile(part, header, job) as out:
        assert out.done == 3
    text = part.read_bytes().decode()
    assert text.endswith('\r\n1;"a;b"\r\n2;"say ""x"""\r\n3;c\r\n') and text.startswith(";".join(header + list(OUTPUT_COLUMNS)))


def test_lone_inserts_from_many_threads_commit_every_row_with_its_own_id(tmp_path):
    db = SqliteDatabase(tmp_path / "t.sqlite", "journal")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, thread INTEGER, n INTEGER)")
    ids: list[int] = []

    def writer(thread: int) -> None:
        for n in range(50):
            ids.append(db.insert("INSERT INTO t (thread, n) VALUES (:thread, :n)", {"thread": thread, "n": n}))
        assert not db.connection().in_transaction

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 800
    assert sorted(ids) == [r["id"] for r in db.query("SELECT id FROM t ORDER BY id")]
    assert db.execute("UPDATE t SET n = n + 1 WHERE thread = :thread", {"thread": 3}) == 50
    other = SqliteDatabase(tmp_path / "t.sqlite", "journal")  # another connection sees it committed
    assert other.query("SELECT count(*) AS n FROM t")[0]["n"] == 800
    other.close()
    db.close()


def test_dates_read_the_same_with_and_without_the_fast_path():
    for text, expected in [("2025-10-01", "2025-10-01"), (" 2025-1-5 ", "2025-01-05"), ("01/10/2025", "2025-10-01"),
                           ("20251001", "2025-10-01")]:
        assert str(parse_date(text, "period_start")) == expected
    for bad in ("2025-02-30", "2025-10-0x", "2025-13-01", ""):
        try:
            parse_date(bad, "period_start")
        except Exception as exc:  # LineProblem
            assert "is not a date" in str(exc)
        else:
            raise AssertionError(bad)
