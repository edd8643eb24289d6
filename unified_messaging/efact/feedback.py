"""Reader of the insurers' eFact feedback messages: 931000, 920098, 920099, 920999 and 920900.

Shapes (verified on the real messages in ``shared/reference/efact/feedback``):

* 931000 = segment 200 (67) + a stub segment 300 (160): zone 300 holds the acknowledged message
  name (``920000``), then its error code; no records.
* 920999 = segment 200 + segment 300 of the sending (160) + records of 350 characters (the
  summaries 95/96 of the sending) whose error-code zones say what was refused.
* 920098, 920099, 920900 = segment 200 + an extended segment 300 (610: the first 140 characters
  of the sending's, zone 310 = error percentage in hundredths, zone 311 = refusal type) +
  records of 800 characters: the sending's 350-character record followed by an error block with
  three error slots at record offsets 456, 463 and 470 (one letter + 6 characters ``RRZZNN``).
  A 920900 ends with settlement records 91 (per mutuality) and 92 (federation) carrying the
  accepted and rejected amounts and the payment references.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from unified_messaging.efact.layout import (
    EXTENDED_300_LENGTH,
    EXTENDED_300_ZONES,
    FEEDBACK_CODES,
    HEADER_LENGTH,
    RECORD_LENGTH,
    SEGMENT_200_LENGTH,
    SEGMENT_200_ZONES,
    SEGMENT_300_ZONES,
    Zone,
    settlement_zones,
    summary_zones,
)
from unified_messaging.efact.report import EfactError, ValidationIssue
from unified_messaging.efact.values import parse_amount

logger = logging.getLogger(__name__)

ACKNOWLEDGEMENT = "931000"
ACCEPTED = "920098"
REFUSED = "920099"
REFUSED_AT_RECEPTION = "920999"
SETTLEMENT = "920900"

FEEDBACK_RECORD_LENGTH = 800
EXTENDED_HEADER_LENGTH = SEGMENT_200_LENGTH + EXTENDED_300_LENGTH
SLOT_OFFSETS = (456, 463, 470)
SLOT_LENGTH = 7
SLOT_LETTERS = frozenset("BRFES")
COUNTER = slice(794, 800)


class FileStatus(str, Enum):
    """The status a sent file has in the gateway (PRODUCT.md section 2)."""

    OK = "OK"
    ONGOING = "ONGOING"
    DONE = "DONE"
    NOK = "NOK"


_STATUS_BY_CODE = {
    ACKNOWLEDGEMENT: FileStatus.ONGOING,
    ACCEPTED: FileStatus.ONGOING,
    REFUSED: FileStatus.NOK,
    REFUSED_AT_RECEPTION: FileStatus.NOK,
    SETTLEMENT: FileStatus.DONE,
}

REFUSAL_TYPES = {
    "00": "not refused",
    "01": "blocking errors",
    "02": "too many errors",
}


def status_for(code: str) -> FileStatus:
    """The file status a feedback message implies: 931000/920098 ONGOING, 920099/920999 NOK,
    920900 DONE."""
    try:
        return _STATUS_BY_CODE[code]
    except KeyError:
        raise ValueError(f"{code!r} is not an eFact feedback message code "
                         f"({', '.join(FEEDBACK_CODES)})") from None


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorSlot:
    """One error of a feedback record: letter + record type + zone + error number."""

    letter: str
    record_type: str
    zone: str
    error: str
    record_index: int
    slot: int  # 1, 2 or 3

    @property
    def code(self) -> str:
        return f"{self.letter}{self.record_type}{self.zone}{self.error}"

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True)
class ZoneError:
    """A non-zero error-code zone: in segment 200/300 or in a summary/settlement segment."""

    segment: str  # "200", "300", or the record type ("95", "96", "91", "92")
    zone: str
    code: str
    record_index: int | None = None

    def __str__(self) -> str:
        return f"zone {self.zone} error {self.code}"


@dataclass(frozen=True)
class FeedbackHeader:
    message_code: str
    version: str
    type_marker: str
    status: str
    zone_204: str
    zone_205: str
    error_codes: dict[str, str]
    zone_errors: tuple[ZoneError, ...]
    acknowledged_message: str | None = None
    invoicing_month: str | None = None
    sending_number: str | None = None
    creation_date: str | None = None
    error_percentage_raw: str | None = None
    refusal_type: str | None = None

    @property
    def is_test(self) -> bool:
        return self.type_marker == "92"

    @property
    def error_percentage(self) -> Decimal | None:
        """Zone 310 as a percentage (``01666`` -> 16.66)."""
        raw = self.error_percentage_raw
        if raw is None or not raw.isdigit():
            return None
        return Decimal(int(raw)) / 100


@dataclass(frozen=True)
class FeedbackRecord:
    """One record of a feedback message; ``original`` is the sending's 350-character record."""

    index: int
    record_type: str
    sequence: str
    original: str = field(repr=False)
    error_block: str = field(repr=False, default="")
    slots: tuple[ErrorSlot, ...] = ()
    zone_errors: tuple[ZoneError, ...] = ()


