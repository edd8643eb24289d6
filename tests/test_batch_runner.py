"""The batch.properties batch runner, end to end with the real gateway's service and simulator."""
from __future__ import annotations

import itertools
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest

from tests.conftest import ROOT
from tests.support import HEADER, INSURED, read_output, write_job
from unified_messaging.insurability.batch import OUTPUT_COLUMNS, BatchRunner, BatchScheduler
from unified_messaging.insurability.batch_job import BatchConfigError, load_batch_job
from unified_messaging.journal import Journal
from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.simulator.population import TEST_PATIENTS


@pytest.fixture
def job(tmp_path):
    return load_batch_job(write_job(tmp_path))


@pytest.fixture
def journal(tmp_path):
    """A journal of its own for the batch files (the session gateway's journal gets the consultations)."""
    j = Journal(tmp_path / "batch-journal.sqlite")
    yield j
    j.close()


def ticking_clock(start: datetime) -> Callable[[], datetime]:
    """A clock that moves one second each time it is read."""
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=next(ticks))


# ------------------------------------------------------------------------------ batch.properties
def test_the_example_job_in_batch_is_valid():
    job = load_batch_job(ROOT / "batch" / "batch.properties")
    assert job.input_folder == ROOT / "batch" / "in" and job.separator == ";" and job.encoding == "UTF-8"
    assert (job.nihii, job.quality, job.max_parallel) == ("81234530000", "labo", 8)
    header = (ROOT / "batch" / "sample.csv").read_text().splitlines()[0]
    assert header == "ssin;mutuality;registration_number;period_start;period_end;contact_type;reference"


@pytest.mark.parametrize("value, found", [("DIRECT", "= DIRECT"), ("", "= (empty)"), (None, "is not set")])
def test_the_old_connection_is_refused_with_the_one_change_to_make(tmp_path, value, found):
    with pytest.raises(BatchConfigError) as caught:
        load_batch_job(write_job(tmp_path, **{"mycarenet.connection": value}))
    message = str(caught.value)
    assert f"mycarenet.connection {found}" in message
    assert "no longer exists" in message and "mycarenet.connection=SSO" in message


def test_missing_folders_and_bad_values_are_named(tmp_path):
    path = write_job(tmp_path)
    text = path.read_text(encoding="iso-8859-1")
    path.write_text(text.replace("archive.folder=archive\n", ""), encoding="iso-8859-1")
    with pytest.raises(BatchConfigError, match="archive.folder is not set"):
        load_batch_job(path)
    path.write_text(text.replace("error.folder=error", "error.folder=nowhere"), encoding="iso-8859-1")
    with pytest.raises(BatchConfigError, match=r"error.folder = nowhere: the folder .*nowhere does not exist"):
        load_batch_job(path)
    for line, words in (("file.encoding=UTF-9", "not an encoding"), ("csv.separator=;;", "one character"),
                        ("max.parallel=0", "from 1 to 256"), ("input.pattern=in/*.csv", "without folders")):
        path.write_text(text + line + "\n", encoding="iso-8859-1")
        with pytest.raises(BatchConfigError, match=words):
            load_batch_job(path)
    with pytest.raises(BatchConfigError, match="does not exist"):
        load_batch_job(tmp_path / "missing.properties")


def test_java_properties_syntax_is_honoured(tmp_path):
    write_job(tmp_path)
    (tmp_path / "batch.properties").write_bytes(
        b"# comment\n! other comment\nmycarenet.connection : SSO\ninput.folder   in\n"
        b"output.folder=o\\\n    ut\narchive.folder=archive\nerror.folder=error\ncsv.separator=\\t\n"
        b"careprovider.quality=labo\ncareprovider.nihii=81234530000\nold.password=secret\n")
    job = load_batch_job(tmp_path / "batch.properties")
    assert job.output_folder == tmp_path / "out" and job.separator == "\t"


