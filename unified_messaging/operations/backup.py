"""``unified-messaging backup DEST``: a consistent copy of an install, taken while it serves.

What is copied, into a new folder DEST (made as ``DEST.partial`` and renamed at the end, so a
half-made backup is never taken for a whole one):

* every SQLite database of the install (the journal with the invoicing state, the secure space),
  through SQLite's online backup API: each a consistent snapshot even while the service writes,
  with its WAL folded in, checked with ``PRAGMA integrity_check`` and its rows counted;
* then every other file of the data folder and of the invoicing and toQuery folders (where they
  lie outside the data folder): the files waiting, answered, archived, in error, the probative
  values, the demo PKI; the runtime files (the instance lock, the metrics' per-process counts,
  SQLite's ``-wal``/``-shm`` companions) are left out;
* the configuration file in use, for reference (``restore`` does not write it back);
* ``manifest.json``: what each file is, its size and SHA-256, each database's row counts.

The master key is **not** copied unless asked (``--include-master-key``): a backup that holds
its key opens every sealed keystore and password to whoever reads it.  Keep the key apart.

The folders are copied after the databases: a file the service moves while the backup runs
(a toSend file being posted) may be copied in the state it had before; restored, such a file is
recognised by its SHA-256 in the journal and is never sent twice.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from unified_messaging import __version__
from unified_messaging.config import Config
from unified_messaging.monitoring.metrics import FOLDER as METRICS_FOLDER
from unified_messaging.operations.files import fsync_folder, sha256_of
from unified_messaging.operations.instance import LOCK_FILE
from unified_messaging.secrets import MASTER_KEY_FILE, NEXT_KEY_FILE

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "unified-messaging backup"
FORMAT_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
_RUNTIME_SUFFIXES = ("-wal", "-shm", "-journal")
KEY_FILES = (MASTER_KEY_FILE, NEXT_KEY_FILE)


class BackupError(RuntimeError):
    """The backup cannot be made; the message says why and what to do."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def trees(config: Config) -> dict[str, Path]:
    """The folders an install keeps its state in, by name: the data folder, and the invoicing and
    toQuery roots when they lie outside it."""
    found = {"data": config.data_folder}
    for name, root in (("invoicing", config.invoicing_root), ("insurability", config.insurability_root)):
        if not root.is_relative_to(config.data_folder):
            found[name] = root
    return found


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def table_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {name: conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in names}


@dataclass
class BackupReport:
    destination: Path
    databases: dict[str, dict[str, int]] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    master_key_included: bool = False

    def lines(self) -> list[str]:
        out = [f"backup written to {self.destination}"]
        for name, counts in self.databases.items():
            out.append(f"  {name}: {sum(counts.values())} rows in {len(counts)} tables (integrity ok)")
        out.append(f"  {self.files} other files, {self.bytes} bytes")
        if self.master_key_included:
            out.append("The master key IS in this backup: whoever reads it can open the sealed keystores and "
                       "passwords. Keep it as safe as the keys themselves.")
        else:
            out.append("The master key is NOT in this backup. Keep a copy of master.key apart (a password vault, "
                       "another medium): without it the restored keystores, licence password and enc: values "
                       "cannot be opened.")
        return out


class Backup:
    """Copy the install described by ``config`` into the new folder ``destination``."""

    def __init__(self, config: Config, destination: Path, *, include_master_key: bool = False,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.config = config
        self.destination = Path(destination).expanduser().resolve()
        self.include_master_key = include_master_key
        self.clock = clock

    def run(self) -> BackupReport:
        trees_ = trees(self.config)
        for root in trees_.values():
            if self.destination.is_relative_to(root):
                raise BackupError(f"{self.destination} is inside {root}, which is being backed up: "
                                  "choose a destination outside the install's folders.")
        if self.destination.exists() and (not self.destination.is_dir() or any(self.destination.iterdir())):
            raise BackupError(f"{self.destination} already exists and is not an empty folder: give a new folder.")
        journal = self.config.journal_path
        if not journal.exists():
            raise BackupError(f"There is no install here: no journal at {journal}. Check --config.")
        partial = self.destination.with_name(self.destination.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True, mode=0o700)
        report = BackupReport(self.destination, master_key_included=self.include_master_key)
        entries: list[dict[str, object]] = []
        listed = {name: list(self._walk(root)) for name, root in trees_.items()}
        for name, paths in listed.items():  # the databases first: one consistent point in time
            for relative in paths:
                source = trees_[name] / relative
                if is_sqlite(source):
                    entries.append(self._database(source, partial / name / relative, f"{name}/{relative}", report))
        if not journal.is_relative_to(self.config.data_folder):  # [journal] path elsewhere
            entries.append(self._database(journal, partial / "journal" / journal.name, f"journal/{journal.name}",
                                          report))
        for name, paths in listed.items():
            for relative in paths:
                source = trees_[name] / relative
                if not is_sqlite(source):
                    entry = self._file(source, partial / name / relative, f"{name}/{relative}")
                    if entry is not None:
                        entries.append(entry)
                        report.files += 1
                        report.bytes += int(entry["size"])
        if self.config.source != "built-in defaults" and Path(self.config.source).is_file():
            entries.append(self._file(Path(self.config.source), partial / "config" / Path(self.config.source).name,
                                      f"config/{Path(self.config.source).name}", kind="config"))
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "product_version": __version__,
            "created": self.clock().isoformat(timespec="seconds"),
            "trees": {name: str(root) for name, root in trees_.items()} | {"journal": str(journal)},
            "master_key": "included" if self.include_master_key else "not included",
            "files": entries,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        fsync_folder(partial)
        if self.destination.exists():
            self.destination.rmdir()  # the empty folder given
        os.replace(partial, self.destination)
        log.info("backup of %s written to %s (%d databases, %d files)", self.config.data_folder, self.destination,
                 len(report.databases), report.files)
        return report

    def _walk(self, root: Path) -> Iterator[Path]:
        if not root.exists():
            return
        for folder, subfolders, names in os.walk(root):
            here = Path(folder)
            if here == root:
                subfolders[:] = [s for s in subfolders if s != METRICS_FOLDER]
            for name in sorted(names):
                relative = (here / name).relative_to(root)
                if here == root and (name == LOCK_FILE or (name in KEY_FILES and not self.include_master_key)):
                    continue
                if name.endswith(_RUNTIME_SUFFIXES) or name.startswith(".") and ".tmp-" in name:
                    continue
                yield relative

    def _database(self, source: Path, target: Path, name: str, report: BackupReport) -> dict[str, object]:
        target.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(source, timeout=30)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # one step: a consistent snapshot, while writers go on (WAL)
            dst.execute("PRAGMA journal_mode=DELETE")  # self-contained: no -wal beside it
            verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"The copy of {source} fails SQLite's integrity check ({verdict}); the backup "
                                  f"was not finished. Run 'sqlite3 {source} \"PRAGMA integrity_check\"'.")
            counts = table_counts(dst)
        finally:
            dst.close()
            src.close()
        os.chmod(target, 0o600)
        report.databases[name] = counts
        return {"path": name, "kind": "sqlite", "size": target.stat().st_size, "sha256": sha256_of(target),
                "tables": counts}

    def _file(self, source: Path, target: Path, name: str, kind: str = "file") -> dict[str, object] | None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(source, target)
        except FileNotFoundError:  # moved by the service since the listing: it is copied where it went, if later
            log.debug("%s moved during the backup", source)
            return None
        return {"path": name, "kind": kind, "size": target.stat().st_size, "sha256": sha256_of(target)}
