"""One journal, many writing processes, SIGKILLed at random moments: the file stays sound and keeps
every row that was acknowledged.

What ``serve`` and ``batch run`` do to the journal, compressed: this process keeps the journal open
and writes (the long-lived gateway), a second process writes and now and then closes and opens it
again (a ``batch run`` ending normally, which is when SQLite decides whether it is the last one and
may delete the WAL), and three processes with two threads each write consultations and batch runs
until they are killed with SIGKILL and started again.  A writer prints a row's reference only once
the row's transaction has committed; every printed reference must be in the journal afterwards.
The WAL file that this process holds open must be the same file at the end (if another process had
deleted it from under us, the two would have gone on in two different logs).
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from unified_messaging.journal import Consultation, Journal

ROOT = Path(__file__).resolve().parents[1]
KILLING_SECONDS = 8.0
KILLED_WRITERS = 3

WRITER = r"""
import os, sys, threading
from unified_messaging.journal import BatchFileRun, Consultation, Journal

path, name, threads, reopen_every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stop = path + ".stop"
printing = threading.Lock()

def ack(kind, reference):
    with printing:
        sys.stdout.write(f"{kind} {reference}\n")
        sys.stdout.flush()

def record(journal, reference, i):
    if i % 4 == 3:
        journal.record_batch_file(BatchFileRun(job="integrity", input=reference, status="done",
                                               started_at="2026-11-22T10:00:00", finished_at="2026-11-22T10:00:01",
                                               lines=i, ok=i, errors=0))
        ack("batch", reference)
    else:
        journal.record_consultation(Consultation("2026-11-22T10:00:00", "batch", "81234567890", "labo", "850730*****",
                                                 None, None, "OK", None, None, reference, 1.0))
        ack("consultation", reference)

def work(journal, thread):
    try:
        write(journal, thread)
    except BaseException:
        import traceback
        traceback.print_exc()
        os._exit(3)  # a failing thread fails its process: the test sees it

def write(journal, thread):
    journal.db.connection().execute("PRAGMA wal_autocheckpoint=20")  # many checkpoints (and WAL resets) to be killed in
    i = 0
    while True:
        record(journal, f"{name}-{thread}-{i}", i)
        i += 1
        if reopen_every and i % reopen_every == 0:
            journal.close()
            if os.path.exists(stop):
                return
            journal = Journal(path)
            journal.db.connection().execute("PRAGMA wal_autocheckpoint=20")

journal = Journal(path)
if threads == 1:
    work(journal, 0)
else:
    for t in range(threads):
        threading.Thread(target=work, args=(journal, t), daemon=True).start()
    threading.Event().wait()
"""


class Writer:
    """One writing process; its acknowledgements go to a file (complete lines only are counted)."""

    def __init__(self, path: Path, name: str, *, threads: int = 2, reopen_every: int = 0) -> None:
        self.log = path.parent / f"{name}.acks"
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), name, str(threads), str(reopen_every)],
                cwd=ROOT, stdout=out, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": python_path})

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL, self.process.stderr.read().decode()[-3000:]

    def acknowledged(self) -> list[tuple[str, str]]:
        text = self.log.read_text()
        lines = text.split("\n")[:-1]  # a line cut by the kill has no end of line
        return [tuple(line.split(" ", 1)) for line in lines]


def _consultation(reference: str) -> Consultation:
    return Consultation("2026-11-22T10:00:00", "soap", "81234567890", "labo", "850730*****", None, None, "OK", None,
                        None, reference, 1.0)


def test_writers_killed_at_random_moments_leave_a_sound_journal_with_every_acknowledged_row(tmp_path):
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)  # this process: the long-lived gateway
    journal.record_consultation(_consultation("gateway-first"))
    wal = Path(f"{path}-wal")
    wal_inode = wal.stat().st_ino
    acknowledged: list[tuple[str, str]] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def gateway_writes() -> None:
        i = 0
        try:
            while not stop.is_set():
                journal.record_consultation(_consultation(f"gateway-{i}"))
                acknowledged.append(("consultation", f"gateway-{i}"))
                i += 1
                if i % 25 == 0:
                    journal.consultations(limit=10)
                time.sleep(0.002)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    gateway_thread = threading.Thread(target=gateway_writes)
    gateway_thread.start()
    steady = Writer(path, "steady", threads=1, reopen_every=150)
    finished: list[Writer] = []
    kills = 0
    rng = random.Random()
    try:
        live = [Writer(path, f"killed{n}-0") for n in range(KILLED_WRITERS)]
        deadline = time.monotonic() + KILLING_SECONDS
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.05, 0.5))
            slot = rng.randrange(KILLED_WRITERS)
            live[slot].kill()
            finished.append(live[slot])
            kills += 1
            live[slot] = Writer(path, f"killed{slot}-{kills}")
        for writer in live:
            writer.kill()
            finished.append(writer)
    finally:
        stop.set()
        gateway_thread.join(timeout=60)
        Path(f"{path}.stop").touch()
        try:
            steady.process.wait(timeout=60)
        finally:
            if steady.process.poll() is None:
                steady.process.kill()
    assert not failures, failures
    assert steady.process.returncode == 0, steady.process.stderr.read().decode()[-3000:]
    assert wal.exists() and wal.stat().st_ino == wal_inode, "the WAL this process had open was deleted by another process"

    for writer in [steady, *finished]:
        acknowledged.extend(writer.acknowledged())
    from_killed = sum(len(w.acknowledged()) for w in finished)
    assert kills >= 5 and from_killed > 0, (kills, from_killed)

    journal.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        consultations = [r for (r,) in db.execute("SELECT reference FROM consultations")]
        batch_runs = [r for (r,) in db.execute("SELECT input FROM batch_files")]
    assert len(consultations) == len(set(consultations)) and len(batch_runs) == len(set(batch_runs))
    kept = {("consultation", r) for r in consultations} | {("batch", r) for r in batch_runs}
    lost = [row for row in acknowledged if row not in kept]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged rows are not in the journal: {lost[:5]}"