# ------------------------------------------------------------------------------ running
def test_a_thousand_lines_in_order(gateway, job):
    lines = [f"{INSURED[i % 2].ssin};2025-10-01;;L{i:04d}" for i in range(1000)]
    (job.input_folder / "big.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    seen = []
    summary = BatchRunner(job, gateway.insurability, max_parallel=16,
                          progress=lambda name, done, total: seen.append((done, total))).run()
    (result,) = summary.files
    assert (result.status, result.lines, result.ok, result.errors) == ("done", 1000, 1000, 0)
    rows = read_output(job.output_folder / "big.result.csv")
    assert rows[0] == HEADER.split(";") + list(OUTPUT_COLUMNS)
    assert [r[3] for r in rows[1:]] == [f"L{i:04d}" for i in range(1000)]
    assert all(r[4] == "OK" and r[6] for r in rows[1:])
    assert len({r[6] for r in rows[1:]}) == 1000  # one upstream answer (audit reference) per line
    assert seen[-1] == (1000, 1000) and [d for d, _ in seen] == list(range(1, 1001))
    assert (job.archive_folder / "big.csv").exists() and not (job.input_folder / "big.csv").exists()
    assert not [p for p in job.output_folder.iterdir() if p.name.endswith((".part", ".json"))]
    assert "1 file(s) done (1000 lines: 1000 OK, 0 ERROR)" in summary.describe()


def test_bad_lines_get_their_error_and_the_batch_goes_on(gateway, job):
    bad_check = next(p for p in TEST_PATIENTS if p.scenario == "bad_check_digit").ssin
    rows_in = [
        f"{INSURED[0].ssin};2025-10-01;;OK-1",
        f"{INSURED[0].ssin};31/02/2025;;BAD-DATE",
        f"{bad_check};2025-10-01;;BAD-SSIN",
        "12345;2025-10-01;;SHORT-SSIN",
        f"{INSURED[0].ssin};2025-10-01;;EXTRA;FIELD",
        "",
        f"{INSURED[0].ssin};2025-10-02;2025-10-01;BAD-PERIOD",
        f"{INSURED[1].ssin};2025-10-01;;OK-2",
    ]
    (job.input_folder / "mixed.csv").write_text("\n".join([HEADER, *rows_in]) + "\n")
    (result,) = BatchRunner(job, gateway.insurability).run().files
    assert (result.lines, result.ok, result.errors) == (8, 2, 6)
    rows = read_output(job.output_folder / "mixed.result.csv")[1:]
    assert len(rows) == 8
    got = [(r[3], r[4], r[5]) for r in rows]
    assert got == [("OK-1", "OK", ""), ("BAD-DATE", "ERROR", "UM-DATE"), ("BAD-SSIN", "ERROR", "UM-SSIN"),
                   ("SHORT-SSIN", "ERROR", "UM-SSIN"), ("EXTRA", "ERROR", "UM-CSV"), ("", "ERROR", "UM-CSV"),
                   ("BAD-PERIOD", "ERROR", "UM-PERIOD"), ("OK-2", "OK", "")]
    assert "UM-SSIN" in rows[2][-1] and "UM-SSIN" in rows[3][-1] and "UM-PERIOD" in rows[6][-1]
    assert "31/02/2025" in rows[1][-1] and "5 field(s) where the header has 4" in rows[4][-1]


@pytest.mark.parametrize("name, data, words", [
    ("columns.csv", b"ssin;date;reference\n85073003328;2025-10-01;X\n", ["unknown column(s) 'date'", "period_start"]),
    ("nopatient.csv", b"period_start;reference\n2025-10-01;X\n", ["lacks the column(s) ssin"]),
    ("latin1.csv", "ssin;period_start;reference\n85073003328;2025-10-01;Ren\xe9\n".encode("iso-8859-1"),
     ["not written in UTF-8", "line 2", "ISO-8859-1"]),
    ("empty.csv", b"", ["empty"]),
    ("comma.csv", b"ssin,period_start\n85073003328,2025-10-01\n", ["unknown column(s) 'ssin,period_start'"]),
])
def test_a_file_that_cannot_be_read_goes_to_the_error_folder(gateway, job, name, data, words):
    (job.input_folder / name).write_bytes(data)
    summary = BatchRunner(job, gateway.insurability).run()
    (result,) = summary.files
    assert result.status == "rejected"
    assert (job.error_folder / name).read_bytes() == data
    reason = (job.error_folder / (name + ".reason.txt")).read_text()
    for word in words:
        assert word in reason
    assert not list(job.output_folder.glob("*.csv")) and not list(job.output_folder.glob(".*.part"))


def test_the_encoding_of_the_job_is_used_both_ways(gateway, tmp_path):
    job = load_batch_job(write_job(tmp_path, **{"file.encoding": "ISO-8859-1", "csv.separator": ","}))
    amelie = next(p for p in TEST_PATIENTS if p.first_name == "Amélie")
    (job.input_folder / "fr.csv").write_bytes(f"ssin,period_start,reference\n{amelie.ssin},2025-10-01,Réf\n"
                                              .encode("iso-8859-1"))
    BatchRunner(job, gateway.insurability).run()
    data = (job.output_folder / "fr.result.csv").read_bytes()
    assert "Amélie".encode("iso-8859-1") in data and "Réf".encode("iso-8859-1") in data


def test_every_file_of_a_run_is_journaled_with_its_counts_and_reason(gateway, job, journal):
    bad_check = next(p for p in TEST_PATIENTS if p.scenario == "bad_check_digit").ssin
    (job.input_folder / "a.csv").write_text("\n".join([
        HEADER, f"{INSURED[0].ssin};2025-10-01;;OK-1", f"{INSURED[1].ssin};2025-10-01;;OK-2",
        f"{INSURED[0].ssin};31/02/2025;;BAD-DATE", f"{bad_check};2025-10-01;;BAD-SSIN",
        f"{INSURED[1].ssin};2025-10-01;;OK-3"]) + "\n")
    (job.input_folder / "b.csv").write_text("ssin;date;reference\n")
    (job.input_folder / "c.csv").write_text(f"{HEADER}\n{INSURED[0].ssin};2025-10-01;;OK-C\n")
    clock = ticking_clock(datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc))
    summary = BatchRunner(job, gateway.insurability, journal=journal, clock=clock).run()
    assert [f.status for f in summary.files] == ["done", "rejected", "done"]
    c, b, a = journal.batch_runs()
    assert {r["job"] for r in (a, b, c)} == {str(job.source)} and journal.batch_jobs() == [str(job.source)]
    assert (a["input"], a["status"], a["lines"], a["ok"], a["errors"], a["resumed_at"], a["output"], a["reason"]) \
        == ("a.csv", "done", 5, 3, 2, 0, "a.result.csv", None)
    assert (a["started_at"], a["finished_at"]) == ("2026-11-22T09:00:00.000+00:00", "2026-11-22T09:00:01.000+00:00")
    assert (b["input"], b["status"], b["lines"], b["ok"], b["errors"], b["output"]) == \
        ("b.csv", "rejected", None, None, None, None)
    assert b["reason"] == (job.error_folder / "b.csv.reason.txt").read_text().strip()
    assert "unknown column(s) 'date'" in b["reason"]
    assert (b["started_at"], b["finished_at"]) == ("2026-11-22T09:00:02.000+00:00", "2026-11-22T09:00:03.000+00:00")
    assert (c["input"], c["lines"], c["ok"], c["errors"], c["output"]) == ("c.csv", 1, 1, 0, "c.result.csv")
    assert journal.count_batch_runs(job=str(job.source), status="done") == 2


