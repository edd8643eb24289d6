"""The one folder watcher loop: a worker thread woken by file-system events, with a rescan as the net.

``WatchLoop`` runs ``step()`` in its own thread at start, **at once** on every file-system event
in the watched folder that ``wake_on(name)`` accepts, and at the latest ``next_wait()`` seconds
after the previous step (by default ``rescan_seconds``).  The step must be a full rescan of the
folder: events only say "look now", they are lost on network shares and on queue overflows.

Where the events come from:

* on Linux, the raw inotify events of the folder, read by watchdog's shared inotify reader
  (``InotifyFD``).  watchdog's ``Observer`` is not used there: it holds every ``IN_MOVED_FROM``
  for 0.5 s to pair it with its ``IN_MOVED_TO``, and each claim (a move out of the inbox) puts
  such an event at the head of its queue, so the next file dropped within 0.5 s waited behind it;
  that was most of the invoicing ``.ok`` -> TAck time;
* elsewhere, or when the inotify reader cannot be used, watchdog's ``Observer``;
* ``poll=True``: watchdog's ``PollingObserver`` (NFS/CIFS shares, where the kernel sees no
  change made by another machine).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

try:  # Linux only; watchdog's own shared reader of the inotify file descriptor
    from watchdog.observers.inotify_c import CallbackId, InotifyConstants, InotifyEvent, InotifyFD
except Exception:  # pragma: no cover - not Linux
    InotifyFD = None

logger = logging.getLogger(__name__)


def _any_name(name: str) -> bool:
    return True


class _RawEvents:
    """Wake on the raw inotify events of one folder (no pairing delay); a watchdog ``WatchCallback``."""

    def __init__(self, folder: Path, wake: threading.Event, wake_on: Callable[[str], bool]) -> None:
        self._wake = wake
        self._wake_on = wake_on
        self._id = CallbackId(id(self))
        mask = (InotifyConstants.IN_CREATE | InotifyConstants.IN_MOVED_TO | InotifyConstants.IN_CLOSE_WRITE
                | InotifyConstants.IN_DONT_FOLLOW | InotifyConstants.IN_ONLYDIR)
        self._reader = InotifyFD.get_instance()
        self._wd = self._reader.add_callback(os.fsencode(folder), mask, self, self._id)

    def on_event(self, event: "InotifyEvent") -> None:
        if not event.is_directory and self._wake_on(os.fsdecode(event.name)):
            self._wake.set()

    def on_watch_deleted(self, wd: int) -> None:
        self._wake.set()  # the folder went away: the next scan says what to do

    def on_queue_overflow(self) -> None:
        self._wake.set()

    def on_events_lost(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._reader.remove_callbacks([(self._wd, self._id)])


class _WatchdogEvents(FileSystemEventHandler):
    """Wake on watchdog's events (its ``Observer`` or ``PollingObserver``)."""

    def __init__(self, folder: Path, wake: threading.Event, wake_on: Callable[[str], bool], *, poll: bool) -> None:
        self._wake = wake
        self._wake_on = wake_on
        self._observer: BaseObserver = PollingObserver(timeout=1) if poll else Observer()
        self._observer.schedule(self, str(folder), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
        if not event.is_directory and self._wake_on(os.path.basename(path)):
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._observer.unschedule_all()
        self._observer.stop()
        self._observer.join(timeout=timeout)


class WatchLoop:
    """Run ``step()`` in one worker thread: at start, on each accepted event, and after ``next_wait()``."""

    def __init__(self, folder: Path, step: Callable[[], object], *, poll: bool = False,
                 rescan_seconds: float = 30.0, next_wait: Callable[[], float] | None = None,
                 wake_on: Callable[[str], bool] = _any_name, name: str = "folder") -> None:
        self.folder = Path(folder)
        self.poll = poll
        self.rescan_seconds = rescan_seconds
        self.name = name
        self._step = step
        self._next_wait = next_wait or (lambda: self.rescan_seconds)
        self._wake_on = wake_on
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: _RawEvents | _WatchdogEvents | None = None

    @property
    def events(self) -> str:
        """Where the wake-ups come from: ``inotify``, ``watchdog``, ``polling`` (or ``none`` before start)."""
        if isinstance(self._events, _RawEvents):
            return "inotify"
        if isinstance(self._events, _WatchdogEvents):
            return "polling" if self.poll else "watchdog"
        return "none"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> "WatchLoop":
        self._stop.clear()
        self._events = self._open_events()
        self._thread = threading.Thread(target=self._run, name=f"um-watch-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _open_events(self) -> _RawEvents | _WatchdogEvents:
        if not self.poll and InotifyFD is not None:
            try:
                return _RawEvents(self.folder, self._wake, self._wake_on)
            except Exception as exc:  # e.g. out of inotify watches: watchdog's observer still works
                logger.warning("raw inotify events unavailable for %s (%s); using watchdog's observer",
                               self.folder, exc)
        return _WatchdogEvents(self.folder, self._wake, self._wake_on, poll=self.poll)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the step being run (if any)."""
        self._stop.set()
        self._wake.set()
        if self._events is not None:
            self._events.close()
            self._events = None
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def wake(self) -> None:
        """Ask for a step now (tests, or another component that knows a file arrived)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._step()
            except Exception:  # a broken share must not kill the watcher: log, rescan later
                logger.exception("watching %s: a pass failed; trying again in %.0f s", self.folder,
                                 self.rescan_seconds)
            if self._stop.is_set():
                break
            self._wake.wait(self._wait())

    def _wait(self) -> float:
        try:
            return max(0.0, min(self.rescan_seconds, self._next_wait()))
        except Exception:
            logger.exception("watching %s: computing the next wake-up failed", self.folder)
            return self.rescan_seconds
