"""eFact error codes explained in our own words, by category.

An error slot ``RRRZZNN``-style code is a letter (what is refused), the record type, the zone and
the error number.  The insurers' own tables give one sentence per code; here the explanation is
assembled from the category of each part, so every code gets a useful answer, including codes
missing from any table.  The error-number categories are our reading of how the official numbers
are grouped (01 not numeric, 02 check digit, 03 value not allowed, 2x not matching the insurer's
data, 4x beneficiary rights...); the insurer's own text stays the reference.
"""
from __future__ import annotations

import logging
from typing import Protocol

from unified_messaging.efact.layout import (
    EXTENDED_300_ZONES,
    RECORD_NAMES,
    SEGMENT_200_ZONES,
    settlement_zones,
    summary_zones,
)
from unified_messaging.efact.values import euros
from unified_messaging.efact.feedback import REFUSAL_TYPES, FeedbackMessage

logger = logging.getLogger(__name__)

LETTERS = {
    "B": ("Blocking error",
          "The whole sending is blocked: correct the file and send a new one."),
    "F": ("Invoice refused",
          "This invoice is refused as a whole: correct it and invoice it again in a later "
          "sending."),
    "R": ("Record rejected",
          "Only this record (usually one service line) is rejected; the rest of the invoice is "
          "processed."),
    "E": ("Insurability problem",
          "The patient's insurance situation does not allow it: check the mutuality and the "
          "coverage on the date of the service."),
    "S": ("Signal",
          "For information only: nothing was refused."),
}

_RECORD_LABELS = {**RECORD_NAMES, "91": "mutuality settlement", "92": "federation settlement"}

_COMMON_ZONES = {"01": "record type", "02": "sequence number", "99": "record check digits"}

_ZONES_BY_RECORD = {
    "10": {"07": "sending number", "27": "company number (CBE)", "36": "IBAN of account A"},
    "20": {"07": "mutuality of affiliation", "08": "beneficiary identification"},
    "50": {
        "04": "nomenclature code", "05": "date of the (first) service",
        "06": "date of the last service", "07": "mutuality of affiliation",
        "08": "beneficiary identification", "15": "care provider identification",
        "19": "insurance amount", "20": "prescription date", "22": "number of units",
        "24": "prescriber identification", "26": "prescriber norm",
        "27": "patient's personal share",
    },
    "51": {"04": "nomenclature code"},
    "52": {"04": "nomenclature code"},
    "80": {
        "07": "mutuality of affiliation", "08": "beneficiary identification",
        "15": "amount of account B", "18": "destination mutuality", "19": "amount of account A",
        "98": "invoice control number",
    },
    "90": {"07": "sending number", "15": "total of account B", "19": "total of account A",
           "98": "control number of the sending"},
}

_HEADER_ZONE_LABELS = {
    zone.number: zone.label
    for zone in SEGMENT_200_ZONES + EXTENDED_300_ZONES + summary_zones(400) + summary_zones(500)
    + settlement_zones(400) + settlement_zones(500)
}
_HEADER_ZONE_PLACES = {"2": "segment 200", "3": "segment 300", "4": "mutuality summary 95",
                       "5": "federation summary 96"}


class _HasCode(Protocol):
    code: str


def _error_category(number: str) -> str:
    """What a 2-character error number usually means, by its range."""
    if not number.isdigit():
        return "a rule specific to the sector or the insurer"
    value = int(number)
    exact = {
        0: "an error on the whole block",
        1: "the zone is not numeric or holds a forbidden character",
        2: "a check digit is wrong",
        3: "the value is not allowed",
        4: "the zone holds a value where zero or nothing is expected",
        5: "the sign or the form of the amount is wrong",
        6: "the sign or the form of the amount is wrong",
        19: "it was rejected because of an error in a linked record of the same block",
    }
    if value in exact:
        return exact[value]
    if value < 10:
        return "the zone is badly formatted"
    if value < 20:
        return "it does not agree with the rest of the file (dates, order, totals or a linked record)"
    if value < 30:
        return "it does not match the insurer's records (unknown, duplicate or not allowed for this sender)"
    if value < 40:
        return "the insurer refused it by decision or at the sender's request"
    if value < 50:
        return "the beneficiary's rights or the reimbursement rules do not allow it"
    return "a nomenclature or tarification rule is broken (limits, combinations or conditions)"


