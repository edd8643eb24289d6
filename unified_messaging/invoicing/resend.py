"""Sending a corrected file in place of a refused one (the command line and Mybox both use it).

The corrected file is checked first (a file that would be refused again is not queued), linked to
the refused one by its SHA-256 (the pipeline links the new sending when it claims the file), then
put in ``toSend/`` with its ``.ok`` marker, written last, as a lab's software would.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from unified_messaging.folders.files import fsync_folder, write_atomically
from unified_messaging.invoicing.folders import MARKER_SUFFIX, Folders
from unified_messaging.invoicing.pipeline import check_file
from unified_messaging.invoicing.store import InvoicingStore

log = logging.getLogger(__name__)


class ResendRefused(ValueError):
    """The corrected file cannot be queued; the message says why and what to do."""


@dataclass(frozen=True)
class Queued:
    name: str
    original_id: int
    original_name: str


def queue_resend(store: InvoicingStore, root: Path, original_id: int, name: str, data: bytes) -> Queued:
    """Queue ``data`` (named ``name``) as the corrected version of the refused file ``original_id``."""
    original = store.file(original_id)
    if original is None:
        raise ResendRefused(f"There is no file #{original_id} in the journal.")
    if original["status"] != "NOK":
        raise ResendRefused(f"{original['name']} (#{original_id}) is {original['status'] or 'being sent'}, not "
                            "refused: only a refused file can be sent again.")
    name = Path(name.replace("\\", "/")).name.strip()
    if not name or name.startswith(".") or name.endswith(MARKER_SUFFIX):
        raise ResendRefused(f"{name!r} is not a usable file name: give the eFact file its own name.")
    folders = Folders(root)
    folders.create()
    expect_test = bool(original["is_test"]) if original["is_test"] is not None else True
    with tempfile.NamedTemporaryFile(dir=folders.work, prefix=".resend-", delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    checking = Path(handle.name)
    try:
        checked = check_file(checking, expect_test=expect_test)
        if not checked.report.ok:
            raise ResendRefused(f"{name} is not a valid eFact 920000 sending, so it was not queued:\n"
                                f"{checked.report.describe()}")
        target = folders.to_send / name
        if target.exists() or (folders.to_send / (name + MARKER_SUFFIX)).exists():
            raise ResendRefused(f"toSend/ already holds a file called {name}: wait until it is sent, or rename "
                                "the corrected file.")
        store.link_resend(checked.sha256, original_id)
        os.replace(checking, target)
        fsync_folder(folders.to_send)
    finally:
        checking.unlink(missing_ok=True)
    write_atomically(folders.to_send / (name + MARKER_SUFFIX), b"")
    log.info("%s queued as the corrected version of %s (#%d)", name, original["name"], original_id)
    return Queued(name, original_id, original["name"])
