"""A faulty disk for storage-fault tests: the OSError a full or read-only file system raises,
injected at the write seams of the folder interfaces (their ``os.replace``, ``write_atomically``
and ``move_to_error``), a chosen number of times, then the disk works again."""
from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from unified_messaging.folders import watcher as watcher_module
from unified_messaging.folders.watcher import REASON_SUFFIX
from unified_messaging.insurability import folder as folder_module


class Disk:
    """Fails the next ``times`` writes that ``matches`` with ``code``, then works again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.code = errno.ENOSPC
        self.times = 0
        self.matches = lambda path: False
        self.failed = 0

    def fail(self, matches, *, times: int = 2, code: int = errno.ENOSPC) -> None:
        with self.lock:
            self.matches, self.times, self.code, self.failed = matches, times, code, 0

    def check(self, path) -> None:
        with self.lock:
            if self.times and self.matches(Path(path)):
                self.times -= 1
                self.failed += 1
                raise OSError(self.code, os.strerror(self.code), str(path))


class OsWithDisk:
    """The ``os`` module as a module sees it, with ``replace`` and ``link`` (a toQuery claim is a hard link)
    going through the faulty disk."""

    def __init__(self, disk: Disk) -> None:
        self._disk = disk

    def replace(self, source, target) -> None:
        self._disk.check(target)
        os.replace(source, target)

    def link(self, source, target, **kwargs) -> None:
        self._disk.check(target)
        os.link(source, target, **kwargs)

    def __getattr__(self, name: str):
        return getattr(os, name)


def toquery_disk(monkeypatch) -> Disk:
    """A Disk behind every write of the toQuery pipeline (the watcher's and the handler's)."""
    disk = Disk()
    real_write, real_move_to_error = folder_module.write_atomically, watcher_module.move_to_error

    def write_atomically(path, data):
        disk.check(path)
        real_write(path, data)

    def move_to_error(path, error_folder, reason):
        disk.check(Path(error_folder) / (Path(path).name + REASON_SUFFIX))
        return real_move_to_error(path, error_folder, reason)

    monkeypatch.setattr(folder_module, "write_atomically", write_atomically)
    monkeypatch.setattr(folder_module, "os", OsWithDisk(disk))
    monkeypatch.setattr(watcher_module, "os", OsWithDisk(disk))
    monkeypatch.setattr(watcher_module, "move_to_error", move_to_error)
    return disk
