"""The feedback poller: ``get`` the mailbox, store every message and TAck durably, then ``confirm``.

Order matters (MYCARENET.md §2: unconfirmed items come again, confirmed ones never): each message
is written to ``received/`` and its probative value to ``probative-values/`` (fsync'd), then
recorded in the journal, and only when the whole batch is stored is it confirmed.  A crash in
between means the platform delivers the batch again: the journal knows each message by its hash,
file names are deterministic, so nothing is duplicated.

A TAck in the mailbox also settles a post whose outcome the pipeline did not see (a crash or a
network failure between post and TAck); a post still unsettled after a complete ``get`` never
reached the platform and may be sent again (``unsettled_posts``).
"""
from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unified_messaging.efact.feedback import (
    SETTLEMENT,
    FeedbackError,
    FeedbackMessage,
    FileStatus,
    feedback_code,
    read_feedback,
    status_for,
)
from unified_messaging.folders.files import write_atomically
from unified_messaging.invoicing import reasons
from unified_messaging.invoicing.folders import Folders
from unified_messaging.invoicing.store import InvoicingStore, SettledAmounts
from unified_messaging.mycarenet.genasync import GenAsyncClient, ReceivedMessage, TAck, tack_xml

log = logging.getLogger(__name__)

Checkpoint = Callable[[str], None]


def tack_key(tack: TAck) -> str:
    """How a TAck is known in the journal: its reference, else its content."""
    return tack.reference or "content:" + base64.b64encode(tack.content).decode("ascii")


def file_stem(row: dict | None, zone_204: str | None) -> str:
    if row is None:
        return f"unknown-{zone_204 or 'reference'}"
    return Path(row["name"]).stem


@dataclass
class PollOutcome:
    messages: int
    tacks: int
    settled: list[int]
    complete: bool


