"""Pick up files that another program drops in a folder, each followed by its ``.ok`` marker.

Used by the insurability ``toQuery`` folder; the invoicing ``toSend`` folder runs its own claim
(marker first, journalled) on the same :class:`~unified_messaging.folders.events.WatchLoop`.
What ENGINEERING.md learnt about folder pickup is built in:

* a file system event **wakes** the worker at once; the truth is a **rescan** of the folder,
  done at start-up, after every wake-up and every ``rescan_seconds`` (events are lost on network
  shares and on buffer overflows). ``poll=True`` uses watchdog's polling observer, for NFS/CIFS
  shares where the kernel sees no change made by another machine;
* a payload is ready only once its marker (``<payload name>.ok``) exists: the dropping program
  writes the payload, then the marker, so a payload without marker is never touched;
* a ready file is **claimed** by an atomic, no-clobber move into the working folder (a hard link
  that fails if the name is taken, then the inbox's name removed), then its marker is removed: of
  two nodes sharing the folders, one only wins, and a file of that name still being handled is
  never replaced. Files in the working folder are the queue: after a crash they are handled again
  at start-up (the handler must make that safe: see :class:`FolderWatcher`); with several nodes,
  the one leading (``database/leader.py``) runs the watcher, and ``may_act`` false (it may have
  lost the leadership) stops it before the next claim or file;
* a marker without payload (and no claimed payload of that name) goes to the error folder with a
  reason beside it, once it is ``orphan_grace_seconds`` old;
* a handler that raises :class:`RetryLater` leaves the file claimed; it is tried again after a
  backoff that doubles up to ``max_backoff_seconds`` (the shared :mod:`unified_messaging.retry` policy).
  A **storage fault** (an ``OSError`` saying the data folder is full or read-only: ENOSPC, EDQUOT,
  EROFS, EACCES, EPERM; or SQLite saying the same of the journal: :func:`is_storage_fault`) at any
  write (the claim, the handler's writes, the move to the error folder) is handled the same way:
  the file stays where it is, the fault is logged and kept in ``storage_fault`` until a pass
  succeeds, and the shared policy tries again, so the work goes on without a restart once space
  returns. Any other exception moves the file to the error folder with the exception's text as the reason;
* ``finish`` (optional) runs at the start of every pass: a handler that got past the point of no
  return before a storage fault (its file already moved out of the working folder) completes
  what is left there.

One worker thread per watcher handles one file at a time, in name order.
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unified_messaging.folders.events import WatchLoop
from unified_messaging.folders.files import (
    MARKER,
    REASON_SUFFIX,
    free_name,
    fsync_folder,
    move_to_error,
    write_atomically,
)
from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.retry import Backoff, RetryPolicy
from unified_messaging.texts import message, text

log = logging.getLogger(__name__)

STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
# What SQLite says (sqlite3.OperationalError) when the journal's disk is full or read-only.
_SQLITE_STORAGE = ("database or disk is full", "readonly database", "unable to open database file",
                   "disk i/o error")
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})  # no hard link here
_FINISH = "(unfinished work)"  # the backoff key of the ``finish`` step

__all__ = ["MARKER", "REASON_SUFFIX", "FolderWatcher", "Rejected", "RetryLater", "WatchedFolders",
           "free_name", "fsync_folder", "is_storage_fault", "move_to_error", "write_atomically"]


def is_storage_fault(exc: BaseException) -> bool:
    """True when ``exc`` says the data folder (or the journal's disk) is full or read-only."""
    if isinstance(exc, OSError):
        return exc.errno in STORAGE_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        return any(words in str(exc).lower() for words in _SQLITE_STORAGE)
    return False


def describe_storage_fault(exc: BaseException, where: Path) -> str:
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename or where})"
    return f"the journal: {exc}"


# Why a file went to error/ (registered texts: Mybox shows them in the user's language).
MARKER_ALONE = message("The marker {marker} arrived without its file {payload}. Write the file first, then its "
                       "marker {marker}, in {folder}.")
CRASHED = message("unified-messaging could not handle this file: {error}")


class RetryLater(Exception):
    """Raised by a handler: the file cannot be handled now (e.g. MyCareNet unreachable); keep it."""


