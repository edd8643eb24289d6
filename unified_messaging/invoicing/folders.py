"""The invoicing folders under ``[invoicing] root``.

The file operations (atomic write, moves with their reason file, the ``stem.2.ext`` clash rule)
are the ones every folder interface uses: :mod:`unified_messaging.folders.files`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unified_messaging.folders.files import MARKER, REASON_SUFFIX

TO_SEND = "toSend"
RECEIVED = "received"
ARCHIVE = "archive"
ERROR = "error"
PROBATIVE = "probative-values"
WORK = ".work"
MARKER_SUFFIX = MARKER

__all__ = ["ARCHIVE", "ERROR", "MARKER_SUFFIX", "PROBATIVE", "RECEIVED", "REASON_SUFFIX", "TO_SEND", "WORK",
           "Folders"]


@dataclass(frozen=True)
class Folders:
    """The root's subfolders; ``work`` is the gateway's own (claimed files wait there)."""

    root: Path

    @property
    def to_send(self) -> Path:
        return self.root / TO_SEND

    @property
    def received(self) -> Path:
        return self.root / RECEIVED

    @property
    def archive(self) -> Path:
        return self.root / ARCHIVE

    @property
    def error(self) -> Path:
        return self.root / ERROR

    @property
    def probative(self) -> Path:
        return self.root / PROBATIVE

    @property
    def work(self) -> Path:
        return self.root / WORK

    def create(self) -> None:
        for folder in (self.to_send, self.received, self.archive, self.error, self.probative, self.work):
            folder.mkdir(parents=True, exist_ok=True)
