"""``unified-messaging batch run`` as a user runs it, including a SIGKILL in the middle of a batch."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support import CLI, HEADER, INSURED, read_output, write_job
from unified_messaging.journal import Journal
from unified_messaging.simulator.platform import DEMO_PKI_FOLDER


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "batch", "run", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def gateway_config(tmp_path: Path, gateway, latency_ms: int = 0) -> Path:
    """A configuration with a data folder of the test's own, with the session gateway's demo keys.

    Never the session gateway's data folder itself: the batch processes started (and killed) here
    would write the journal that the session's gateway keeps open, and the test would depend on
    everything else the session did with that file.
    """
    data = tmp_path / "um-data"
    if not data.exists():
        shutil.copytree(gateway.config.data_folder / DEMO_PKI_FOLDER, data / DEMO_PKI_FOLDER)
    conf = tmp_path / "um.toml"
    conf.write_text(f'[data]\nfolder = "{data}"\n[simulator]\nlatency_ms = {latency_ms}\n')
    return conf


def batch_runs(tmp_path: Path, job: Path) -> list[dict]:
    """The job's runs in the test's own journal (where the web UI would read them)."""
    journal = Journal(tmp_path / "um-data" / "journal.sqlite")
    try:
        return journal.batch_runs(job=str(job.resolve()))
    finally:
        journal.close()


def test_the_old_connection_value_stops_the_command_with_the_change_to_make(tmp_path, gateway):
    job = write_job(tmp_path, **{"mycarenet.connection": "DIRECT"})
    done = run_cli(str(job), "--config", str(gateway_config(tmp_path, gateway)), cwd=tmp_path)
    assert done.returncode == 1
    assert "mycarenet.connection = DIRECT" in done.stderr and "mycarenet.connection=SSO" in done.stderr


def test_a_run_prints_a_progress_bar_and_the_summary(tmp_path, gateway):
    job = write_job(tmp_path)
    (tmp_path / "in" / "a.csv").write_text(f"{HEADER}\n{INSURED[0].ssin};2025-10-01;;A\n"
                                           f"{INSURED[0].ssin};2025-99-01;;B\n")
    (tmp_path / "in" / "b.csv").write_text("wrong;columns\n")
    done = run_cli(str(job), "--config", str(gateway_config(tmp_path, gateway)), cwd=tmp_path)
    assert done.returncode == 3, done.stderr  # a file went to the error folder
    assert "1 file(s) done (2 lines: 1 OK, 1 ERROR), 1 rejected" in done.stdout
    assert "b.csv: not processed, moved to" in done.stdout
    assert "a.csv" in done.stderr  # the progress bar (click draws only its label when not on a terminal)
    assert INSURED[0].ssin not in done.stdout + done.stderr
    # the run is in the journal, for the web UI
    runs = {r["input"]: r for r in batch_runs(tmp_path, job)}
    assert (runs["a.csv"]["status"], runs["a.csv"]["lines"], runs["a.csv"]["ok"], runs["a.csv"]["errors"],
            runs["a.csv"]["output"]) == ("done", 2, 1, 1, "a.result.csv")
    assert runs["b.csv"]["status"] == "rejected" and "unknown column(s) 'wrong'" in runs["b.csv"]["reason"]
    assert runs["b.csv"]["reason"] == (tmp_path / "error" / "b.csv.reason.txt").read_text().strip()


def test_killed_in_the_middle_of_a_batch_the_next_run_neither_loses_nor_duplicates(tmp_path, gateway):
    job = write_job(tmp_path, **{"max.parallel": "4"})
    count = 600
    lines = [f"{INSURED[i % 2].ssin};2025-10-01;;K{i:04d}" for i in range(count)]
    (tmp_path / "in" / "kill.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    conf = gateway_config(tmp_path, gateway, latency_ms=15)
    part = tmp_path / "out" / ".kill.result.csv.part"
    process = subprocess.Popen([CLI, "batch", "run", str(job), "--config", str(conf), "--quiet"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if part.exists() and part.read_bytes().count(b"\n") > 100:
                break
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    written = len(read_output(part)) - 1
    assert 100 <= written < count, "the batch was not killed in its middle"
    assert (tmp_path / "in" / "kill.csv").exists()

    done = run_cli(str(job), "--config", str(gateway_config(tmp_path, gateway)), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"continued after line {written}" in done.stdout or f"continued after line {written - 1}" in done.stdout
    rows = read_output(tmp_path / "out" / "kill.result.csv")
    assert rows[0][:4] == HEADER.split(";")
    assert [r[3] for r in rows[1:]] == [f"K{i:04d}" for i in range(count)]
    assert all(r[4] == "OK" for r in rows[1:])
    assert len({r[6] for r in rows[1:]}) == count
    assert (tmp_path / "archive" / "kill.csv").exists() and not part.exists()
    # the killed run left no row (it never finished the file); the second one did, with where it continued
    (run,) = batch_runs(tmp_path, job)
    assert (run["input"], run["status"], run["lines"], run["ok"], run["errors"]) == ("kill.csv", "done", count, count, 0)
    assert run["resumed_at"] in (written, written - 1)
