"""Pick up files that another program drops in a folder, each followed by its ``.ok`` marker.

Used by the insurability ``toQuery`` folder, and meant for the invoicing ``toSend`` folder too.
What ENGINEERING.md learnt about folder pickup is built in:

* file system events (watchdog) only **wake** the worker up; the truth is a **rescan** of the
  folder, done at start-up, after every wake-up and every ``rescan_seconds`` (events are lost on
  network shares and on buffer overflows). ``poll=True`` uses watchdog's polling observer, for
  NFS/CIFS shares where the kernel sees no change made by another machine;
* a payload is ready only once its marker (``<payload name>.ok``) exists: the dropping program
  writes the payload, then the marker, so a payload without marker is never touched;
* a ready file is **claimed** by an atomic ``os.replace`` into the working folder, then its marker
  is removed. Files in the working folder are the queue: after a crash they are handled again at
  start-up (the handler must make that safe: see :class:`FolderWatcher`);
* a marker without payload (and no claimed payload of that name) goes to the error folder with a
  reason beside it, once it is ``orphan_grace_seconds`` old;
* a handler that raises :class:`RetryLater` leaves the file claimed; it is tried again after a
  backoff that doubles up to ``max_backoff_seconds``. Any other exception moves the file to the
  error folder with the exception's text as the reason.

One worker thread per watcher handles one file at a time, in name order.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from unified_messaging.identifiers import mask_ssins_in_text

log = logging.getLogger(__name__)

MARKER = ".ok"
REASON_SUFFIX = ".reason.txt"


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


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees either nothing or the whole file (fsynced)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make renames and creations in ``folder`` durable (POSIX: fsync the directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def free_name(folder: Path, name: str, *, taken: Callable[[Path], bool] | None = None) -> Path:
    """``folder/name``, or ``folder/stem.2.ext``, ``stem.3.ext``... when that name is taken."""
    is_taken = taken or (lambda p: p.exists())
    candidate = folder / name
    stem, dot, ext = name.rpartition(".") if "." in name[1:] else (name, "", "")
    n = 2
    while is_taken(candidate):
        candidate = folder / (f"{stem}.{n}.{ext}" if dot else f"{name}.{n}")
        n += 1
    return candidate


def move_to_error(path: Path, error_folder: Path, reason: str) -> Path:
    """Move ``path`` into ``error_folder`` (under a free name) with ``<name>.reason.txt`` beside it."""
    target = free_name(error_folder, path.name,
                       taken=lambda p: p.exists() or p.with_name(p.name + REASON_SUFFIX).exists())
    write_atomically(target.with_name(target.name + REASON_SUFFIX), (reason.rstrip() + "\n").encode("utf-8"))
    os.replace(path, target)
    fsync_folder(error_folder)
    log.warning("%s moved to %s: %s", path.name, error_folder, mask_ssins_in_text(reason))
    return target


class _WakeUp(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.wake.set()


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
    ) -> None:
        self.folders = folders
        self.handle = handle
        self.poll = poll
        self.rescan_seconds = rescan_seconds
        self.orphan_grace_seconds = orphan_grace_seconds
        self.first_backoff_seconds = first_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.name = name
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None
        self._backoff: dict[str, tuple[float, float]] = {}  # name -> (next attempt, current delay)
        self.handled = 0  # files handed to the handler and moved out of the working folder

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "FolderWatcher":
        self.folders.create()
        observer = PollingObserver(timeout=1) if self.poll else Observer()
        observer.schedule(_WakeUp(self._wake), str(self.folders.inbox), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name=f"um-watch-{self.name}", daemon=True)
        self._thread.start()
        log.info("watching %s for files and their %s markers (%s, rescan every %.0f s)",
                 self.folders.inbox, MARKER, "polling" if self.poll else "events", self.rescan_seconds)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the file being handled (if any); nothing is left half-claimed."""
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.unschedule_all()
            self._observer.stop()
            self._observer.join(timeout=timeout)
            self._observer = None
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def wake(self) -> None:
        """Ask for a scan now (tests, or another component that knows a file arrived)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.scan_once()
            except Exception:  # a broken share must not kill the watcher: log, rescan later
                log.exception("scanning %s failed; trying again in %.0f s", self.folders.inbox, self.rescan_seconds)
            self._wake.wait(self._next_wait())

    def _next_wait(self) -> float:
        wait = self.rescan_seconds
        if self._backoff:
            soonest = min(at for at, _ in self._backoff.values())
            wait = min(wait, max(0.05, soonest - self.clock()))
        return wait

    # ------------------------------------------------------------------ one pass
    def scan_once(self) -> int:
        """Claim every ready file, then handle every claimed one that is due; returns files handled."""
        self._claim_ready()
        done = 0
        for path in sorted(p for p in self.folders.work.iterdir() if self._is_payload(p)):
            if self._stop.is_set():
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
            if marker.name.startswith(".") or not marker.is_file():
                continue
            payload = marker.with_name(marker.name[: -len(MARKER)])
            claimed = work / payload.name
            if payload.is_file():
                if claimed.exists():
                    continue  # a file of that name is still being handled: take this one afterwards
                os.replace(payload, claimed)
                fsync_folder(work)
                marker.unlink(missing_ok=True)
                log.info("claimed %s", payload.name)
            elif claimed.exists():
                marker.unlink(missing_ok=True)  # the claim was interrupted after the move
            elif self._age(marker) >= self.orphan_grace_seconds:
                move_to_error(marker, self.folders.error,
                              f"The marker {marker.name} arrived without its file {payload.name}. Write the file "
                              f"first, then its marker {marker.name}, in {inbox}.")

    @staticmethod
    def _age(path: Path) -> float:
        try:
            return time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _due(self, name: str) -> bool:
        entry = self._backoff.get(name)
        return entry is None or entry[0] <= self.clock()

    def _handle(self, path: Path) -> int:
        try:
            self.handle(path)
        except RetryLater as exc:
            _, delay = self._backoff.get(path.name, (0.0, self.first_backoff_seconds / 2))
            delay = min(delay * 2, self.max_backoff_seconds)
            self._backoff[path.name] = (self.clock() + delay, delay)
            log.warning("%s kept in %s, trying again in %.0f s: %s", path.name, self.folders.work, delay,
                        mask_ssins_in_text(str(exc)))
            return 0
        except Rejected as exc:
            self._backoff.pop(path.name, None)
            if path.exists():
                move_to_error(path, self.folders.error, str(exc))
            return 1
        except Exception as exc:
            self._backoff.pop(path.name, None)
            log.exception("handling %s failed", path.name)
            if path.exists():
                move_to_error(path, self.folders.error,
                              f"unified-messaging could not handle this file: {type(exc).__name__}: {exc}")
            return 1
        self._backoff.pop(path.name, None)
        if path.exists():
            log.error("the handler left %s in %s; it will be handed again", path.name, self.folders.work)
            return 0
        self.handled += 1
        return 1
