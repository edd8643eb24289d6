"""The invoicing folders and the file operations the pipeline needs to be crash-safe."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from unified_messaging.folderwatch import fsync_folder

TO_SEND = "toSend"
RECEIVED = "received"
ARCHIVE = "archive"
ERROR = "error"
PROBATIVE = "probative-values"
WORK = ".work"
MARKER_SUFFIX = ".ok"
REASON_SUFFIX = ".reason.txt"


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


def free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name`` with ``-2``, ``-3``... before its suffix when that is taken."""
    candidate = folder / name
    stem, dot, suffix = name.partition(".")
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{dot}{suffix}"
        number += 1
    return candidate


def move_to(source: Path, folder: Path, name: str) -> Path:
    """Move ``source`` into ``folder`` under a free ``name``; durable once this returns."""
    target = free_name(folder, name)
    os.replace(source, target)
    fsync_folder(folder)
    fsync_folder(source.parent)
    return target
