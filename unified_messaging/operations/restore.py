"""``unified-messaging restore SRC``: put a backup made by ``backup`` back in place.

The service must be stopped (the instance lock).  Before anything is written, every file of the
backup is checked against its SHA-256 in the manifest: a damaged backup changes nothing.  The
backup's trees go where the *present* configuration puts them (the data folder, the invoicing and
toQuery roots, the journal), so a backup can be restored on a new machine with other paths.

An install already in place is never overwritten: without ``--force`` the restore refuses; with
it, what is there is first moved aside to ``<folder>.before-restore-<time>``.  The present master
key stays when the backup has none (it is probably the one the backup was sealed under); the
restore then checks that it opens every sealed value and says plainly when it does not.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from unified_messaging.config import Config
from unified_messaging.operations.backup import FORMAT, FORMAT_VERSION, KEY_FILES, MANIFEST, table_counts, trees, utc_now
from unified_messaging.operations.files import fsync_folder, sha256_of
from unified_messaging.operations.instance import LOCK_FILE, InstanceLock
from unified_messaging.secrets import MASTER_KEY_FILE, SecretError, master_keys
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore

log = logging.getLogger(__name__)


class RestoreError(RuntimeError):
    """The backup cannot be restored; the message says why and what to do."""


@dataclass
class RestoreReport:
    databases: dict[str, dict[str, int]] = field(default_factory=dict)
    files: int = 0
    moved_aside: list[Path] = field(default_factory=list)
    sealed_values: int | None = None
    key_problem: str = ""
    config_copy: Path | None = None

    def lines(self) -> list[str]:
        out = [f"moved the install that was there to {p}" for p in self.moved_aside]
        for name, counts in self.databases.items():
            out.append(f"  {name}: {sum(counts.values())} rows in {len(counts)} tables, as in the backup")
        out.append(f"  {self.files} other files")
        if self.sealed_values is not None:
            out.append(f"The master key opens the {self.sealed_values} sealed value(s) of the secure space.")
        if self.key_problem:
            out.append(self.key_problem)
        if self.config_copy:
            out.append(f"The configuration file of the backup is in {self.config_copy} (not written back: compare it "
                       "with yours).")
        return out


class Restore:
    """Restore the backup in ``source`` into the install described by ``config``."""

    def __init__(self, config: Config, source: Path, *, force: bool = False,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.config = config
        self.source = Path(source).expanduser().resolve()
        self.force = force
        self.clock = clock

    def run(self) -> RestoreReport:
        manifest = self._manifest()
        self._verify(manifest)
        data = self.config.data_folder
        data.mkdir(parents=True, exist_ok=True)
        with InstanceLock(data).exclusive("restore a backup"):
            targets = trees(self.config)
            journal = self.config.journal_path
            if not journal.is_relative_to(data):
                targets["journal"] = journal.parent
            report = RestoreReport()
            self._make_room(targets, report, key_in_backup=manifest["master_key"] == "included")
            for entry in manifest["files"]:
                tree, _, relative = entry["path"].partition("/")
                if entry["kind"] == "config":
                    continue
                if tree not in targets:
                    raise RestoreError(f"The backup holds {entry['path']}, a folder this version does not know.")
                target = journal if tree == "journal" else targets[tree] / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.source / entry["path"], target)
                if entry["kind"] == "sqlite":
                    os.chmod(target, 0o600)
                    report.databases[entry["path"]] = self._check_database(target, entry)
                else:
                    report.files += 1
                    if Path(relative).name in KEY_FILES:
                        os.chmod(target, 0o600)
            for folder in {t.parent for t in targets.values()} | set(targets.values()):
                if folder.exists():
                    fsync_folder(folder)
            self._check_key(report)
            config_entry = next((e for e in manifest["files"] if e["kind"] == "config"), None)
            if config_entry:
                report.config_copy = self.source / config_entry["path"]
        log.info("backup %s restored into %s", self.source, data)
        return report

    def _manifest(self) -> dict:
        path = self.source / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RestoreError(f"{self.source} is not a backup: there is no {MANIFEST} in it.") from None
        except (OSError, ValueError) as exc:
            raise RestoreError(f"{path} cannot be read ({exc}): the backup is damaged.") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise RestoreError(f"{path} is not a {FORMAT} of version {FORMAT_VERSION} (found "
                               f"{manifest.get('format')!r} version {manifest.get('version')!r}).")
        return manifest

    def _verify(self, manifest: dict) -> None:
        damaged = []
        for entry in manifest["files"]:
            path = self.source / entry["path"]
            if ".." in Path(entry["path"]).parts or Path(entry["path"]).is_absolute():
                raise RestoreError(f"The manifest names {entry['path']!r}, outside the backup: refused.")
            if not path.is_file():
                damaged.append(f"{entry['path']} is missing")
            elif sha256_of(path) != entry["sha256"]:
                damaged.append(f"{entry['path']} differs from the manifest")
        if damaged:
            shown = "; ".join(damaged[:5]) + (f" (and {len(damaged) - 5} more)" if len(damaged) > 5 else "")
            raise RestoreError(f"The backup in {self.source} is damaged: {shown}. Nothing was restored; use another "
                               "backup.")

    def _make_room(self, targets: dict[str, Path], report: RestoreReport, *, key_in_backup: bool) -> None:
        keep = {LOCK_FILE} | (set() if key_in_backup else set(KEY_FILES))
        occupied = {}
        for name, folder in targets.items():
            if name == "journal":
                present = [self.config.journal_path] if self.config.journal_path.exists() else []
            else:
                present = [p for p in folder.iterdir() if p.name not in keep] if folder.exists() else []
            if present:
                occupied[name] = present
        if not occupied:
            return
        if not self.force:
            where = ", ".join(sorted({str(p.parent) for paths in occupied.values() for p in paths}))
            raise RestoreError(f"There is already an install in {where}. Restore into an empty data folder (see "
                               "[data] folder), or give --force to move what is there aside first (nothing is "
                               "deleted).")
        stamp = self.clock().strftime("%Y%m%dT%H%M%S")
        for name, paths in occupied.items():
            folder = targets[name]
            aside = folder.with_name(f"{folder.name}.before-restore-{stamp}")
            aside.mkdir(parents=True, exist_ok=True)
            for path in paths:
                if path.exists():  # a tree inside the data folder was moved with it
                    os.replace(path, aside / path.name)
            for companion in ("-wal", "-shm"):
                stray = self.config.journal_path.with_name(self.config.journal_path.name + companion)
                if name == "journal" and stray.exists():
                    os.replace(stray, aside / stray.name)
            report.moved_aside.append(aside)

    @staticmethod
    def _check_database(target: Path, entry: dict) -> dict[str, int]:
        conn = sqlite3.connect(target)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            counts = table_counts(conn)
        finally:
            conn.close()
        if verdict != "ok" or counts != entry["tables"]:
            raise RestoreError(f"The restored {entry['path']} does not match the backup ({verdict}); restore again "
                               "from another backup.")
        return counts

    def _check_key(self, report: RestoreReport) -> None:
        data = self.config.data_folder
        store_path = data / STORE_FILE
        if not store_path.exists():
            return
        try:
            keys = master_keys(data, create=False)
        except SecretError:
            report.key_problem = (f"There is no master key in {data} and the backup has none: copy the master.key kept "
                                  f"with the backup to {data / MASTER_KEY_FILE} (mode 600) before starting the service; "
                                  "without it the keystores and the licence password cannot be opened.")
            return
        store = SecureSpaceStore(store_path, keys)
        try:
            report.sealed_values = store.count_sealed()
        except Refusal:
            report.key_problem = (f"The master key in {data} does not open the secure space of this backup: put back "
                                  "the master.key that was in use when the backup was made (an older one if the key "
                                  "was rotated since), then start the service.")
        finally:
            store.close()
