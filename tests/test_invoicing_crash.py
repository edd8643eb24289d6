"""Crash safety: the pipeline runs in its own process and is killed (SIGKILL) at each step; after a
restart every file is sent exactly once (the simulator's per-InputReference counters), every
feedback message is on disk and the status is right."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.invoicing_support import runner_arguments, running_platform
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.journal.store import Journal
from unified_messaging.simulator.devpki import make_dev_pki

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_dev_pki(tmp_path_factory.mktemp("pki"))


def start_runner(pki, url, root: Path, journal: Path, *extra: str) -> subprocess.Popen:
    arguments = [sys.executable, "-m", "unified_messaging.invoicing.run",
                 *runner_arguments(pki, url, root, journal), "--poll-interval", "0.2", "--rescan-seconds", "0.2",
                 "--throttle-wait", "0.2", *extra]
    log = open(root.parent / "runner.log", "ab")
    return subprocess.Popen(arguments, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def file_row(journal: Path) -> dict | None:
    if not journal.exists():
        return None
    rows = InvoicingStore(Journal(journal)).files()
    return rows[0] if rows else None


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
