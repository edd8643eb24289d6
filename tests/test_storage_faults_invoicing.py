"""#19 point 5, invoicing: the ``received`` folder on a real tmpfs that is full while feedback arrives,
then the OSError of a full disk injected at each write of the pipeline (the claim, the move to
archive/ or error/, a received message, a probative value) and SQLite's "disk is full" on the journal.

Nothing is lost (the feedback stays in the simulator's mailbox, unconfirmed), nothing is posted twice
(the simulator's post counter), the fault is logged and kept on ``pipeline.storage_fault``, and the
pipeline finishes by itself once space returns. Skips when the machine cannot mount a tmpfs.
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.invoicing_support import client_for
from tests.test_invoicing_pipeline import drop, status_of
from tests.test_storage_faults import fill
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.journal.store import Journal
from unified_messaging.simulator.sending_writer import build_sending


def _passes(pipeline: InvoicingPipeline, until, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        pipeline._pass()
        time.sleep(0.1)


def test_a_full_received_folder_loses_nothing_and_recovers(tmp_path, pki, platform, caplog):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    pipeline = InvoicingPipeline(tmp_path / "invoicing", Journal(tmp_path / "journal.sqlite"),
                                 lambda: client_for(pki, platform.url), poll_interval=0.1, rescan_seconds=0.2)
    received = pipeline.folders.root / "received"
    received.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(received)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount -t tmpfs is not allowed here")
    try:
        fill(received)
        drop(pipeline.folders.root, "FAC0901.txt", build_sending(zone_204="20240223000901"))
        with caplog.at_level(logging.ERROR, logger="unified_messaging.invoicing.pipeline"):
            _passes(pipeline, lambda: pipeline.storage_fault is not None)
        assert pipeline.storage_fault and "No space left on device" in pipeline.storage_fault
        assert "storage fault in the invoicing pipeline" in caplog.text
        assert status_of(pipeline, "FAC0901.txt")["status"] != "DONE"
        assert platform.simulator.genasync.pending_messages() > 0  # not confirmed, so not lost
        (received / "filler").unlink()  # space returns
        _passes(pipeline, lambda: status_of(pipeline, "FAC0901.txt")["status"] == "DONE")
        assert status_of(pipeline, "FAC0901.txt")["status"] == "DONE" and pipeline.storage_fault is None
        assert platform.simulator.counters["genasync.posts.20240223000901"] == 1
        assert platform.simulator.genasync.pending_messages() == 0
    finally:
        pipeline.stop()
        subprocess.run(["umount", str(received)], check=False)


# -- every write of the pipeline, the fault injected at its seam -------------------------------------

def _archive(pipeline: InvoicingPipeline) -> list[str]:
    return sorted(p.name for p in (pipeline.folders.root / "archive").iterdir())


INVOICING_WRITES = {
    "claim into .work": lambda p: p.parent.name == ".work",
    "the move to archive/": lambda p: p.parent.name == "archive",
    "a received message": lambda p: p.parent.name == "received",
    "a probative value": lambda p: p.parent.name == "probative-values",
}


@pytest.fixture()
def faulty_pipeline(tmp_path, pki, platform, monkeypatch):
    from tests.disk_faults import Disk, OsWithDisk
    from unified_messaging.invoicing import pipeline as pipeline_module
    from unified_messaging.invoicing import poller as poller_module

    disk = Disk()
    real_move, real_write = pipeline_module.move_to, poller_module.write_atomically

    def move_to(source, folder, name, **options):
        disk.check(Path(folder) / name)
        return real_move(source, folder, name, **options)

    def write_atomically(path, data):
        disk.check(path)
        real_write(path, data)

    monkeypatch.setattr(pipeline_module, "os", OsWithDisk(disk))
    monkeypatch.setattr(pipeline_module, "move_to", move_to)
    monkeypatch.setattr(poller_module, "write_atomically", write_atomically)
    pipeline = InvoicingPipeline(tmp_path / "invoicing", Journal(tmp_path / "journal.sqlite"),
                                 lambda: client_for(pki, platform.url), poll_interval=0.1, rescan_seconds=0.2)
    yield pipeline, disk
    pipeline.stop()


def _run(pipeline: InvoicingPipeline, until, timeout: float = 20.0) -> list[str]:
    """Passes until ``until()``; the storage faults the pipeline showed on the way."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        pipeline._pass()
        if pipeline.storage_fault:
            seen.append(pipeline.storage_fault)
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize("write", list(INVOICING_WRITES))
def test_a_storage_fault_at_each_invoicing_write_loses_nothing_sends_once_and_recovers(faulty_pipeline, platform,
                                                                                      caplog, write):
    pipeline, disk = faulty_pipeline
    disk.fail(INVOICING_WRITES[write], times=2)
    drop(pipeline.folders.root, "FAC0902.txt", build_sending(zone_204="20240223000902"))
    with caplog.at_level(logging.ERROR, logger="unified_messaging.invoicing.pipeline"):
        seen = _run(pipeline, lambda: any(r["name"] == "FAC0902.txt" and r["status"] == "DONE"
                                          for r in pipeline.store.files()) and not disk.times)
    assert disk.failed == 2 and seen and "No space left on device" in seen[0]
    assert "storage fault in the invoicing pipeline" in caplog.text
    assert status_of(pipeline, "FAC0902.txt")["status"] == "DONE" and pipeline.storage_fault is None
    assert platform.simulator.counters["genasync.posts.20240223000902"] == 1  # sent once
    assert _archive(pipeline) == ["FAC0902.txt"]
    assert [p.name for p in pipeline.folders.work.iterdir()] == []
    assert platform.simulator.genasync.pending_messages() == 0  # every message kept, then confirmed


def test_a_full_journal_while_recording_loses_nothing_and_sends_once(faulty_pipeline, platform, monkeypatch):
    import sqlite3

    pipeline, _ = faulty_pipeline
    real, refused = pipeline.store.record_file, []

    def record_file(**fields):
        if len(refused) < 2:
            refused.append(fields["name"])
            raise sqlite3.OperationalError("database or disk is full")
        return real(**fields)

    monkeypatch.setattr(pipeline.store, "record_file", record_file)
    drop(pipeline.folders.root, "FAC0903.txt", build_sending(zone_204="20240223000903"))
    seen = _run(pipeline, lambda: any(r["name"] == "FAC0903.txt" and r["status"] == "DONE"
                                      for r in pipeline.store.files()))
    assert refused == ["FAC0903.txt", "FAC0903.txt"] and "the journal: database or disk is full" in seen[0]
    assert status_of(pipeline, "FAC0903.txt")["status"] == "DONE"
    assert platform.simulator.counters["genasync.posts.20240223000903"] == 1


def test_a_refused_file_waits_for_the_disk_before_going_to_error(faulty_pipeline):
    pipeline, disk = faulty_pipeline
    disk.fail(lambda p: p.parent.name == "error", times=2)
    drop(pipeline.folders.root, "FAC0904.txt", b"not an eFact file\n")
    error = pipeline.folders.root / "error"
    seen = _run(pipeline, lambda: (error / "FAC0904.txt").exists())
    assert disk.failed == 2 and seen
    assert (error / "FAC0904.txt").read_bytes() == b"not an eFact file\n"
    assert [p.name for p in pipeline.folders.work.iterdir()] == []
