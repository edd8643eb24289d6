"""Writer of the five eFact feedback messages the MyCareNet simulator answers a sending with:
931000 (acknowledgement), 920098 (accepted), 920099 (refused), 920999 (refused at reception)
and 920900 (settlement).

Everything written here is read back identically by :mod:`unified_messaging.efact.feedback`,
and has the lengths and zone offsets of the real files.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping, Sequence

from unified_messaging.efact.feedback import (
    ACCEPTED,
    ACKNOWLEDGEMENT,
    FEEDBACK_RECORD_LENGTH,
    REFUSED,
    REFUSED_AT_RECEPTION,
    SETTLEMENT,
    SLOT_LETTERS,
    SLOT_OFFSETS,
)
from unified_messaging.efact.layout import (
    AMOUNT_A,
    DESTINATION_MUTUALITY,
    EXTENDED_300_LENGTH,
    HEADER_LENGTH,
    RECORD_LENGTH,
    SEGMENT_200_LENGTH,
    SEGMENT_200_ZONES,
    SEGMENT_300_ZONES,
    SENDING_CODE,
    Zone,
    summary_zones,
)
from unified_messaging.efact.units import RawUnit, read_sending
from unified_messaging.efact.values import format_amount, parse_amount

logger = logging.getLogger(__name__)

DEFAULT_ZONE_205 = "00000000000001"


def slot(letter: str, record_type: str, zone: int | str, error: int | str) -> str:
    """An error slot code: ``slot("R", "50", 24, 5)`` -> ``"R502405"``."""
    code = f"{letter}{record_type}{int(zone):02d}" + (
        f"{error:02d}" if isinstance(error, int) else error)
    _check_slot(code)
    return code


def _check_slot(code: str) -> None:
    if len(code) != 7 or code[0] not in SLOT_LETTERS or not code[1:5].isdigit():
        raise ValueError(f"{code!r} is not an error slot (a letter of {sorted(SLOT_LETTERS)} "
                         "then record type, zone and error number on 2 characters each)")


@dataclass(frozen=True)
class HeaderError:
    """An error code for a 920999: zone 200-205, 300-309, 400-410 (a 95: give the mutuality)
    or 500-510 (the 96)."""

    zone: str
    code: str
    mutuality: str | None = None


@dataclass
class _Sending:
    """A parsed sending, as the feedback builders need it."""

    segment_200: str
    segment_300: str
    records: list[RawUnit]

    @classmethod
    def parse(cls, data: bytes | str) -> "_Sending":
        units = read_sending(data)
        if units[0].text[:6] != SENDING_CODE:
            raise ValueError("feedback can only be built for a 920000 sending")
        return cls(units[0].text, units[1].text, units[2:])

    @property
    def zone_204(self) -> str:
        return self.segment_200[20:34]

    @property
    def type_marker(self) -> str:
        return self.segment_200[12:14]

    @property
    def numbered(self) -> list[RawUnit]:
        """Records 10..90 (the ones feedback records echo)."""
        return [r for r in self.records if r.record_type not in ("95", "96")]

    def invoices(self) -> list[list[int]]:
        """Record indexes of each invoice, from its 20 to its 80."""
        invoices: list[list[int]] = []
        for record in self.records:
            kind, index = record.record_type, record.index or 0
            if kind == "20":
                invoices.append([index])
            elif invoices and kind in ("50", "51", "52", "80"):
                invoices[-1].append(index)
        return invoices


def _feedback_200(code: str, sending: _Sending, zone_205: str, version: str,
                  status: str = "00", reserve: str = " ") -> str:
    if len(zone_205) != 14 or not zone_205.isdigit():
        raise ValueError("zone 205 (the insurer's reference) has 14 digits")
    return (f"{code}00{version}00{sending.type_marker}00{status}00{sending.zone_204}00"
            f"{zone_205}00{reserve * 15}")


def _percentage_text(value: Decimal | float | str | None, default: Decimal) -> str:
    percent = Decimal(str(value)) if value is not None else default
    hundredths = int((percent * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if not 0 <= hundredths <= 10000:
        raise ValueError("an error percentage lies between 0 and 100")
    return f"{hundredths:05d}"


def _extended_300(sending: _Sending, percentage: str, refusal_type: str) -> str:
    return (sending.segment_300[:140] + percentage + "00" + refusal_type + "00").ljust(
        EXTENDED_300_LENGTH)


def _normalise_errors(sending: _Sending, errors: Mapping[int, Sequence[str]] | None
                      ) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    by_index = {record.index: record for record in sending.records}
    for index, codes in (errors or {}).items():
        record = by_index.get(index)
        if record is None:
            raise ValueError(f"the sending has no record with index {index}")
        if record.record_type in ("95", "96"):
            raise ValueError("summaries 95/96 are not echoed in 800-character feedback; "
                             "report them with a 920999")
        codes = list(codes)
        if len(codes) > len(SLOT_OFFSETS):
            raise ValueError(f"a feedback record has {len(SLOT_OFFSETS)} error slots, "
                             f"not {len(codes)}")
        for code in codes:
            _check_slot(code)
        if codes:
            result[index] = codes
    return result


def _echoed_indexes(sending: _Sending, errors: Mapping[int, list[str]]) -> list[int]:
    """Records 10 and 90, and for each invoice with an error its 20, faulty records and 80."""
    chosen = {r.index for r in sending.records if r.record_type in ("10", "90")}
    chosen |= set(errors)
    for invoice in sending.invoices():
        if any(index in errors for index in invoice):
            chosen.update((invoice[0], invoice[-1]))
    return sorted(i for i in chosen if i is not None)


def _feedback_record(record: RawUnit, codes: Sequence[str], counter: str) -> str:
    slots = "".join(code.ljust(7) if code else " 000000" for code in
                    list(codes) + [""] * (len(SLOT_OFFSETS) - len(codes)))
    block = "0" * (SLOT_OFFSETS[0] - RECORD_LENGTH) + slots
    block = block.ljust(FEEDBACK_RECORD_LENGTH - RECORD_LENGTH - len(counter)) + counter
    return record.text + block


def _counter(record_type: str, number: int) -> str:
    return {"10": "111111", "90": "999999"}.get(record_type, f"{number:06d}")


def _detailed_records(sending: _Sending, errors: dict[int, list[str]]) -> list[str]:
    by_index = {record.index: record for record in sending.records}
    lines = []
    for number, index in enumerate(_echoed_indexes(sending, errors)):
        record = by_index[index]
        lines.append(_feedback_record(record, errors.get(index, ()),
                                      _counter(record.record_type, number)))
    return lines


def _default_percentage(sending: _Sending, errors: Mapping[int, Sequence[str]]) -> Decimal:
    """Records with an error over records 10..90, in percent (the insurers' own rule is not
    published; pass ``error_percentage`` to choose it)."""
    numbered = len(sending.numbered) or 1
    return Decimal(len(errors)) * 100 / numbered


def _detailed(code: str, data: bytes | str, errors: Mapping[int, Sequence[str]] | None,
              refusal_type: str, error_percentage: Decimal | float | str | None,
              zone_205: str, version: str) -> tuple[_Sending, dict[int, list[str]], str]:
    sending = _Sending.parse(data)
    normalised = _normalise_errors(sending, errors)
    percentage = _percentage_text(error_percentage, _default_percentage(sending, normalised))
    head = (_feedback_200(code, sending, zone_205, version)
            + _extended_300(sending, percentage, refusal_type))
    return sending, normalised, head


def build_931000(sending: bytes | str, *, zone_205: str = DEFAULT_ZONE_205,
                 version: str = "01") -> bytes:
    """The acknowledgement: the insurer received the sending and will process it."""
    parsed = _Sending.parse(sending)
    text = _feedback_200(ACKNOWLEDGEMENT, parsed, zone_205, version) + \
        f"{SENDING_CODE}00".ljust(HEADER_LENGTH - SEGMENT_200_LENGTH)
    return text.encode("latin-1")


def build_920098(sending: bytes | str, errors: Mapping[int, Sequence[str]] | None = None, *,
                 error_percentage: Decimal | float | str | None = None,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "01") -> bytes:
    """Sending accepted after the detailed check; ``errors`` maps a record index of the sending
    to up to three slot codes (``{3: ["R502405"]}``)."""
    parsed, normalised, head = _detailed(ACCEPTED, sending, errors, "00", error_percentage,
                                         zone_205, version)
    return (head + "".join(_detailed_records(parsed, normalised))).encode("latin-1")


def build_920099(sending: bytes | str, errors: Mapping[int, Sequence[str]] | None = None, *,
                 refusal_type: str = "01",
                 error_percentage: Decimal | float | str | None = None,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "01") -> bytes:
    """Sending refused after the detailed check: refusal type 01 (blocking errors) or 02 (too
    many errors)."""
    if refusal_type not in ("01", "02"):
        raise ValueError("a 920099 refusal type is 01 (blocking errors) or 02 (too many errors)")
    parsed, normalised, head = _detailed(REFUSED, sending, errors, refusal_type,
                                         error_percentage, zone_205, version)
    return (head + "".join(_detailed_records(parsed, normalised))).encode("latin-1")


def _set_error(text: str, zone: Zone, code: str) -> str:
    if zone.error_at is None or len(code) != 2:
        raise ValueError(f"zone {zone.number} takes a 2-character error code")
    return text[:zone.error_at] + code + text[zone.error_at + 2:]


def _zone(zones: tuple[Zone, ...], number: str) -> Zone:
    for zone in zones:
        if zone.number == number:
            return zone
    raise ValueError(f"zone {number} has no error code in this segment")


def build_920999(sending: bytes | str, header_errors: Sequence[HeaderError], *,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "02",
                 status: str = "40") -> bytes:
    """The whole sending refused at reception: error codes in segments 200/300 and in the
    summaries; the 96 is always echoed, a 95 when it carries an error."""
    parsed = _Sending.parse(sending)
    if not header_errors:
        raise ValueError("a 920999 names at least one header or summary error")
    segment_200 = _feedback_200(REFUSED_AT_RECEPTION, parsed, zone_205, version, status, "0")
    segment_300 = parsed.segment_300
    summaries = {_summary_key(r): r.text for r in parsed.records
                 if r.record_type in ("95", "96")}
    flagged = {"96"}
    for error in header_errors:
        hundred = error.zone[:1]
        if hundred == "2":
            segment_200 = _set_error(segment_200, _zone(SEGMENT_200_ZONES, error.zone), error.code)
            continue
        if hundred == "3":
            segment_300 = _set_error(segment_300, _zone(SEGMENT_300_ZONES, error.zone), error.code)
            continue
        key = "96" if hundred == "5" else (error.mutuality or _first_mutuality(summaries))
        if key not in summaries:
            raise ValueError(f"the sending has no summary for {key!r}")
        zones = summary_zones(400 if hundred == "4" else 500)
        summaries[key] = _set_error(summaries[key], _zone(zones, error.zone), error.code)
        flagged.add(key)
    body = "".join(text for key, text in summaries.items() if key in flagged)
    return (segment_200 + segment_300 + body).encode("latin-1")


def _summary_key(record: RawUnit) -> str:
    """Summaries by mutuality number; the 96 under its own type."""
    return "96" if record.record_type == "96" else record.text[4:7]


def _first_mutuality(summaries: Mapping[str, str]) -> str:
    return next(key for key in summaries if key != "96")


def _rejected_by_mutuality(sending: _Sending, errors: Mapping[int, list[str]]) -> dict[str, int]:
    """Amounts refused: the whole invoice for an F, the service line for an R or B on a 50."""
    by_index = {record.index: record for record in sending.records}
    rejected: dict[str, int] = {}
    for invoice in sending.invoices():
        footer = by_index[invoice[-1]].text
        mutuality = footer[DESTINATION_MUTUALITY]
        codes = [(index, code) for index in invoice for code in errors.get(index, ())]
        if any(code[0] == "F" for _, code in codes):
            amount = parse_amount(footer[AMOUNT_A]) or 0
        else:
            lines = {index for index, code in codes if code[0] in "RB"
                     and by_index[index].record_type == "50"}
            amount = sum(parse_amount(by_index[i].text[AMOUNT_A]) or 0 for i in lines)
        rejected[mutuality] = rejected.get(mutuality, 0) + amount
    return rejected


def _settlement_amounts(requested: int, rejected: int) -> str:
    accepted = requested - rejected
    return "".join(f"{format_amount(value)}00" for value in
                   (accepted, rejected, 0, 0, accepted, rejected))


def build_920900(sending: bytes | str, errors: Mapping[int, Sequence[str]] | None = None, *,
                 rejected: Mapping[str, int] | None = None,
                 payment_reference: str | None = None,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "03") -> bytes:
    """The settlement: faulty records with their final errors, then a 91 per mutuality and the
    92 with requested, accepted and rejected amounts (cents) and the payment reference.

    ``rejected`` overrides the refused amount per mutuality (by default: the amounts of the
    service lines with an R or B, the whole invoice for an F).
    """
    parsed, normalised, head = _detailed(SETTLEMENT, sending, errors, "00", 0, zone_205, version)
    refused = dict(_rejected_by_mutuality(parsed, normalised))
    refused.update(rejected or {})
    lines = _detailed_records(parsed, normalised)
    month = parsed.segment_300[0:6]
    number = parsed.segment_300[8:11]
    total_requested = total_rejected = 0
    for record in parsed.records:
        if record.record_type != "95":
            continue
        mutuality = record.text[4:7]
        requested = parse_amount(record.text[23:35]) or 0
        refusal = refused.get(mutuality, 0)
        total_requested += requested
        total_rejected += refusal
        reference = (payment_reference or f"{number}/{month}/{mutuality}/")[:22].ljust(22)
        lines.append(("91" + record.text[2:79] + _settlement_amounts(requested, refusal)
                      + f"{reference}00{reference}00").ljust(FEEDBACK_RECORD_LENGTH))
    federation = next((r for r in parsed.records if r.record_type == "96"), None)
    if federation is not None:
        lines.append(("92" + federation.text[2:79]
                      + _settlement_amounts(total_requested, total_rejected)
                      ).ljust(FEEDBACK_RECORD_LENGTH))
    return (head + "".join(lines)).encode("latin-1")


def first_index(data: bytes | str, record_type: str) -> int:
    """The index of the first record of a type in a sending (handy to aim an error)."""
    for record in _Sending.parse(data).records:
        if record.record_type == record_type:
            return record.index or 0
    raise ValueError(f"the sending has no record {record_type}")

