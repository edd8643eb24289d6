"""SQLite the way every store of the gateway uses it (the journal, the secure space, Mybox).

Rules learnt the hard way (see ENGINEERING.md): WAL mode, one connection per thread, and every
writing transaction opened with ``BEGIN IMMEDIATE`` so that concurrent writers queue up instead
of failing with "database is locked" (``sqlite.py``'s transactions).

What keeps a file that several processes write (``serve`` and ``batch run`` share the journal)
from being corrupted, beyond SQLite's own guarantees (a SIGKILL in the middle of a write is safe):

* **No connection crosses a fork.** A child process that inherits a ``SqliteFile`` opens its own
  connections; the inherited ones are left alone (never used, never closed: closing them in the
  child would run SQLite's close logic on the parent's transaction state).
* **Nothing in a process that holds the file open may open it outside SQLite.** A plain
  ``open()``/``close()`` of ``journal.sqlite`` (``Path.read_bytes()``, a copy) releases every POSIX
  lock the process holds on it, SQLite's included: another process closing its last connection
  then believes it is alone, checkpoints and deletes the ``-wal`` and ``-shm`` still in use here,
  and the two processes go on in two different logs ("database disk image is malformed", or
  committed rows silently lost). Read the file from another process, or through SQLite.
* **The files are private** (mode 600, like ``master.key``): they hold consultations, password
  hashes and sealed secrets. SQLite gives the ``-wal`` and ``-shm`` files the mode of the database
  file, so the database file is created 600 before SQLite opens it, and an older file is narrowed.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
COMPANION_SUFFIXES = ("", "-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Create ``path`` with mode 600 when it is absent, and narrow it and its companions to 600.

    An existing file is never opened here (only ``stat`` and ``chmod``): this process may hold it
    open through SQLite already, and a close would release SQLite's locks (see the module's doc).
    """
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    except OSError as exc:
        logger.warning("%s: could not be created with mode 600 (%s)", path, exc)
    for suffix in COMPANION_SUFFIXES:
        companion = Path(f"{path}{suffix}")
        try:
            mode = stat.S_IMODE(companion.stat().st_mode)
            if mode & 0o077:
                companion.chmod(mode & 0o700)
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("%s: readable by other users and could not be made private (%s)", companion, exc)


class SqliteFile:
    """A SQLite file shared by many threads; ``extra_pragmas`` are run on every new connection."""

    extra_pragmas: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        make_private(self.path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._after_fork()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", *self.extra_pragmas):
                conn.execute(f"PRAGMA {pragma}")
            self._configure(conn)
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's connections (kept referenced, so never closed here)."""
        self._guard = threading.Lock()
        self._inherited.extend(self._all)
        self._all = []
        self._local = threading.local()
        self._pid = os.getpid()
        logger.debug("%s: opened again in the forked process %d", self.path.name, self._pid)

    def _configure(self, conn: sqlite3.Connection) -> None:
        """A hook for subclasses (row factory...)."""

    def close(self) -> None:
        """Close every thread's connection (in a forked child, only the child's own)."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