@dataclass(frozen=True)
class Settlement:
    """A settlement record of a 920900: 91 for a mutuality, 92 for the federation; in cents."""

    record_type: str
    mutuality: str
    invoice_number: str
    requested_a: int | None
    requested_b: int | None
    requested_total: int | None
    record_count: str
    control: str
    accepted_a: int | None
    rejected_a: int | None
    accepted_b: int | None
    rejected_b: int | None
    accepted_total: int | None
    rejected_total: int | None
    payment_reference_a: str | None = None
    payment_reference_b: str | None = None

    @property
    def payment_reference(self) -> str | None:
        return self.payment_reference_a or self.payment_reference_b


@dataclass(frozen=True)
class FeedbackMessage:
    code: str
    header: FeedbackHeader
    records: tuple[FeedbackRecord, ...]
    settlements: tuple[Settlement, ...] = ()
    settlement_total: Settlement | None = None
    length: int = 0

    @property
    def status(self) -> FileStatus:
        return status_for(self.code)

    @property
    def zone_204(self) -> str:
        return self.header.zone_204

    @property
    def error_slots(self) -> tuple[ErrorSlot, ...]:
        return tuple(slot for record in self.records for slot in record.slots)

    @property
    def zone_errors(self) -> tuple[ZoneError, ...]:
        own = tuple(error for record in self.records for error in record.zone_errors)
        return self.header.zone_errors + own

    @property
    def refused(self) -> bool:
        return self.status is FileStatus.NOK

    @property
    def record_types(self) -> list[str]:
        return [record.record_type for record in self.records]


class FeedbackError(EfactError):
    """A feedback message that cannot be read."""


# --- reading -----------------------------------------------------------------------------------


def _problem(message: str, offset: int | None = None, zone: str | None = None) -> FeedbackError:
    return FeedbackError(ValidationIssue(None, None, zone, message, offset=offset))


def _as_text(data: bytes | str) -> str:
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def feedback_code(data: bytes | str) -> str:
    """The message code (first 6 characters), checked to be a feedback code."""
    text = _as_text(data)
    if not text:
        raise _problem("the feedback message is empty", 0)
    code = text[:6]
    if code not in FEEDBACK_CODES:
        if code == "920000":
            raise _problem("this is an invoice sending (920000), not a feedback message", 0, "200")
        raise _problem(f"{code!r} is not an eFact feedback message code "
                       f"({', '.join(FEEDBACK_CODES)})", 0, "200")
    return code


def read_feedback(data: bytes | str) -> FeedbackMessage:
    """Read one feedback message (a trailing newline is tolerated).

    Raises :class:`FeedbackError` when the message is empty, of an unknown kind, or of a length
    its kind does not allow.
    """
    text = _as_text(data)
    code = feedback_code(text)
    _check_length(code, text)
    if code == ACKNOWLEDGEMENT:
        message = FeedbackMessage(code, _read_acknowledgement_header(text), (), length=len(text))
    elif code == REFUSED_AT_RECEPTION:
        message = FeedbackMessage(code, _read_header(text, SEGMENT_300_ZONES, HEADER_LENGTH),
                                  _read_reception_records(text), length=len(text))
    else:
        message = _read_detailed(code, text)
    logger.debug("read feedback %s for zone 204 %s: %d record(s), %d error slot(s)",
                 code, message.zone_204, len(message.records), len(message.error_slots))
    return message


def _check_length(code: str, text: str) -> None:
    length = len(text)
    if code == ACKNOWLEDGEMENT:
        if length != HEADER_LENGTH:
            raise _problem(f"a {code} has {HEADER_LENGTH} characters, this one has {length}")
        return
    if code == REFUSED_AT_RECEPTION:
        base, unit = HEADER_LENGTH, RECORD_LENGTH
    else:
        base, unit = EXTENDED_HEADER_LENGTH, FEEDBACK_RECORD_LENGTH
    if length < base or (length - base) % unit:
        raise _problem(f"a {code} has {base} + {unit}·n characters, this one has {length} "
                       "(truncated or damaged message)", min(length, base))


def _error_codes(zones: tuple[Zone, ...], text: str) -> dict[str, str]:
    return {zone.error_zone: zone.error_code(text) or "" for zone in zones if zone.error_at}


def _zone_errors(segment: str, zones: tuple[Zone, ...], text: str,
                 record_index: int | None = None) -> list[ZoneError]:
    errors = []
    for zone in zones:
        code = zone.error_code(text)
        if code is not None and code.strip() and code != "00":
            errors.append(ZoneError(segment, zone.number, code, record_index))
    return errors


def _read_segment_200(text: str) -> dict[str, object]:
    segment = text[:SEGMENT_200_LENGTH]
    values = {zone.number: zone.value(segment) for zone in SEGMENT_200_ZONES}
    return dict(
        message_code=values["200"], version=values["201"], type_marker=values["202"],
        status=values["203"], zone_204=values["204"], zone_205=values["205"],
    )