class Rejected(Exception):
    """Raised by a handler: the file can never be handled; it goes to the error folder with this text."""


@dataclass(frozen=True)
class WatchedFolders:
    """The three folders of one watcher: where files arrive, where they are claimed, where refusals go."""

    inbox: Path
    work: Path
    error: Path

    def create(self) -> None:
        for folder in (self.inbox, self.work, self.error):
            folder.mkdir(parents=True, exist_ok=True)


def claim(payload: Path, claimed: Path) -> bool:
    """Move ``payload`` to ``claimed`` unless that name is taken; whether this call moved it.

    ``os.link`` fails when ``claimed`` exists, so of two processes (two nodes on a shared folder)
    one only wins, and a file still being handled under that name is never replaced (it is taken
    afterwards).  A claim cut off between the link and the unlink (both names on one file) is
    completed by the next one.  Where the file system has no hard links (some SMB shares), a
    check then a rename, which is atomic but may replace a file claimed by another node meanwhile.
    """
    try:
        os.link(payload, claimed)
    except FileExistsError:
        try:
            if os.path.samefile(payload, claimed):
                payload.unlink(missing_ok=True)  # an interrupted claim of this very file: complete it
        except FileNotFoundError:
            pass
        return False
    except FileNotFoundError:
        return False  # another process claimed it first
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if claimed.exists():
            return False
        try:
            os.replace(payload, claimed)
        except FileNotFoundError:
            return False
        return True
    try:
        payload.unlink()
    except FileNotFoundError:
        pass  # the interrupted claim was completed by another process meanwhile
    return True