def test_a_journal_that_cannot_be_written_does_not_stop_the_batch(gateway, job, journal, caplog):
    with journal.write() as conn:  # what a full disk or a broken file does to an INSERT
        conn.execute("CREATE TRIGGER fail BEFORE INSERT ON batch_files BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    (job.input_folder / "a.csv").write_text(f"{HEADER}\n{INSURED[0].ssin};2025-10-01;;A\n")
    (job.input_folder / "b.csv").write_text(f"{HEADER}\n{INSURED[1].ssin};2025-10-01;;B\n")
    with caplog.at_level(logging.ERROR, logger="unified_messaging.insurability.batch"):
        summary = BatchRunner(job, gateway.insurability, journal=journal).run()
    assert [(f.status, f.ok) for f in summary.files] == [("done", 1), ("done", 1)]
    assert (job.output_folder / "b.result.csv").exists() and (job.archive_folder / "b.csv").exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"{name}: the run could not be written to the journal; the batch goes on" for name in ("a.csv", "b.csv")]


def test_the_scheduler_journals_the_files_of_its_jobs(gateway, tmp_path, journal):
    jobs = [load_batch_job(write_job(tmp_path / name)) for name in ("one", "two")]
    for j in jobs:
        (j.input_folder / "x.csv").write_text(f"{HEADER}\n{INSURED[0].ssin};2025-10-01;;X\n")
    scheduler = BatchScheduler(jobs, gateway.insurability, max_parallel=2, rescan_seconds=60, settle_seconds=0,
                               journal=journal)
    assert all(s.complete for s in scheduler.run_once())
    assert journal.batch_jobs() == sorted(str(j.source) for j in jobs)
    assert [(r["input"], r["status"], r["ok"]) for r in journal.batch_runs()] == [("x.csv", "done", 1)] * 2


