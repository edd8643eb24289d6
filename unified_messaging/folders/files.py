"""Crash-safe file operations shared by every folder interface (folders, batch jobs, invoicing).

One clash rule everywhere: a name already taken in the target folder becomes ``stem.2.ext``,
``stem.3.ext``... (``name.2`` without an extension), so the original extension stays last and
the lab software still recognises the file type.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from unified_messaging.identifiers import mask_ssins_in_text

logger = logging.getLogger(__name__)

MARKER = ".ok"
REASON_SUFFIX = ".reason.txt"


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


def taken_with_reason(path: Path) -> bool:
    """A name is taken in an error folder by the file or by a reason file left under its name."""
    return path.exists() or path.with_name(path.name + REASON_SUFFIX).exists()


def write_reason(target: Path, reason: str) -> Path:
    """``<target>.reason.txt`` beside ``target``, written atomically; returns its path."""
    path = target.with_name(target.name + REASON_SUFFIX)
    write_atomically(path, (reason.rstrip() + "\n").encode("utf-8"))
    return path


def move_to(source: Path, folder: Path, name: str | None = None, *, reason: str | None = None) -> Path:
    """Move ``source`` into ``folder`` under a free ``name`` (default: its own); durable once this returns.

    With ``reason``, its reason file is written first, so a moved file never lacks its reason.
    """
    taken = taken_with_reason if reason is not None else None
    target = free_name(folder, name or source.name, taken=taken)
    if reason is not None:
        write_reason(target, reason)
    os.replace(source, target)
    fsync_folder(folder)
    fsync_folder(source.parent)
    return target


def move_to_error(path: Path, error_folder: Path, reason: str) -> Path:
    """Move ``path`` into ``error_folder`` (under a free name) with ``<name>.reason.txt`` beside it."""
    target = move_to(path, error_folder, reason=reason)
    logger.warning("%s moved to %s: %s", path.name, error_folder, mask_ssins_in_text(reason))
    return target
