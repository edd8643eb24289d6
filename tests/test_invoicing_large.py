"""A 50 MB sending through a pipeline process of its own: it reaches OK (archived) and the process's
peak memory stays bounded (measured: VmHWM before and after)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.invoicing_support import file_row, start_runner
from tests.support import running_platform, wait_for
from unified_messaging.simulator.sending_writer import spec_for_size, write_sending
from unified_messaging.simulator.genasync import FeedbackTimings

PEAK_GROWTH_LIMIT_MB = 64


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc on this system")


def test_a_50_mb_file_is_sent_with_bounded_memory(tmp_path, pki):
    slow = FeedbackTimings(acknowledgement=3600, detailed=3600, settlement=3600)
    with running_platform(pki, timings=slow) as (simulator, url):
        root, journal = tmp_path / "invoicing", tmp_path / "journal.sqlite"
        root.mkdir()
        process = start_runner(pki, url, root, journal)
        try:
            wait_for(lambda: (root / "runner-ready").exists(), what="the runner")
            time.sleep(0.5)
            before = peak_rss_mb(process.pid)
            spec = spec_for_size(50 * 1024 * 1024, zone_204="20240223000401")
            with open(root / "toSend" / "BIG.txt", "wb") as stream:
                write_sending(stream, spec)
            (root / "toSend" / "BIG.txt.ok").write_bytes(b"")
            wait_for(lambda: (row := file_row(journal)) is not None and row["status"] == "OK", timeout=90,
                     what="OK")
            after = peak_rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert (root / "archive" / "BIG.txt").stat().st_size >= 50 * 1024 * 1024
        assert simulator.counters["genasync.posts.20240223000401"] == 1
        print(f"peak RSS {before:.0f} MB -> {after:.0f} MB for a 50 MB file")
        assert after - before < PEAK_GROWTH_LIMIT_MB
