"""The instance lock: held shared by every running process of a service, exclusively by the
operations that need the service stopped (restore, master key rotation).

An ``flock`` on ``<data folder>/instance.lock``: the kernel drops it when the process ends, even
by SIGKILL, so a crash never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = "instance.lock"


class InstanceBusy(RuntimeError):
    """The data folder is in use in a way that forbids what was asked; the message says what to do."""


class InstanceLock:
    """``share()`` while serving, ``exclusive()`` for an operation on a stopped install."""

    def __init__(self, data_folder: Path) -> None:
        self.path = Path(data_folder) / LOCK_FILE
        self._fd: int | None = None

    def share(self) -> "InstanceLock":
        self._take(fcntl.LOCK_SH, "A restore or a master key rotation is under way on this data folder; "
                                  "start the service again when it has finished.")
        return self

    def exclusive(self, doing: str) -> "InstanceLock":
        self._take(fcntl.LOCK_EX, f"unified-messaging is running on this data folder ({self.path.parent}); "
                                  f"stop it before you {doing} (systemctl stop unified-messaging, or Ctrl-C "
                                  "the serve command), then run this command again.")
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def _take(self, mode: int, busy: str) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InstanceBusy(busy) from None
        self._fd = fd

    def __enter__(self) -> "InstanceLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
