"""#16 point 2: with ``serve --workers 2``, any front worker reports what the singletons process
knows: the storage fault of its toQuery folder (``/health`` not ready, the fault named) and the
upstream calls every process made, and stops reporting it once the disk recovers.

The disk is real: the toQuery folders are on a small tmpfs mounted for the test and filled up, so
the singletons process's answer write fails with ENOSPC (mounting needs root; the test skips,
saying so, elsewhere). The status board is also checked on its own, between two real processes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from tests.support import wait_for
from tests.test_folder_insurability import request_xml, requests_file
from tests.test_storage_faults import fill
from tests.test_supervisor import Served, children_of
from unified_messaging.monitoring.board import StatusBoard
from unified_messaging.monitoring.metrics import ServiceState
from unified_messaging.simulator.population import TEST_PATIENTS

INSURED = next(p for p in TEST_PATIENTS if p.scenario == "insured")


def health(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{base}/unified-messaging/health", timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


@pytest.fixture()
def small_disk(tmp_path):
    mount = tmp_path / "ins"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_front_worker_reports_the_singletons_storage_fault_until_the_disk_recovers(tmp_path, small_disk):
    conf = tmp_path / "um.toml"
    conf.write_text(f'[folders]\ninsurability_root = "{small_disk}"\n', encoding="utf-8")
    served = Served(tmp_path, "--config", str(conf))
    try:
        base = served.wait_serving().split("/unified-messaging/")[0]
        wait_for(lambda: (small_disk / "toQuery").is_dir(), timeout=20)
        assert health(base)[0] == 200
        staged = small_disk / "staged.xml"
        staged.write_bytes(requests_file(request_xml(INSURED, reference="disk-full")))
        filler = fill(small_disk)
        os.rename(staged, small_disk / "toQuery" / "full.xml")  # no block needed: the data is already there
        (small_disk / "toQuery" / "full.xml.ok").write_bytes(b"")

        def all_fronts_say_not_ready() -> bool:
            answers = [health(base) for _ in range(6)]  # the kernel spreads them over both front workers
            return all(code == 503 and "toQuery" in doc["storage_faults"] for code, doc in answers)

        wait_for(all_fronts_say_not_ready, timeout=30)
        code, document = health(base)
        assert any(line.startswith("storage toQuery:") for line in document["failing"]), document["failing"]
        assert "No space left" in document["storage_faults"]["toQuery"] or "full" in document["storage_faults"]["toQuery"]
        roles = sorted(p["role"] for p in document["processes"])
        assert roles == ["front", "front", "singletons"], document["processes"]
        assert all(p["reporting"] for p in document["processes"])
        singletons = next(p for p in document["processes"] if p["role"] == "singletons")
        assert singletons["pid"] in children_of(served.popen.pid)
        # the singletons process asked MyCareNet for the file: a front worker's report counts that call
        assert document["upstream"]["genericinsurability"]["calls"] >= 1
        assert not (small_disk / "queried" / "full.answer.xml.ok").exists()

        filler.unlink()
        wait_for(lambda: (small_disk / "queried" / "full.answer.xml.ok").exists(), timeout=30)
        wait_for(lambda: all(health(base)[0] == 200 for _ in range(6)), timeout=20)
        assert health(base)[1]["storage_faults"] == {}
    finally:
        served.popen.terminate()
        served.popen.wait(60)


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from unified_messaging.monitoring.board import StatusBoard
    from unified_messaging.monitoring.metrics import ServiceState

    class Watch:
        def states(self):
            state = ServiceState()
            state.calls = 3
            state.last_failure = state.last_success = None
            return {"memberdata": state}

    board = StatusBoard(Path(sys.argv[1]), role="singletons", watch=Watch(),
                        storage_faults=lambda: {"invoicing": "the data folder is full"}, period=0.1).start()
    print("published", flush=True)
    sys.stdin.read()
""")


def test_the_board_merges_the_live_processes_and_forgets_a_dead_one(tmp_path):
    class Watch:
        def states(self):
            state = ServiceState()
            state.calls, state.last_success = 2, datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
            return {"memberdata": state}

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "published"
        board = StatusBoard(tmp_path, role="front", watch=Watch(), storage_faults=dict)
        assert board.storage_faults() == {"invoicing": "the data folder is full"}
        merged = board.upstream_states()["memberdata"]
        assert merged.calls == 5 and merged.last_success == datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
        assert sorted(p["role"] for p in board.processes()) == ["front", "singletons"]
    finally:
        child.kill()
        child.wait(10)
    time.sleep(0.05)
    assert board.storage_faults() == {}
    assert board.upstream_states()["memberdata"].calls == 2
    assert list(tmp_path.glob("*.json")) == []  # the dead process's snapshot was removed
