"""The reusable folder pickup: markers, claims, orphans, retries, crash leftovers, events and polling."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from unified_messaging.folders.files import REASON_SUFFIX, free_name
from unified_messaging.folders.watcher import FolderWatcher, Rejected, RetryLater, WatchedFolders


@pytest.fixture
def folders(tmp_path) -> WatchedFolders:
    f = WatchedFolders(tmp_path / "in", tmp_path / "work", tmp_path / "error")
    f.create()
    return f


class Recorder:
    """A handler that moves each file to ``done/`` and remembers what it saw."""

    def __init__(self, done: Path) -> None:
        self.done = done
        done.mkdir(exist_ok=True)
        self.seen: list[str] = []
        self.event = threading.Event()

    def __call__(self, path: Path) -> None:
        self.seen.append(path.read_text())
        os.replace(path, self.done / path.name)
        self.event.set()


def drop(folders: WatchedFolders, name: str, text: str = "payload", marker: bool = True) -> None:
    (folders.inbox / name).write_text(text)
    if marker:
        (folders.inbox / (name + ".ok")).write_text("")


def test_a_file_is_handled_only_once_its_marker_arrived(folders, tmp_path):
    handler = Recorder(tmp_path / "done")
    watcher = FolderWatcher(folders, handler, orphan_grace_seconds=0)
    drop(folders, "a.xml", marker=False)
    assert watcher.scan_once() == 0
    assert (folders.inbox / "a.xml").exists() and handler.seen == []
    (folders.inbox / "a.xml.ok").write_text("")
    assert watcher.scan_once() == 1
    assert handler.seen == ["payload"]
    assert list(folders.inbox.iterdir()) == [] and list(folders.work.iterdir()) == []
    assert watcher.scan_once() == 0


def test_a_marker_without_its_file_goes_to_error_with_a_reason(folders, tmp_path):
    watcher = FolderWatcher(folders, Recorder(tmp_path / "done"), orphan_grace_seconds=60)
    (folders.inbox / "lost.xml.ok").write_text("")
    watcher.scan_once()
    assert (folders.inbox / "lost.xml.ok").exists()  # still within the grace period
    watcher.orphan_grace_seconds = 0
    watcher.scan_once()
    assert not (folders.inbox / "lost.xml.ok").exists()
    reason = (folders.error / ("lost.xml.ok" + REASON_SUFFIX)).read_text()
    assert "without its file lost.xml" in reason and "first" in reason


def test_rejected_and_crashing_handlers_move_the_file_to_error(folders):
    def handle(path: Path) -> None:
        if path.name == "bad.xml":
            raise Rejected("The file is not XML.")
        raise KeyError("boom")

    watcher = FolderWatcher(folders, handle)
    drop(folders, "bad.xml")
    drop(folders, "crash.xml")
    watcher.scan_once()
    assert (folders.error / "bad.xml").read_text() == "payload"
    assert (folders.error / ("bad.xml" + REASON_SUFFIX)).read_text() == "The file is not XML.\n"
    assert "KeyError" in (folders.error / ("crash.xml" + REASON_SUFFIX)).read_text()
    drop(folders, "bad.xml")
    watcher.scan_once()
    assert (folders.error / "bad.2.xml").exists()  # a second file of the same name does not overwrite


def test_retry_later_keeps_the_file_claimed_with_a_growing_backoff(folders, tmp_path):
    now = [100.0]
    calls = []
    done = tmp_path / "done"
    done.mkdir()

    def handle(path: Path) -> None:
        calls.append(now[0])
        if len(calls) < 3:
            raise RetryLater("MyCareNet cannot be reached")
        os.replace(path, done / path.name)

    watcher = FolderWatcher(folders, handle, first_backoff_seconds=5, max_backoff_seconds=300, clock=lambda: now[0])
    drop(folders, "a.xml")
    watcher.scan_once()
    assert (folders.work / "a.xml").exists() and calls == [100.0]
    watcher.scan_once()
    assert calls == [100.0]  # not due yet
    now[0] = 105.0
    watcher.scan_once()
    assert calls == [100.0, 105.0]
    now[0] = 114.0
    watcher.scan_once()
    assert len(calls) == 2  # the second delay is 10 s
    now[0] = 115.0
    watcher.scan_once()
    assert (done / "a.xml").exists() and len(calls) == 3


def test_leftovers_of_a_crash_are_handled_once(folders, tmp_path):
    # a claim interrupted after the move (its marker still in the inbox), and a claimed file
    # whose handling was interrupted
    (folders.work / "moved.xml").write_text("moved")
    (folders.inbox / "moved.xml.ok").write_text("")
    (folders.work / "half.xml").write_text("half")
    handler = Recorder(tmp_path / "done")
    watcher = FolderWatcher(folders, handler, orphan_grace_seconds=0)
    watcher.scan_once()
    assert sorted(handler.seen) == ["half", "moved"]
    assert list(folders.inbox.iterdir()) == [] and list(folders.error.iterdir()) == []


def test_a_second_file_of_the_same_name_waits_for_the_first(folders, tmp_path):
    (folders.work / "a.xml").write_text("first")
    drop(folders, "a.xml", "second")
    seen = []

    def handle(path: Path) -> None:
        seen.append(path.read_text())
        path.unlink()

    watcher = FolderWatcher(folders, handle)
    watcher.scan_once()
    assert seen == ["first"]
    assert (folders.inbox / "a.xml").exists()
    watcher.scan_once()
    assert seen == ["first", "second"]


@pytest.mark.parametrize("poll", [False, True], ids=["events", "polling"])
def test_a_marker_wakes_the_watcher_long_before_the_rescan(folders, tmp_path, poll):
    handler = Recorder(tmp_path / "done")
    watcher = FolderWatcher(folders, handler, poll=poll, rescan_seconds=3600).start()
    try:
        time.sleep(0.2)
        started = time.monotonic()
        drop(folders, "a.xml")
        assert handler.event.wait(10), "the .ok did not wake the watcher"
        assert time.monotonic() - started < 5
    finally:
        watcher.stop()
    assert handler.seen == ["payload"]


def test_files_present_at_start_up_are_handled(folders, tmp_path):
    drop(folders, "early.xml")
    handler = Recorder(tmp_path / "done")
    watcher = FolderWatcher(folders, handler, rescan_seconds=3600).start()
    try:
        assert handler.event.wait(10)
    finally:
        watcher.stop()


def test_a_burst_of_files_is_all_handled(folders, tmp_path):
    handler = Recorder(tmp_path / "done")
    watcher = FolderWatcher(folders, handler, rescan_seconds=3600).start()
    try:
        for i in range(200):
            drop(folders, f"f{i:03d}.xml", str(i))
        deadline = time.monotonic() + 20
        while len(handler.seen) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    assert sorted(handler.seen, key=int) == [str(i) for i in range(200)]


def test_free_name(tmp_path):
    assert free_name(tmp_path, "a.xml") == tmp_path / "a.xml"
    (tmp_path / "a.xml").write_text("")
    (tmp_path / "a.2.xml").write_text("")
    assert free_name(tmp_path, "a.xml") == tmp_path / "a.3.xml"
    (tmp_path / "noext").write_text("")
    assert free_name(tmp_path, "noext") == tmp_path / "noext.2"


def test_files_dropped_one_after_another_are_each_handled_at_once(folders, tmp_path):
    """The raw event starts the pass: a file dropped right after the previous one's claim (a move out of
    the inbox) does not wait for the rescan, nor behind watchdog's 0.5 s pairing of move events."""
    handler = Recorder(tmp_path / "done")
    watcher = FolderWatcher(folders, handler, rescan_seconds=3600).start()
    delays = []
    try:
        time.sleep(0.2)
        for number in range(5):
            handler.event.clear()
            started = time.monotonic()
            drop(folders, f"f{number}.xml")
            assert handler.event.wait(10), "the .ok did not wake the watcher"
            delays.append(time.monotonic() - started)
    finally:
        watcher.stop()
    assert sorted(delays)[2] < 0.4, delays
    assert len(handler.seen) == 5


def test_one_clash_rule_for_every_folder_interface(tmp_path):
    from unified_messaging.folders import files
    from unified_messaging.insurability import batch, folder
    from unified_messaging.invoicing import pipeline

    assert folder.free_name is batch.free_name is files.free_name
    assert pipeline.move_to is files.move_to
    target = tmp_path / "out"
    target.mkdir()
    for number in range(3):
        (tmp_path / "FAC.txt").write_text(str(number))
        files.move_to(tmp_path / "FAC.txt", target)
    assert sorted(p.name for p in target.iterdir()) == ["FAC.2.txt", "FAC.3.txt", "FAC.txt"]
    (target / "BAD.txt.reason.txt").write_text("left by an interrupted move\n")
    (tmp_path / "BAD.txt").write_text("x")
    moved = files.move_to(tmp_path / "BAD.txt", target, reason="why")
    assert moved.name == "BAD.2.txt" and (target / "BAD.2.txt.reason.txt").read_text() == "why\n"
