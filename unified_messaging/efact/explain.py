"""eFact error codes explained in our own words, by category.

An error slot ``RRRZZNN``-style code is a letter (what is refused), the record type, the zone and
the error number.  The insurers' own tables give one sentence per code; here the explanation is
assembled from the category of each part, so every code gets a useful answer, including codes
missing from any table.  The error-number categories are our reading of how the official numbers
are grouped (01 not numeric, 02 check digit, 03 value not allowed, 2x not matching the insurer's
data, 4x beneficiary rights...); the insurer's own text stays the reference.

Every explanation is built as a :class:`~unified_messaging.texts.Text` (``*_text``
functions), so that Mybox shows it in the user's language; the plain functions give the English text.
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
from unified_messaging.texts import Text, message, text

logger = logging.getLogger(__name__)

LETTERS = {
    "B": (message("Blocking error"),
          message("The whole sending is blocked: correct the file and send a new one.")),
    "F": (message("Invoice refused"),
          message("This invoice is refused as a whole: correct it and invoice it again in a later sending.")),
    "R": (message("Record rejected"),
          message("Only this record (usually one service line) is rejected; the rest of the invoice is "
                  "processed.")),
    "E": (message("Insurability problem"),
          message("The patient's insurance situation does not allow it: check the mutuality and the "
                  "coverage on the date of the service.")),
    "S": (message("Signal"),
          message("For information only: nothing was refused.")),
}

_RECORD_LABELS = {key: message(label) for key, label in
                  {**RECORD_NAMES, "91": "mutuality settlement", "92": "federation settlement"}.items()}
_RECORD = message("record")
_RECORD_TYPE = message("record type {type}")

_COMMON_ZONES = {"01": message("record type"), "02": message("sequence number"),
                 "99": message("record check digits")}

_ZONES_BY_RECORD = {record: {zone: message(label) for zone, label in zones.items()} for record, zones in {
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
}.items()}

_HEADER_ZONE_LABELS = {
    zone.number: message(zone.label)
    for zone in SEGMENT_200_ZONES + EXTENDED_300_ZONES + summary_zones(400) + summary_zones(500)
    + settlement_zones(400) + settlement_zones(500)
}
_HEADER_ZONE_PLACES = {"2": message("segment 200"), "3": message("segment 300"),
                       "4": message("mutuality summary 95"), "5": message("federation summary 96")}
_HEADER = message("header")

_CATEGORIES = {
    0: message("an error on the whole block"),
    1: message("the zone is not numeric or holds a forbidden character"),
    2: message("a check digit is wrong"),
    3: message("the value is not allowed"),
    4: message("the zone holds a value where zero or nothing is expected"),
    5: message("the sign or the form of the amount is wrong"),
    6: message("the sign or the form of the amount is wrong"),
    19: message("it was rejected because of an error in a linked record of the same block"),
}
_SPECIFIC = message("a rule specific to the sector or the insurer")
_RANGES = (
    (10, message("the zone is badly formatted")),
    (20, message("it does not agree with the rest of the file (dates, order, totals or a linked record)")),
    (30, message("it does not match the insurer's records (unknown, duplicate or not allowed for this sender)")),
    (40, message("the insurer refused it by decision or at the sender's request")),
    (50, message("the beneficiary's rights or the reimbursement rules do not allow it")),
)
_TARIFICATION = message("a nomenclature or tarification rule is broken (limits, combinations or conditions)")

_ZONE = message("zone {zone}")
_ZONE_NAMED = message("zone {zone} ({label})")
_LINKED = message("record linked to a service line: refused together with the service line 50 it belongs to")
_CHECK_DIGITS = message("{record}: the record check digits (zone 99) are wrong")
_CONTROL_NUMBER = message("{record}: the control number (zone 98) is wrong")
_RECORD_ZONE = message("{record}, {zone}: {category}")
_SLOT = message("{title} ({letter}): record {record_type} zone {zone} error {error} — {what}. {consequence}")
_AT_ZONE = message("zone {zone} ({label}) of the {place}")
_AT_ZONE_UNNAMED = message("zone {zone} of the {place}")
_DUPLICATE = message("this sending number was already used: the file looks like a duplicate")
_AT_RECEPTION = message("Refused at reception: {zone}, error {code} — {reason}.")
_PERCENTAGE = message("{percentage} % of the sending is in error (zone 310).")
_SETTLEMENT = message("Mutuality {mutuality}: {accepted} accepted, {rejected} rejected, payment reference {reference}.")
_NOT_GIVEN = message("not given")
_UNREADABLE_AMOUNT = message("an unreadable amount")
_ZONE_ERROR = message("zone {zone} error {code}")
_HEADLINES = {
    "931000": message("Received: the insurer acknowledged the sending and will process it."),
    "920098": message("Accepted after the detailed check; the records listed below have errors."),
    "920999": message("Refused at reception: the header or the summaries of the sending are wrong."),
}
_REFUSED = message("Refused after the detailed check ({refusal}, zone 311 = {type}): correct the file and send "
                   "it again.")
_REFUSAL_TYPES = {key: message(value) for key, value in REFUSAL_TYPES.items()}
_UNKNOWN_REASON = message("unknown reason")
_SETTLED = message("Settled: the insurer's final answer, with the amounts accepted and rejected.")


class _HasCode(Protocol):
    code: str


def _error_category(number: str) -> Text:
    """What a 2-character error number usually means, by its range."""
    if not number.isdigit():
        return text(_SPECIFIC)
    value = int(number)
    if value in _CATEGORIES:
        return text(_CATEGORIES[value])
    return text(next((label for limit, label in _RANGES if value < limit), _TARIFICATION))


def _zone_label(record_type: str, zone: str) -> Text:
    label = _ZONES_BY_RECORD.get(record_type, {}).get(zone) or _COMMON_ZONES.get(zone)
    return text(_ZONE_NAMED, zone=zone, label=text(label)) if label else text(_ZONE, zone=zone)


def _record_label(record_type: str, unknown: Text) -> Text:
    label = _RECORD_LABELS.get(record_type)
    return text(label) if label else unknown


def _what(record_type: str, zone: str, error: str) -> Text:
    if (record_type, zone, error) == ("05", "00", "00"):
        # Seen on records 51/52 whose service line 50 carries an error: our inference.
        return text(_LINKED)
    if zone == "99" and error == "02":
        return text(_CHECK_DIGITS, record=_record_label(record_type, text(_RECORD)))
    if zone == "98" and error == "02":
        return text(_CONTROL_NUMBER, record=_record_label(record_type, text(_RECORD)))
    record = _record_label(record_type, text(_RECORD_TYPE, type=record_type))
    return text(_RECORD_ZONE, record=record, zone=_zone_label(record_type, zone), category=_error_category(error))


def explain_text(slot: str | _HasCode) -> Text:
    """An error slot explained, as a text to translate (see :func:`explain`)."""
    code = slot if isinstance(slot, str) else slot.code
    code = code.strip()
    if len(code) != 7 or code[0] not in LETTERS:
        raise ValueError(f"{code!r} is not an eFact error slot (a letter B, R, F, E or S and six "
                         "characters)")
    letter, record_type, zone, error = code[0], code[1:3], code[3:5], code[5:7]
    title, consequence = LETTERS[letter]
    return text(_SLOT, title=text(title), letter=letter, record_type=record_type, zone=zone, error=error,
                what=_what(record_type, zone, error), consequence=text(consequence))


def explain(slot: str | _HasCode) -> str:
    """Explain an error slot: ``explain("F501203")`` ->
    ``"Invoice refused (F): record 50 zone 12 error 03 — service line, zone 12: the value is not
    allowed. This invoice is refused as a whole: ..."``."""
    return str(explain_text(slot))


