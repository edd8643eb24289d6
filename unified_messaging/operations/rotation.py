"""Rotate the master key: every sealed secret (keystores, their passwords, the licence password,
the ``enc:`` values of the configuration files) sealed again under a new key.

The steps, each one durable before the next, so that killing the command at any point leaves an
install that starts and reads every secret, and running the command again finishes the job:

1. check that every secret opens with the present key (nothing is changed when one does not);
2. write the new key to ``master.key.next`` (from then on every reader accepts both keys:
   ``secrets.master_keys``);
3. rewrite each configuration file with its ``enc:`` values encrypted under the new key (a
   rename over the old file);
4. seal the secure space's values again, in one SQLite transaction;
5. check that everything opens with the new key alone, then rename ``master.key.next`` over
   ``master.key``: the old key is gone.

The service must be stopped (the instance lock): a running process keeps the old key in memory.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from unified_messaging.operations.files import fsync_folder, write_atomically
from unified_messaging.operations.instance import InstanceLock
from unified_messaging.secrets import MASTER_KEY_ENV, MASTER_KEY_FILE, NEXT_KEY_FILE, master_keys
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore

log = logging.getLogger(__name__)

_ENCRYPTED = re.compile(rb"enc:([A-Za-z0-9_\-]+=*)")


class RotationError(RuntimeError):
    """The rotation cannot start or go on; the message says why and what to do."""


@dataclass
class RotationReport:
    resumed: bool = False
    sealed_values: int = 0
    config_secrets: dict[Path, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = ["An interrupted rotation was found and finished." if self.resumed else "New master key in place."]
        out.append(f"secure space: {self.sealed_values} sealed value(s) sealed again")
        for path, count in self.config_secrets.items():
            out.append(f"{path}: {count} enc: value(s) encrypted again")
        out.append("The old key no longer opens anything: backups made before now need the old key "
                   "(keep it with them) to be restored.")
        return out


def _nothing(step: str) -> None:
    """The default checkpoint (a test passes one that stops the process at a chosen step)."""


def _reencrypt(text: bytes, old: MultiFernet, new: Fernet, where: Path) -> tuple[bytes, int]:
    count = 0

    def swap(match: re.Match[bytes]) -> bytes:
        nonlocal count
        try:
            clear = old.decrypt(match.group(1))
        except InvalidToken:
            line = text[:match.start()].count(b"\n") + 1
            raise RotationError(f"{where}, line {line}: this enc: value does not open with this install's master "
                                "key (it was encrypted elsewhere or altered). Encrypt it again with 'unified-messaging "
                                "secret encrypt', then rotate.") from None
        count += 1
        return b"enc:" + new.encrypt(clear)

    return _ENCRYPTED.sub(swap, text), count


class MasterKeyRotation:
    """One rotation of the master key of ``data_folder``; ``config_files`` hold ``enc:`` values."""

    def __init__(self, data_folder: Path, config_files: Sequence[Path] = (), *,
                 checkpoint: Callable[[str], None] = _nothing) -> None:
        self.data_folder = Path(data_folder)
        self.config_files = [Path(p) for p in config_files]
        self.checkpoint = checkpoint
        self.current = self.data_folder / MASTER_KEY_FILE
        self.upcoming = self.data_folder / NEXT_KEY_FILE

    def run(self) -> RotationReport:
        if os.environ.get(MASTER_KEY_ENV):
            raise RotationError(f"The master key comes from the environment variable {MASTER_KEY_ENV}: rotate it "
                                f"where it is kept, or unset {MASTER_KEY_ENV} so that {self.current} is used.")
        if not self.current.exists():
            raise RotationError(f"There is no master key at {self.current}: nothing has been sealed with one yet.")
        with InstanceLock(self.data_folder).exclusive("rotate the master key"):
            return self._rotate()

    def _rotate(self) -> RotationReport:
        report = RotationReport(resumed=self.upcoming.exists())
        keys = master_keys(self.data_folder)
        self._check_everything_opens(keys)
        if not report.resumed:
            write_atomically(self.upcoming, Fernet.generate_key() + b"\n")
            log.info("new master key written to %s", self.upcoming)
            self.checkpoint("next-key-written")
            keys = master_keys(self.data_folder)
        new = keys[-1]
        old = MultiFernet([Fernet(k) for k in keys])
        for path in self.config_files:
            text, count = _reencrypt(path.read_bytes(), old, Fernet(new), path)
            write_atomically(path, text, mode=path.stat().st_mode & 0o777)
            report.config_secrets[path] = count
            self.checkpoint(f"config-written-{path.name}")
        store = self._store(keys)
        if store is not None:
            try:
                report.sealed_values = store.reseal_all(new, checkpoint=self.checkpoint)
            finally:
                store.close()
        self._check_everything_opens((new,))
        os.replace(self.upcoming, self.current)
        fsync_folder(self.data_folder)
        self.checkpoint("promoted")
        log.info("master key rotated: %d sealed value(s), %d configuration secret(s)",
                 report.sealed_values, sum(report.config_secrets.values()))
        return report

    def _store(self, keys: Sequence[bytes]) -> SecureSpaceStore | None:
        path = self.data_folder / STORE_FILE
        return SecureSpaceStore(path, keys) if path.exists() else None

    def _check_everything_opens(self, keys: Sequence[bytes]) -> None:
        fernet = MultiFernet([Fernet(k) for k in keys])
        for path in self.config_files:
            _reencrypt(path.read_bytes(), fernet, Fernet(keys[0]), path)
        store = self._store(keys)
        if store is None:
            return
        try:
            store.count_sealed()
        except Refusal:
            raise RotationError(f"A sealed value of {store.path} does not open with this install's master key: "
                                "the secure space was sealed under another key. Restore the key it was made with "
                                "before rotating.") from None
        finally:
            store.close()
