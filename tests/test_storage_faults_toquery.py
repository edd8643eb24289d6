"""#19 point 5, the toQuery pipeline: the data folder full or read-only at each of its writes.

A real gateway service (its real simulator), real folders; the OSError a full or read-only file
system raises is injected at each write the pipeline makes (the claim into working/, the answer,
the move of the request to queried/, the answer's .ok, the move of a refused file to error/ with
its reason, the journal line), twice, then the disk "recovers". Each time: the file is answered
or refused once, nothing is lost, MyCareNet is asked once, the fault is logged and kept on the
watcher while it lasts, and the work goes on without a restart.
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time

import pytest

from tests.conftest import make_config
from tests.disk_faults import Disk, toquery_disk
from tests.support import wait_for
from tests.test_folder_insurability import drop_and_wait, request_xml, requests_file, responses, text
from unified_messaging.folders.watcher import REASON_SUFFIX
from unified_messaging.gateway import Gateway
from unified_messaging.insurability.folder import InsurabilityFolders
from unified_messaging.simulator.population import TEST_PATIENTS

INSURED = next(p for p in TEST_PATIENTS if p.scenario == "insured")


@pytest.fixture()
def disk(monkeypatch) -> Disk:
    return toquery_disk(monkeypatch)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    gateway = Gateway(make_config(tmp_path_factory.mktemp("toquery-disk"), folders={"insurability": False}))
    yield gateway, gateway.open_service()
    gateway.stop()


@pytest.fixture()
def folders(service, tmp_path):
    _, insurability = service
    running = InsurabilityFolders(insurability, tmp_path / "ins", first_backoff_seconds=0.1, rescan_seconds=0.5)
    running.start()
    yield running
    running.stop()


def consultations(gateway) -> int:
    return gateway.journal.count("consultations")


WRITES = {
    "claim into working/": lambda p: p.parent.name == "working",
    "the answer": lambda p: p.name.endswith(".answer.xml"),
    "the request moved to queried/": lambda p: p.parent.name == "queried" and p.name.endswith("-disk.xml"),
    "the answer's .ok": lambda p: p.name.endswith(".answer.xml.ok"),
}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES], ids=errno.errorcode.get)
@pytest.mark.parametrize("write", list(WRITES))
def test_a_storage_fault_at_each_write_loses_nothing_asks_once_and_recovers(service, folders, disk, tmp_path,
                                                                          caplog, write, code):
    gateway, _ = service
    root = tmp_path / "ins"
    before = consultations(gateway)
    disk.fail(WRITES[write], code=code)
    with caplog.at_level(logging.ERROR, logger="unified_messaging.folders.watcher"):
        answer = drop_and_wait(root, "lab-disk.xml", requests_file(request_xml(INSURED)))
    assert disk.failed == 2, "the fault was injected twice"
    assert answer is not None, "the file went to error/ instead of waiting for the disk"
    assert [text(r, "t:Status") for r in responses(answer)] == ["OK"]
    assert (root / "queried" / "lab-disk.xml").exists()
    assert list((root / "working").iterdir()) == [] and list((root / "toQuery").iterdir()) == []
    assert list((root / "error").iterdir()) == []
    assert sorted(p.name for p in (root / "queried").iterdir()) == [
        "lab-disk.answer.xml", "lab-disk.answer.xml.ok", "lab-disk.xml"]
    assert consultations(gateway) == before + 1  # MyCareNet asked once, whatever write failed
    assert "storage fault in toQuery" in caplog.text and os.strerror(code) in caplog.text
    assert "nothing is lost" in caplog.text
    deadline = time.monotonic() + 10  # cleared once the file went through: just after its answer appears
    while folders.watcher.storage_fault is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert folders.watcher.storage_fault is None


def test_a_refused_file_waits_for_the_disk_before_going_to_error(folders, disk, tmp_path, caplog):
    root = tmp_path / "ins"
    disk.fail(lambda p: p.name.endswith(REASON_SUFFIX))
    with caplog.at_level(logging.ERROR, logger="unified_messaging.folders.watcher"):
        assert drop_and_wait(root, "broken.xml", b"<not-xml") is None
    wait_for(lambda: (root / "error" / "broken.xml").exists(), timeout=10, what="the file beside its reason")
    assert disk.failed == 2
    assert (root / "error" / "broken.xml").read_bytes() == b"<not-xml"
    assert "cannot be read" in (root / "error" / ("broken.xml" + REASON_SUFFIX)).read_text(encoding="utf-8")
    assert list((root / "working").iterdir()) == []
    assert "storage fault in toQuery while handling broken.xml" in caplog.text


def test_a_full_journal_keeps_the_file_and_it_is_answered_once_the_journal_can_be_written(service, folders,
                                                                                          tmp_path, monkeypatch,
                                                                                          caplog):
    gateway, _ = service
    root = tmp_path / "ins"
    real = gateway.journal.record_consultation
    refusals = []

    def record_consultation(*args, **kwargs):
        if len(refusals) < 2:
            refusals.append(1)
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args, **kwargs)

    monkeypatch.setattr(gateway.journal, "record_consultation", record_consultation)
    before = consultations(gateway)
    with caplog.at_level(logging.ERROR, logger="unified_messaging.folders.watcher"):
        answer = drop_and_wait(root, "lab-journal.xml", requests_file(request_xml(INSURED)))
    assert answer is not None and [text(r, "t:Status") for r in responses(answer)] == ["OK"]
    assert len(refusals) == 2 and consultations(gateway) == before + 1
    assert list((root / "error").iterdir()) == [] and list((root / "working").iterdir()) == []
    assert "the journal: database or disk is full" in caplog.text


def test_the_fault_is_kept_on_the_watcher_while_it_lasts(folders, disk, tmp_path):
    root = tmp_path / "ins"
    disk.fail(WRITES["the answer"], times=10 ** 6)
    (root / "toQuery" / "lab-full.xml").write_bytes(requests_file(request_xml(INSURED)))
    (root / "toQuery" / "lab-full.xml.ok").write_bytes(b"")
    deadline = time.monotonic() + 20
    while folders.watcher.storage_fault is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "lab-full.xml" in folders.watcher.storage_fault and "No space left on device" in folders.watcher.storage_fault
    assert (root / "working" / "lab-full.xml").exists()
    disk.fail(lambda p: False, times=0)  # space returns
    assert drop_and_wait(root, "lab-next.xml", requests_file(request_xml(INSURED))) is not None
    deadline = time.monotonic() + 20
    while not (root / "queried" / "lab-full.answer.xml.ok").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (root / "queried" / "lab-full.answer.xml.ok").exists() and folders.watcher.storage_fault is None
