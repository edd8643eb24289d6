"""#19 point 5, invoicing: the ``received`` folder on a real tmpfs that is full while feedback arrives.

Nothing is lost (the feedback stays in the simulator's mailbox, unconfirmed), nothing is posted twice
(the simulator's post counter), the fault is logged and kept on ``pipeline.storage_fault``, and the
pipeline finishes by itself once space returns. Skips when the machine cannot mount a tmpfs.
"""
from __future__ import annotations

import logging
import os
import subprocess
import time

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