def _read_acknowledgement_header(text: str) -> FeedbackHeader:
    segment_200 = text[:SEGMENT_200_LENGTH]
    stub = text[SEGMENT_200_LENGTH:HEADER_LENGTH]
    acknowledged = Zone("300", 0, 6, "acknowledged message", 6)
    codes = _error_codes(SEGMENT_200_ZONES, segment_200)
    codes.update(_error_codes((acknowledged,), stub))
    errors = _zone_errors("200", SEGMENT_200_ZONES, segment_200)
    errors += _zone_errors("300", (acknowledged,), stub)
    return FeedbackHeader(**_read_segment_200(text), error_codes=codes,
                          zone_errors=tuple(errors), acknowledged_message=stub[:6])


def _read_header(text: str, zones_300: tuple[Zone, ...], header_length: int) -> FeedbackHeader:
    segment_200 = text[:SEGMENT_200_LENGTH]
    segment_300 = text[SEGMENT_200_LENGTH:header_length]
    values = {zone.number: zone.value(segment_300) for zone in zones_300}
    codes = _error_codes(SEGMENT_200_ZONES, segment_200)
    codes.update(_error_codes(zones_300, segment_300))
    errors = _zone_errors("200", SEGMENT_200_ZONES, segment_200)
    errors += _zone_errors("300", zones_300, segment_300)
    return FeedbackHeader(
        **_read_segment_200(text), error_codes=codes, zone_errors=tuple(errors),
        invoicing_month=values["300"], sending_number=values["301"],
        creation_date=values["302"], error_percentage_raw=values.get("310"),
        refusal_type=values.get("311"),
    )


_SEGMENT_ZONES = {
    "95": summary_zones(400),
    "96": summary_zones(500),
    "91": summary_zones(400) + settlement_zones(400),
    "92": summary_zones(500) + settlement_zones(500),
}


def _read_reception_records(text: str) -> tuple[FeedbackRecord, ...]:
    records = []
    for index, start in enumerate(range(HEADER_LENGTH, len(text), RECORD_LENGTH)):
        record = text[start:start + RECORD_LENGTH]
        record_type = record[:2]
        zones = _SEGMENT_ZONES.get(record_type, ())
        records.append(FeedbackRecord(
            index=index, record_type=record_type, sequence=record[2:8], original=record,
            zone_errors=tuple(_zone_errors(record_type, zones, record, index)),
        ))
    return tuple(records)


def _read_slots(record: str, index: int) -> tuple[ErrorSlot, ...]:
    slots = []
    for number, offset in enumerate(SLOT_OFFSETS, start=1):
        raw = record[offset:offset + SLOT_LENGTH]
        if raw[:1].isalpha():
            slots.append(ErrorSlot(raw[0], raw[1:3], raw[3:5], raw[5:7], index, number))
    return tuple(slots)


def _read_detailed(code: str, text: str) -> FeedbackMessage:
    header = _read_header(text, EXTENDED_300_ZONES, EXTENDED_HEADER_LENGTH)
    records = []
    settlements = []
    total = None
    for index, start in enumerate(range(EXTENDED_HEADER_LENGTH, len(text),
                                        FEEDBACK_RECORD_LENGTH)):
        record = text[start:start + FEEDBACK_RECORD_LENGTH]
        record_type = record[:2]
        zones = _SEGMENT_ZONES.get(record_type, ())
        records.append(FeedbackRecord(
            index=index, record_type=record_type, sequence=record[2:8],
            original=record[:RECORD_LENGTH], error_block=record[RECORD_LENGTH:],
            slots=_read_slots(record, index),
            zone_errors=tuple(_zone_errors(record_type, zones, record, index)),
        ))
        if record_type == "91":
            settlements.append(_read_settlement(record))
        elif record_type == "92":
            total = _read_settlement(record)
    return FeedbackMessage(code, header, tuple(records), tuple(settlements), total,
                           length=len(text))


def _reference(text: str) -> str | None:
    return text.strip() or None


def _read_settlement(record: str) -> Settlement:
    base = 400 if record[:2] == "91" else 500
    zones = {zone.number: zone for zone in summary_zones(base) + settlement_zones(base)}

    def amount(offset: int) -> int | None:
        return parse_amount(zones[str(base + offset)].value(record))

    def value(offset: int) -> str:
        return zones[str(base + offset)].value(record)

    return Settlement(
        record_type=record[:2], mutuality=value(1), invoice_number=value(2),
        requested_a=amount(4), requested_b=amount(6), requested_total=amount(8),
        record_count=value(9), control=value(10),
        accepted_a=amount(12), rejected_a=amount(14), accepted_b=amount(16),
        rejected_b=amount(18), accepted_total=amount(20), rejected_total=amount(22),
        payment_reference_a=_reference(value(23)) if base == 400 else None,
        payment_reference_b=_reference(value(24)) if base == 400 else None,
    )