def _zone_label(record_type: str, zone: str) -> str:
    label = _ZONES_BY_RECORD.get(record_type, {}).get(zone) or _COMMON_ZONES.get(zone)
    return f"zone {zone} ({label})" if label else f"zone {zone}"


def _what(record_type: str, zone: str, error: str) -> str:
    if (record_type, zone, error) == ("05", "00", "00"):
        # Seen on records 51/52 whose service line 50 carries an error: our inference.
        return ("record linked to a service line: refused together with the service line 50 it "
                "belongs to")
    if zone == "99" and error == "02":
        return f"{_RECORD_LABELS.get(record_type, 'record')}: the record check digits (zone 99) are wrong"
    if zone == "98" and error == "02":
        return f"{_RECORD_LABELS.get(record_type, 'record')}: the control number (zone 98) is wrong"
    record = _RECORD_LABELS.get(record_type, f"record type {record_type}")
    return f"{record}, {_zone_label(record_type, zone)}: {_error_category(error)}"


def explain(slot: str | _HasCode) -> str:
    """Explain an error slot: ``explain("F501203")`` ->
    ``"Invoice refused (F): record 50 zone 12 error 03 — service line, zone 12: the value is not
    allowed. This invoice is refused as a whole: ..."``."""
    code = slot if isinstance(slot, str) else slot.code
    code = code.strip()
    if len(code) != 7 or code[0] not in LETTERS:
        raise ValueError(f"{code!r} is not an eFact error slot (a letter B, R, F, E or S and six "
                         "characters)")
    letter, record_type, zone, error = code[0], code[1:3], code[3:5], code[5:7]
    title, consequence = LETTERS[letter]
    return (f"{title} ({letter}): record {record_type} zone {zone} error {error} — "
            f"{_what(record_type, zone, error)}. {consequence}")


def explain_zone_error(zone: str, code: str) -> str:
    """Explain an error code found in a header or summary zone (a 920999, or segment 200/300)."""
    place = _HEADER_ZONE_PLACES.get(zone[:1], "header")
    label = _HEADER_ZONE_LABELS.get(zone)
    named = f"zone {zone} ({label}) of the {place}" if label else f"zone {zone} of the {place}"
    if code == "40" and zone == "301":
        reason = "this sending number was already used: the file looks like a duplicate"
    else:
        reason = _error_category(code)
    return f"Refused at reception: {named}, error {code} — {reason}."


def explain_message(message: FeedbackMessage) -> list[str]:
    """Plain-English lines describing a feedback message, for a reason file or a screen."""
    header = message.header
    lines = [_headline(message)]
    if header.error_percentage is not None and header.error_percentage:
        lines.append(f"{header.error_percentage:.2f} % of the sending is in error "
                     "(zone 310).")
    lines += [explain_zone_error(error.zone, error.code) for error in message.zone_errors]
    lines += [explain(slot) for slot in message.error_slots]
    for settlement in message.settlements:
        lines.append(
            f"Mutuality {settlement.mutuality}: {_euros(settlement.accepted_total)} accepted, "
            f"{_euros(settlement.rejected_total)} rejected, payment reference "
            f"{settlement.payment_reference or 'not given'}.")
    return lines


def _headline(message: FeedbackMessage) -> str:
    code = message.code
    if code == "931000":
        return "Received: the insurer acknowledged the sending and will process it."
    if code == "920098":
        return "Accepted after the detailed check; the records listed below have errors."
    if code == "920099":
        refusal = REFUSAL_TYPES.get(message.header.refusal_type or "", "unknown reason")
        return (f"Refused after the detailed check ({refusal}, zone 311 = "
                f"{message.header.refusal_type}): correct the file and send it again.")
    if code == "920999":
        return "Refused at reception: the header or the summaries of the sending are wrong."
    return "Settled: the insurer's final answer, with the amounts accepted and rejected."


def _euros(cents: int | None) -> str:
    return "an unreadable amount" if cents is None else euros(cents)