class FeedbackPoller:
    """One ``poll()`` = get, store, journal, confirm.  ``settle_tack`` is shared with the sender."""

    def __init__(self, store: InvoicingStore, folders: Folders, *, max_messages: int = 100, max_tacks: int = 100,
                 checkpoint: Checkpoint | None = None,
                 on_settled: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.folders = folders
        self.max_messages = max_messages
        self.max_tacks = max_tacks
        self._checkpoint = checkpoint or (lambda step: None)
        self._on_settled = on_settled or (lambda file_id: None)

    def poll(self, client: GenAsyncClient) -> PollOutcome:
        """Raises the client's errors (``MailboxThrottled``, ``UpstreamError``) untouched."""
        content = client.get(max_messages=self.max_messages, max_tacks=self.max_tacks)
        settled = [file_id for received in content.tacks
                   if (file_id := self.store_tack(received.tack, received.xades)) is not None]
        for message in content.messages:
            self.store_message(message)
        self._checkpoint("before-confirm")
        client.confirm(
            message_hashes=[m.hash_value for m in content.messages if m.hash_value],
            message_references=[m.reference for m in content.messages if not m.hash_value and m.reference],
            tack_references=[r.tack.reference for r in content.tacks if r.tack.reference],
            tack_contents=[r.tack.content for r in content.tacks if not r.tack.reference],
        )
        self._checkpoint("after-confirm")
        complete = len(content.tacks) < self.max_tacks and len(content.messages) < self.max_messages
        return PollOutcome(len(content.messages), len(content.tacks), settled, complete)

    def store_post_xades(self, row: dict, xades: bytes) -> None:
        """Archive the XAdES-BES the post carried (``<stem>_post.xades.xml``): the sender's proof."""
        if xades:
            write_atomically(self.folders.probative / f"{file_stem(row, row['zone_204'])}_post.xades.xml", xades)

    # -- TAcks --

    def store_tack(self, tack: TAck, xades: bytes = b"") -> int | None:
        """Archive a TAck and apply it to its file when that file's post was unsettled.

        Returns the file id when this TAck settled a post (the caller then moves the file).
        """
        key = tack_key(tack)
        known = self.store.has_tack(key)
        if known and not xades:
            return None
        row = self._file_for(tack.input_reference)
        stem = file_stem(row, tack.input_reference)
        name = f"{stem}_tack_{tack.reference or _short(key)}.xml"
        if xades:  # also when the TAck is known: the post's answer carries none, the mailbox's copy does
            write_atomically(self.folders.probative / f"{stem}_tack_{tack.reference or _short(key)}.xades.xml", xades)
        if known:
            return None
        write_atomically(self.folders.probative / name, tack_xml(tack))
        changes = None
        settles = row is not None and row["state"] in ("posting", "claimed")
        if settles:
            changes = tack_changes(tack)
        self.store.record_tack(tack_key=key, file_id=row["id"] if row else None,
                               input_reference=tack.input_reference, reference=tack.reference,
                               success=tack.success, message=tack.describe(), probative_name=name,
                               file_changes=changes)
        if settles:
            log.info("TAck %s settles the post of file %s: %s", tack.reference, row["name"],
                     "accepted" if tack.success else "refused")
            self._on_settled(row["id"])
            return row["id"]
        return None

    # -- messages --

    def store_message(self, message: ReceivedMessage) -> None:
        key = message.key
        try:
            code = feedback_code(message.content)
        except ValueError:
            code = message.message_name or "unknown"
        zone_204 = message.input_reference or message.content[20:34].decode("latin-1", "replace").strip() or None
        row = self._file_for(zone_204)
        stem = file_stem(row, zone_204)
        short = _short(key)
        received_name = f"{stem}_{code}_{short}.txt"
        probative_name = f"{stem}_{code}_{short}.xades.xml" if message.xades else None
        if not self.store.has_feedback(key):
            parsed = _read(code, message.content, received_name)
            write_atomically(self.folders.received / received_name, message.content)
            if probative_name:
                write_atomically(self.folders.probative / probative_name, message.xades)
            try:
                status = status_for(code).value
            except ValueError:
                status = None
            reason = (reasons.feedback_refusal(code, parsed, received_name)
                      if status == FileStatus.NOK.value else None)
            self.store.record_feedback(message_key=key, file_id=row["id"] if row else None, zone_204=zone_204,
                                       code=code, nip_reference=message.nip_reference,
                                       output_reference=message.output_reference, received_name=received_name,
                                       probative_name=probative_name, status=status or FileStatus.ONGOING.value,
                                       reason=reason,
                                       error_counts=error_counts(parsed) if parsed else None,
                                       record_count=len(parsed.records) if parsed else None,
                                       settled=settled_amounts(parsed) if parsed else None)
            log.info("feedback %s for %s stored as %s", code, stem, received_name)

    def _file_for(self, zone_204: str | None) -> dict | None:
        if not zone_204:
            return None
        rows = [r for r in self.store.by_zone_204(zone_204) if r["state"] != "error"]
        return rows[-1] if rows else None


def tack_changes(tack: TAck) -> dict[str, object]:
    """What a TAck does to its file."""
    if tack.success:
        return {"state": "sent", "status": FileStatus.OK.value, "reference": tack.reference, "reason": None}
    return {"state": "refused", "status": FileStatus.NOK.value, "reference": tack.reference,
            "reason": reasons.tack_text(tack.success, tack.reference,
                                        [part for part in (tack.result_minor, tack.result_message) if part])}


def error_counts(message: FeedbackMessage) -> dict[str, int]:
    """Error slots per letter (B, F, R, E, S) and ``zone`` for the error-code zones; empty if none."""
    counts: dict[str, int] = {}
    for error in message.error_slots:
        counts[error.letter] = counts.get(error.letter, 0) + 1
    if message.zone_errors:
        counts["zone"] = len(message.zone_errors)
    return counts


def settled_amounts(message: FeedbackMessage) -> SettledAmounts | None:
    """What a 920900 settles: the federation's record 92, else (or where it is blank) the sum of the
    mutualities' records 91; the payment references of the 91s (the 92 has none).  None otherwise."""
    if message.code != SETTLEMENT or (message.settlement_total is None and not message.settlements):
        return None
    total = message.settlement_total

    def amount(name: str) -> int | None:
        value = getattr(total, name) if total is not None else None
        if value is not None:
            return value
        parts = [getattr(s, name) for s in message.settlements if getattr(s, name) is not None]
        return sum(parts) if parts else None

    references = [total.payment_reference] if total is not None and total.payment_reference else []
    if not references:
        references = list(dict.fromkeys(s.payment_reference for s in message.settlements if s.payment_reference))
    return SettledAmounts(requested=amount("requested_total"), accepted=amount("accepted_total"),
                          rejected=amount("rejected_total"), payment_reference=", ".join(references) or None)


def _read(code: str, content: bytes, received_name: str) -> FeedbackMessage | None:
    """The message read once, or None (an unreadable message is still stored; it is on disk)."""
    try:
        return read_feedback(content)
    except FeedbackError as exc:
        log.warning("feedback %s stored as %s could not be read: %s", code, received_name, exc)
    except Exception as exc:  # a reader bug must not lose the message
        log.warning("feedback %s stored as %s could not be read (%s)", code, received_name, type(exc).__name__)
    return None


def refusal_reason(code: str, content: bytes, received_name: str, *, max_lines: int = 4) -> str:
    """Why a feedback message refused the file, in words (for ``invoicing status``); never fails."""
    return str(reasons.feedback_refusal(code, _read(code, content, received_name), received_name,
                                        max_lines=max_lines))


def _short(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
