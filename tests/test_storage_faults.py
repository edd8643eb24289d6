"""#19 point 5 (first part): the data folder full or read-only while a watched file is handled.

The handler writes its answer through a small writer object (the write seam); the seam raises the
OSError a full or read-only file system raises. The file must stay claimed (not lost, not in error),
be sent once only, the fault be logged and exposed on the watcher, and the next attempt by the shared
retry policy must succeed once space returns, without a restart. One test fills a real tmpfs.
"""
from __future__ import annotations

import errno
import logging
import os
import subprocess
from pathlib import Path

import pytest

from unified_messaging.folders.watcher import FolderWatcher, WatchedFolders


class Writer:
    """Writes answer files; ``fail_with`` makes the next writes raise like a full/read-only disk."""

    def __init__(self) -> None:
        self.fail_with: int | None = None

    def write(self, path: Path, text: str) -> None:
        if self.fail_with is not None:
            raise OSError(self.fail_with, os.strerror(self.fail_with), str(path))
        path.write_text(text)


def make(tmp_path: Path, answers: Path, writer: Writer, now: list[float]):
    folders = WatchedFolders(tmp_path / "in", tmp_path / "work", tmp_path / "error")
    folders.create()
    answers.mkdir(parents=True, exist_ok=True)
    sent: list[str] = []

    def handle(path: Path) -> None:
        answer = answers / (path.name + ".answer")
        if path.name not in sent:  # a journal of what was sent: a retry only rewrites the answer
            sent.append(path.name)
        writer.write(answer, "answer")
        path.unlink()

    watcher = FolderWatcher(folders, handle, first_backoff_seconds=5, max_backoff_seconds=60,
                            clock=lambda: now[0])
    return folders, watcher, sent


def drop(folders: WatchedFolders, name: str) -> None:
    (folders.inbox / name).write_text("ssin;date\n")
    (folders.inbox / (name + ".ok")).write_text("")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES], ids=["full", "read-only", "denied"])
def test_a_storage_fault_keeps_the_file_and_recovers_without_restart(tmp_path, caplog, code):
    now = [0.0]
    writer = Writer()
    folders, watcher, sent = make(tmp_path, tmp_path / "answers", writer, now)
    drop(folders, "q1.csv")
    writer.fail_with = code
    with caplog.at_level(logging.ERROR, logger="unified_messaging.folders.watcher"):
        assert watcher.scan_once() == 0
    assert (folders.work / "q1.csv").exists() and not any(folders.error.iterdir())
    assert "storage fault in folder while handling q1.csv" in caplog.text and os.strerror(code) in caplog.text
    assert watcher.storage_fault and "q1.csv" in watcher.storage_fault
    now[0] = 1.0
    assert watcher.scan_once() == 0  # not due yet (backoff 5 s)
    writer.fail_with = None  # space returns
    now[0] = 6.0
    assert watcher.scan_once() == 1
    assert not (folders.work / "q1.csv").exists() and (tmp_path / "answers" / "q1.csv.answer").exists()
    assert sent == ["q1.csv"] and watcher.storage_fault is None


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` until ENOSPC; returns the filler file (unlink it to free space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as full:
            while True:
                os.write(fd, b"x" * 4096)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_a_real_full_tmpfs(tmp_path, caplog):
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount):
        pytest.skip("needs root and permission to mount a tmpfs (mount -t tmpfs) to fill a real file system")
    try:
        now = [0.0]
        folders, watcher, sent = make(tmp_path, mount / "answers", Writer(), now)
        drop(folders, "q2.csv")
        filler = fill(mount)
        with caplog.at_level(logging.ERROR, logger="unified_messaging.folders.watcher"):
            assert watcher.scan_once() == 0  # the answer does not fit on the full tmpfs
        assert (folders.work / "q2.csv").exists() and not any(folders.error.iterdir())
        assert "No space left on device" in caplog.text
        filler.unlink()  # space returns
        now[0] = 10.0
        assert watcher.scan_once() == 1 and not (folders.work / "q2.csv").exists()
        assert (mount / "answers" / "q2.csv.answer").read_text() == "answer" and sent == ["q2.csv"]
    finally:
        subprocess.run(["umount", str(mount)], check=False)