def zone_error_text(zone: str, code: str) -> Text:
    """An error code found in a header or summary zone, as a text to translate."""
    place = text(_HEADER_ZONE_PLACES.get(zone[:1], _HEADER))
    label = _HEADER_ZONE_LABELS.get(zone)
    named = (text(_AT_ZONE, zone=zone, label=text(label), place=place) if label
             else text(_AT_ZONE_UNNAMED, zone=zone, place=place))
    reason = text(_DUPLICATE) if code == "40" and zone == "301" else _error_category(code)
    return text(_AT_RECEPTION, zone=named, code=code, reason=reason)


def zone_error_code_text(zone: str, code: str) -> Text:
    """A non-zero error-code zone of a feedback record, as its number and code (``zone 12 error 03``)."""
    return text(_ZONE_ERROR, zone=zone, code=code)


def explain_zone_error(zone: str, code: str) -> str:
    """Explain an error code found in a header or summary zone (a 920999, or segment 200/300)."""
    return str(zone_error_text(zone, code))


def message_texts(message: FeedbackMessage) -> list[Text]:
    """The lines describing a feedback message, as texts to translate (see :func:`explain_message`)."""
    header = message.header
    lines = [headline_text(message)]
    if header.error_percentage is not None and header.error_percentage:
        lines.append(text(_PERCENTAGE, percentage=f"{header.error_percentage:.2f}"))
    lines += [zone_error_text(error.zone, error.code) for error in message.zone_errors]
    lines += [explain_text(slot) for slot in message.error_slots]
    for settlement in message.settlements:
        lines.append(text(_SETTLEMENT, mutuality=settlement.mutuality, accepted=_euros(settlement.accepted_total),
                          rejected=_euros(settlement.rejected_total),
                          reference=settlement.payment_reference or text(_NOT_GIVEN)))
    return lines


def explain_message(message: FeedbackMessage) -> list[str]:
    """Plain-English lines describing a feedback message, for a reason file or a screen."""
    return [str(line) for line in message_texts(message)]


def headline_text(message: FeedbackMessage) -> Text:
    """The first line about a feedback message: what its code means for the file."""
    code = message.code
    if code in _HEADLINES:
        return text(_HEADLINES[code])
    if code == "920099":
        refusal_type = message.header.refusal_type
        refusal = _REFUSAL_TYPES.get(refusal_type or "", _UNKNOWN_REASON)
        return text(_REFUSED, refusal=text(refusal), type=str(refusal_type))
    return text(_SETTLED)


def _euros(cents: int | None) -> Text | str:
    return text(_UNREADABLE_AMOUNT) if cents is None else euros(cents)
