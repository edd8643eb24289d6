"""Crash safety: the pipeline runs in its own process and is killed (SIGKILL) at each step; after a
restart every file is sent exactly once (the simulator's per-InputReference counters), every
feedback message is on disk and the status is right."""
from __future__ import annotations

import os
import signal

import pytest

from tests.invoicing_support import file_row, start_runner
from tests.support import running_platform, wait_for
from unified_messaging.simulator.sending_writer import build_sending


@pytest.mark.parametrize("step", ["after-claim", "after-record", "before-post", "after-post", "after-tack",
                                  "before-confirm"])
def test_killed_at_each_step_the_file_is_sent_once_and_reaches_done(tmp_path, pki, step):
    with running_platform(pki) as (simulator, url):
        root, journal = tmp_path / "invoicing", tmp_path / "journal.sqlite"
        root.mkdir()
        process = start_runner(pki, url, root, journal, "--pause-at", step)
        try:
            wait_for(lambda: (root / "runner-ready").exists(), what="the runner")
            (root / "toSend" / "FAC.txt").write_bytes(build_sending(zone_204="20240223000201"))
            (root / "toSend" / "FAC.txt.ok").write_bytes(b"")
            wait_for(lambda: (root / f"paused-{step}").exists(), what=f"the pause at {step}")
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            (root / "runner-ready").unlink()
            process = start_runner(pki, url, root, journal)
            wait_for(lambda: (row := file_row(journal)) is not None and row["status"] == "DONE", what="DONE")
            wait_for(lambda: simulator.genasync.pending_messages() == 0, what="everything confirmed")
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert simulator.counters["genasync.posts.20240223000201"] == 1
        codes = sorted(p.name.split("_")[1] for p in (root / "received").iterdir())
        assert codes == ["920098", "920900", "931000"]
        assert (root / "archive" / "FAC.txt").exists()
        assert not [p for p in (root / ".work").iterdir()] and not list((root / "toSend").iterdir())