class Unreachable:
    """The gateway's service, unreachable from call ``fail_from`` until ``restore()``."""

    def __init__(self, service, fail_from: int) -> None:
        self.service = service
        self.fail_from = fail_from
        self.calls = 0
        self.lock = threading.Lock()

    def consult(self, query, *, interface):
        with self.lock:
            self.calls += 1
            failing = self.calls >= self.fail_from
        if failing:
            raise UpstreamUnavailable("http://mycarenet.example", "connection refused")
        return self.service.consult(query, interface=interface)


def test_upstream_unreachable_stops_the_run_and_the_next_run_continues(gateway, job, journal):
    lines = [f"{INSURED[0].ssin};2025-10-01;;L{i:03d}" for i in range(60)]
    (job.input_folder / "f.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    service = Unreachable(gateway.insurability, fail_from=25)
    (result,) = BatchRunner(job, service, max_parallel=4, retry_delays=(0.01,), journal=journal).run().files
    assert result.status == "stopped" and "Run the job again" in result.reason
    assert (job.input_folder / "f.csv").exists() and not (job.output_folder / "f.result.csv").exists()
    service.fail_from = 10**9
    (result,) = BatchRunner(job, service, max_parallel=4, journal=journal).run().files
    assert result.status == "done" and 0 < result.resumed_at < 25 and result.ok == 60
    rows = read_output(job.output_folder / "f.result.csv")[1:]
    assert [r[3] for r in rows] == [f"L{i:03d}" for i in range(60)]
    done, stopped = journal.batch_runs()
    assert (stopped["status"], stopped["lines"], stopped["output"]) == ("stopped", 60, None)
    assert stopped["ok"] + stopped["errors"] == done["resumed_at"] and "Run the job again" in stopped["reason"]
    assert (done["status"], done["lines"], done["ok"], done["errors"]) == ("done", 60, 60, 0)
    assert done["output"] == "f.result.csv" and done["reason"] is None


def test_a_second_run_of_the_same_job_waits(gateway, job):
    (job.input_folder / "a.csv").write_text(f"{HEADER}\n{INSURED[0].ssin};2025-10-01;;A\n")
    from unified_messaging.insurability.batch_folders import LOCK_NAME, exclusive as _exclusive

    with _exclusive(job.output_folder / LOCK_NAME) as locked:
        assert locked
        summary = BatchRunner(job, gateway.insurability).run()
    assert summary.files[0].status == "busy" and (job.input_folder / "a.csv").exists()
    assert BatchRunner(job, gateway.insurability).run().files[0].status == "done"


def test_same_input_name_again_gets_a_new_output(gateway, job):
    for reference in ("FIRST", "SECOND"):
        (job.input_folder / "daily.csv").write_text(f"{HEADER}\n{INSURED[0].ssin};2025-10-01;;{reference}\n")
        BatchRunner(job, gateway.insurability).run()
    assert read_output(job.output_folder / "daily.result.csv")[1][3] == "FIRST"
    assert read_output(job.output_folder / "daily.result.2.csv")[1][3] == "SECOND"
    assert (job.archive_folder / "daily.csv").exists() and (job.archive_folder / "daily.2.csv").exists()


def test_serve_runs_the_configured_jobs_and_refuses_a_job_that_cannot_run(gateway, tmp_path):
    import os
    import time

    from tests.conftest import make_config
    from unified_messaging.config import ConfigError
    from unified_messaging.gateway import Gateway

    write_job(tmp_path / "good")
    bad = write_job(tmp_path / "bad", **{"mycarenet.connection": "DIRECT"})
    data = {"folder": str(gateway.config.data_folder)}
    with pytest.raises(ConfigError, match=r"\[batch\] jobs: .*mycarenet.connection = DIRECT"):
        Gateway(make_config(tmp_path, data=data, batch={"jobs": [str(bad)]})).start()
    csv_file = tmp_path / "good" / "in" / "a.csv"
    csv_file.write_text(f"{HEADER}\n{INSURED[0].ssin};2025-10-01;;SERVED\n")
    os.utime(csv_file, (time.time() - 60, time.time() - 60))  # older than the settle time
    gw = Gateway(make_config(tmp_path, data=data, folders={"insurability_root": str(tmp_path / "ins")},
                             batch={"jobs": [str(tmp_path / "good" / "batch.properties")]})).start()
    try:
        output = tmp_path / "good" / "out" / "a.result.csv"
        deadline = time.monotonic() + 20
        while not output.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gw.stop()
    assert read_output(output)[1][3:5] == ["SERVED", "OK"]
