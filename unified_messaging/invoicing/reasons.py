"""Why the gateway refused an invoicing file, as texts Mybox shows in the user's language.

Each function gives a :class:`~unified_messaging.texts.Reason`: its English text goes to the
``.reason`` file in ``error/``, the log and the command line; the store keeps its lines too, so that
Mybox translates them.  The validator's own findings (one line per problem) and the platform's words
stay as they are written.
"""
from __future__ import annotations

import logging

from unified_messaging.efact.explain import message_texts
from unified_messaging.efact.feedback import FeedbackMessage
from unified_messaging.efact.report import ValidationReport
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.texts import Reason, message, reason, text

log = logging.getLogger(__name__)

_EMPTY = message("The file is empty.")
_INVALID = message("{name} is not a valid eFact 920000 sending:")
_SAME_FILE = message("{name} is the same file as {other} (#{number}), already sent on {sent_at} (status {status}, "
                     "reference {reference}); it was not sent again.")
_ZONE_204_USED = message("The sender's reference (zone 204) {zone_204} was already used by {other} (#{number}, "
                         "status {status}). Give the corrected file a new zone 204 and send it with "
                         "'unified-messaging invoicing resend'.")
_SENDING = message("sending")
_NONE_YET = message("none yet")
_NO_FEDERATION = message("The file names no federation the gateway can send it to ({problem}).")
_MARKER_ALONE = message("The marker {marker} arrived without its file {name} (or the file was already picked up "
                        "with another marker). Put the file in toSend first, then its .ok marker.")
_FAULT = message("MyCareNet refused the file ({code}): {detail}")
_TACK = {True: message("MyCareNet accepted the file (reference {reference})"),
         False: message("MyCareNet refused the file (reference {reference})")}
_TACK_DETAILS = message("{outcome}: {details}")
_NONE = message("none")
_FEEDBACK = message("{code}: {line}")
_INSURERS_REFUSED = message("the insurers refused the sending.")
_MORE = message("... ({count} more)")
_WHOLE_MESSAGE = message("The whole message is in received/{name}.")
_IDENTITY = message("No certificate may send this file for its sender ({code}): {cause} {remedy}")


def empty() -> Reason:
    return reason(text(_EMPTY))


def invalid(name: str, report: ValidationReport) -> Reason:
    """A file the validator refused: its findings, one per line, follow the heading."""
    return reason(text(_INVALID, name=name), *report.texts())


def same_file(name: str, other: dict) -> Reason:
    return reason(text(_SAME_FILE, name=name, other=other["name"], number=other["id"],
                       sent_at=other["created_at"][:19], status=other["status"] or text(_SENDING),
                       reference=other["reference"] or text(_NONE_YET)))


def zone_204_used(zone_204: str | None, other: dict) -> Reason:
    return reason(text(_ZONE_204_USED, zone_204=zone_204 or "", other=other["name"], number=other["id"],
                       status=other["status"] or text(_SENDING)))


def no_federation(problem: str) -> Reason:
    return reason(text(_NO_FEDERATION, problem=problem))


def marker_alone(marker: str, name: str) -> Reason:
    return reason(text(_MARKER_ALONE, marker=marker, name=name))


def identity_refused(refusal: Refusal) -> Reason:
    """The file's sender (record 10) is not one this gateway may send for today: the catalogue's refusal."""
    return reason(text(_IDENTITY, code=refusal.code, cause=refusal.cause, remedy=refusal.remedy))


def platform_fault(code: str, detail: str) -> Reason:
    return reason(text(_FAULT, code=code, detail=detail))


def tack_text(success: bool, reference: str | None, details: list[str]) -> Reason:
    """What a TAck said: accepted or refused, with the platform's own words (as they are)."""
    outcome = text(_TACK[success], reference=reference or text(_NONE))
    return reason(text(_TACK_DETAILS, outcome=outcome, details="; ".join(details)) if details else outcome)


def feedback_refusal(code: str, message_: FeedbackMessage | None, received_name: str, *,
                     max_lines: int = 4) -> Reason:
    """Why a feedback message refused the file: its first explained lines and where the whole message is."""
    lines = []
    if message_ is not None:
        try:
            lines = message_texts(message_)
        except Exception:  # an unexplained feedback still refuses the file; the file itself is on disk
            log.warning("feedback %s stored as %s could not be explained", code, received_name)
    shown = lines[:max_lines] + ([text(_MORE, count=len(lines) - max_lines)] if len(lines) > max_lines else [])
    first = shown[0] if shown else text(_INSURERS_REFUSED)
    return reason(text(_FEEDBACK, code=code, line=first), *shown[1:], text(_WHOLE_MESSAGE, name=received_name))