class FolderWatcher:
    """Hand every ready file of ``folders.inbox`` to ``handle(path_in_work_folder)``, once.

    The handler must move the file out of the working folder when it is done (a file still there
    afterwards is handed again at the next scan). It must also be safe to call again for a file
    it was handling when the process died: for example, write its results under names derived
    from the file and atomically, so that doing it again replaces rather than duplicates.
    """

    def __init__(
        self,
        folders: WatchedFolders,
        handle: Callable[[Path], None],
        *,
        poll: bool = False,
        rescan_seconds: float = 30.0,
        orphan_grace_seconds: float = 5.0,
        first_backoff_seconds: float = 5.0,
        max_backoff_seconds: float = 300.0,
        name: str = "folder",
        clock: Callable[[], float] = time.monotonic,
        finish: Callable[[], None] | None = None,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.folders = folders
        self.handle = handle
        self.finish = finish
        self.may_act = may_act
        self.poll = poll
        self.rescan_seconds = rescan_seconds
        self.orphan_grace_seconds = orphan_grace_seconds
        self.first_backoff_seconds = first_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.name = name
        self.clock = clock
        self._loop: WatchLoop | None = None
        self._backoff = Backoff(RetryPolicy(first=first_backoff_seconds, factor=2.0, maximum=max_backoff_seconds),
                                clock=lambda: self.clock())  # the shared policy (unified_messaging.retry)
        self.storage_fault: str | None = None  # the last full/read-only data folder error, until a success
        self.handled = 0  # files handed to the handler and moved out of the working folder

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "FolderWatcher":
        self.folders.create()
        self._loop = WatchLoop(self.folders.inbox, self.scan_once, poll=self.poll,
                               rescan_seconds=self.rescan_seconds, next_wait=self._next_wait,
                               name=self.name).start()
        log.info("watching %s for files and their %s markers (%s events, rescan every %.0f s)",
                 self.folders.inbox, MARKER, self._loop.events, self.rescan_seconds)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the file being handled (if any); nothing is left half-claimed."""
        if self._loop is not None:
            self._loop.stop(timeout)
            self._loop = None

    def wake(self) -> None:
        """Ask for a scan now (tests, or another component that knows a file arrived)."""
        if self._loop is not None:
            self._loop.wake()

    @property
    def _stopping(self) -> bool:
        return self._loop is not None and self._loop.stopping

    def _next_wait(self) -> float:
        wait = self.rescan_seconds
        soonest = self._backoff.soonest()
        if soonest is not None:
            wait = min(wait, max(0.05, soonest - self.clock()))
        return wait

    # ------------------------------------------------------------------ one pass
    def scan_once(self) -> int:
        """Finish what was left, claim every ready file, then handle every claimed one that is due;
        returns files handled."""
        if not self.may_act():
            return 0
        if self.finish is not None and self._due(_FINISH):
            try:
                self.finish()
            except Exception as exc:
                if not is_storage_fault(exc):
                    raise
                self._storage_fault(_FINISH, exc)
            else:
                if self.storage_fault and self.storage_fault.startswith(_FINISH):
                    self.storage_fault = None
                self._backoff.forget(_FINISH)
        try:
            self._claim_ready()
        except Exception as exc:  # the file stays in the inbox with its marker: nothing is lost
            if not is_storage_fault(exc):
                raise
            self._storage_fault("(claiming)", exc, keep=False)
        done = 0
        for path in sorted(p for p in self.folders.work.iterdir() if self._is_payload(p)):
            if self._stopping or not self.may_act():
                break
            if self._due(path.name):
                done += self._handle(path)
        return done

    @staticmethod
    def _is_payload(path: Path) -> bool:
        return path.is_file() and not path.name.startswith(".") and not path.name.endswith(MARKER)

    def _claim_ready(self) -> None:
        inbox, work = self.folders.inbox, self.folders.work
        for marker in sorted(inbox.glob("*" + MARKER)):
            if marker.name.startswith(".") or not marker.is_file() or not self.may_act():
                continue
            payload = marker.with_name(marker.name[: -len(MARKER)])
            claimed = work / payload.name
            if payload.is_file():
                if claim(payload, claimed):
                    fsync_folder(work)
                    marker.unlink(missing_ok=True)
                    log.info("claimed %s", payload.name)
            elif claimed.exists():
                marker.unlink(missing_ok=True)  # the claim was interrupted after the move
            elif self._age(marker) >= self.orphan_grace_seconds:
                move_to_error(marker, self.folders.error,
                              str(text(MARKER_ALONE, marker=marker.name, payload=payload.name, folder=str(inbox))))

    @staticmethod
    def _age(path: Path) -> float:
        try:
            return time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _due(self, name: str) -> bool:
        return self._backoff.due(name)

    def _crashed(self, path: Path, exc: BaseException) -> int:
        self._backoff.forget(path.name)
        log.exception("handling %s failed", path.name)
        if path.exists():
            move_to_error(path, self.folders.error, str(text(CRASHED, error=f"{type(exc).__name__}: {exc}")))
        return 1

    def _handle(self, path: Path) -> int:
        try:
            return self._handle_once(path)
        except Exception as exc:  # a storage fault, even while moving the file to the error folder
            if not is_storage_fault(exc):
                raise
            if path.exists():
                return self._storage_fault(path.name, exc)
            # past the handler's point of no return: its ``finish`` completes the rest
            return self._storage_fault(_FINISH, exc, keep=self.finish is not None)

    def _storage_fault(self, key: str, exc: BaseException, *, keep: bool = True) -> int:
        """The data folder is full or read-only (#19 point 5): moving the file to error would fail
        too, and waiting loses nothing; keep it where it is and try again by the shared policy."""
        delay = self._backoff.failed(key) if keep else self.rescan_seconds
        if not keep:
            self._backoff.forget(key)
        self.storage_fault = f"{key}: {describe_storage_fault(exc, self.folders.work)}"
        log.error("storage fault in %s while handling %s: %s; nothing is lost, trying again in %.3g s",
                  self.name, key, describe_storage_fault(exc, self.folders.work), delay)
        return 0

    def _handle_once(self, path: Path) -> int:
        try:
            self.handle(path)
        except RetryLater as exc:
            delay = self._backoff.failed(path.name)
            log.warning("%s kept in %s, trying again in %.0f s: %s", path.name, self.folders.work, delay,
                        mask_ssins_in_text(str(exc)))
            return 0
        except Rejected as exc:
            self._backoff.forget(path.name)
            if path.exists():
                move_to_error(path, self.folders.error, str(exc))
            return 1
        except Exception as exc:
            if is_storage_fault(exc):
                raise
            return self._crashed(path, exc)
        self._backoff.forget(path.name)
        self.storage_fault = None
        if path.exists():
            log.error("the handler left %s in %s; it will be handed again", path.name, self.folders.work)
            return 0
        self.handled += 1
        return 1
