"""The batch runner's folder chores: one run per job at a time, the resume sidecar, moving inputs away."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path

from unified_messaging.folders.files import REASON_SUFFIX, free_name, fsync_folder, taken_with_reason, write_atomically

logger = logging.getLogger(__name__)

LOCK_NAME = ".unified-messaging.lock"


class exclusive:
    """A non-blocking ``flock`` on a lock file: two runs never write the same output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> bool:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = -1
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def move(path: Path, folder: Path) -> Path:
    target = free_name(folder, path.name)
    shutil.move(str(path), str(target))
    fsync_folder(folder)
    return target


def move_with_reason(path: Path, folder: Path, reason: str) -> Path:
    target = free_name(folder, path.name, taken=taken_with_reason)
    write_atomically(target.with_name(target.name + REASON_SUFFIX), (reason + "\n").encode("utf-8"))
    shutil.move(str(path), str(target))
    fsync_folder(folder)
    logger.warning("%s moved to %s: %s", path.name, folder, reason)
    return target

